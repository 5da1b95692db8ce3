"""Members of a pool talking to each other: QUIC with mutual TLS on the pool port (docs/pools.md §2, §8).

Both sides present their server certificate and accept the other's only when the pool's trust does
(pinned fingerprints, or the pool's CA). A peer without an acceptable certificate fails the handshake
and never gets to send a request: it learns nothing, not whether a token exists.

One request per bidirectional stream: a frame (32-bit big-endian length, then that many bytes of strict
JSON, at most :data:`MAX_REQUEST`), answered by one frame. Every request carries a random ``nonce`` and
the sender's clock; a member refuses, with a reason, a frame over the limit, a body that is not one
acceptable JSON object, a clock more than :data:`MAX_SKEW` off, and a nonce it has seen within
:data:`NONCE_MEMORY` (a replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioquic import tls
from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.asyncio.server import QuicServer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, QuicEvent
from cryptography import x509

from wayray.common.jsonframe import JSONBodyError, decode_object
from wayray.transport import _aioquic_private as private
from wayray.transport.identity import ServerIdentity, fingerprint

log = logging.getLogger("wayray.pool")

ALPN = "wayray-pool/1"
#: Largest request or answer body, in bytes.
MAX_REQUEST = 64 * 1024
#: A request whose clock is further off than this (seconds) is refused.
MAX_SKEW = 60.0
#: Nonces are remembered this long (seconds): a replay within it is refused; one after it is stale.
NONCE_MEMORY = 2 * MAX_SKEW
#: Seconds a peer may take to answer one request.
REQUEST_TIMEOUT = 2.0
_HEADER = struct.Struct(">I")
_NONCE = re.compile(r"[0-9a-f]{32}")
#: QUIC application error codes of the pool port.
NOT_A_MEMBER = 0x1
REFUSED = 0x2


class PeerError(Exception):
    """A peer could not be asked, or refused the request; ``str()`` says why."""


class RequestRefused(Exception):
    """A request this member refuses; ``reason`` goes back to the peer (nothing about tokens)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PeerTrust:
    """Whom a member accepts as a peer: pinned certificate fingerprints and/or a CA (PEM)."""

    fingerprints: frozenset[str] = frozenset()
    ca_pem: bytes | None = None

    def check(self, cert: x509.Certificate | None, chain: list[x509.Certificate]) -> str:
        """The peer's fingerprint; :class:`PeerError` with a reason when it is not a member."""
        if cert is None:
            raise PeerError("no certificate: pool members present their server certificate")
        fp = fingerprint(cert)
        if fp in self.fingerprints:
            return fp
        if self.ca_pem is not None:
            try:
                tls.verify_certificate(cert, chain, cadata=self.ca_pem)
            except tls.Alert as err:
                raise PeerError(f"certificate {fp} does not verify against the pool's CA: {err}") from None
            return fp
        raise PeerError(f"certificate {fp} is not among the pool's fingerprints")


def _configuration(identity: ServerIdentity, *, is_client: bool) -> QuicConfiguration:
    config = QuicConfiguration(is_client=is_client, alpn_protocols=[ALPN], idle_timeout=30.0)
    config.certificate = identity.certificate
    config.certificate_chain = list(identity.chain)
    config.private_key = identity.private_key
    config.verify_mode = ssl.CERT_NONE  # the pool's trust is checked after the handshake (PeerTrust)
    return config


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(_HEADER.size)
    (length,) = _HEADER.unpack(header)
    if length > MAX_REQUEST:
        raise RequestRefused(f"request too large: {length} bytes, at most {MAX_REQUEST}")
    return await reader.readexactly(length)


def _frame(obj: dict[str, Any]) -> bytes:
    import json

    body = json.dumps(obj, separators=(",", ":")).encode()
    if len(body) > MAX_REQUEST:
        raise PeerError(f"message too large: {len(body)} bytes, at most {MAX_REQUEST}")
    return _HEADER.pack(len(body)) + body


Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ReplayGuard:
    """Refuses requests whose nonce was seen lately or whose clock is off (``clock``: wall time)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}

    def check(self, request: dict[str, Any]) -> None:
        nonce, sent = request.get("nonce"), request.get("time")
        if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            raise RequestRefused("malformed request: 'nonce' must be 32 hex digits")
        if not isinstance(sent, int | float) or isinstance(sent, bool):
            raise RequestRefused("malformed request: 'time' must be a number")
        now = self._clock()
        # Oldest first (a dict keeps insertion order): drop what is past remembering, stop at the
        # first that is not, so a busy port pays for what it drops, not for all it remembers.
        while self._seen:
            old, seen = next(iter(self._seen.items()))
            if now - seen <= NONCE_MEMORY:
                break
            del self._seen[old]
        if abs(now - sent) > MAX_SKEW:
            off = now - sent
            raise RequestRefused(f"stale request: its clock is {off:+.0f} s off (at most {MAX_SKEW:g})")
        if nonce in self._seen:
            raise RequestRefused("replayed request: this nonce was used already")
        self._seen[nonce] = now


class _ServerProtocol(QuicConnectionProtocol):
    def __init__(self, quic: Any, stream_handler: Any = None, *, listener: PoolListener) -> None:
        private.request_client_certificate(quic)
        super().__init__(quic, stream_handler=self._on_stream)
        self.listener = listener
        self.peer: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            cert, chain = private.peer_certificate(self._quic)
            try:
                self.peer = self.listener.trust.check(cert, chain)
            except PeerError as err:
                log.warning("pool port: refused a peer: %s", err)
                self._quic.close(error_code=NOT_A_MEMBER, reason_phrase=f"not a member of the pool: {err}")
                self.transmit()
                return
        super().quic_event_received(event)

    def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.peer is None:  # cannot happen (no stream before the handshake); fail closed anyway
            self._quic.close(error_code=NOT_A_MEMBER, reason_phrase="not a member of the pool")
            self.transmit()
            return
        task = asyncio.get_running_loop().create_task(self._serve(self.peer, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = self.listener
        try:
            try:
                body = await asyncio.wait_for(_read_frame(reader), REQUEST_TIMEOUT)
                try:
                    request = decode_object(body)
                except JSONBodyError as err:
                    raise RequestRefused(f"malformed request: the body {err.reason}") from None
                listener.guard.check(request)
                answer = await listener.handler(peer, request)
            except RequestRefused as err:
                listener.refusals += 1
                log.warning("pool port: %s: refused: %s", peer[:15], err.reason)
                answer = {"ok": False, "error": err.reason}
            except (asyncio.IncompleteReadError, TimeoutError):
                listener.refusals += 1
                answer = {"ok": False, "error": "malformed request: the frame was cut off or did not come"}
            writer.write(_frame(answer))
            writer.write_eof()
        except Exception:  # a member's bug must not end the listener; the peer sees its stream end
            log.exception("pool port: a request of %s failed", peer[:15])
            with contextlib.suppress(Exception):
                writer.write_eof()


class PoolListener:
    """The pool port: answers authenticated peers' requests with ``handler(peer_fingerprint, req)``."""

    def __init__(self, trust: PeerTrust, handler: Handler) -> None:
        self.trust = trust
        self.handler = handler
        self.guard = ReplayGuard()
        self.refusals = 0
        self._server: QuicServer | None = None

    @classmethod
    async def start(
        cls, host: str, port: int, identity: ServerIdentity, trust: PeerTrust, handler: Handler
    ) -> PoolListener:
        listener = cls(trust, handler)
        listener._server = await serve(
            host,
            port,
            configuration=_configuration(identity, is_client=False),
            create_protocol=lambda *a, **kw: _ServerProtocol(*a, listener=listener, **kw),
        )
        return listener

    @property
    def port(self) -> int:
        assert self._server is not None and self._server._transport is not None
        return int(self._server._transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


class PeerClient:
    """Asks other members; one QUIC connection per peer, kept while it works."""

    def __init__(self, identity: ServerIdentity, trust: PeerTrust) -> None:
        self.identity = identity
        self.trust = trust
        self._conns: dict[tuple[str, int], tuple[contextlib.AsyncExitStack, QuicConnectionProtocol]] = {}
        #: One lock per peer: a peer that does not answer must not hold up the requests to the others.
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def _connection(self, host: str, port: int) -> QuicConnectionProtocol:
        async with self._locks.setdefault((host, port), asyncio.Lock()):
            held = self._conns.get((host, port))
            if held is not None:
                return held[1]
            stack = contextlib.AsyncExitStack()
            try:
                protocol = await asyncio.wait_for(
                    stack.enter_async_context(
                        connect(host, port, configuration=_configuration(self.identity, is_client=True))
                    ),
                    REQUEST_TIMEOUT,
                )
                cert, chain = private.peer_certificate(protocol._quic)
                self.trust.check(cert, chain)
            except BaseException as err:
                await _close_quietly(stack)
                if isinstance(err, TimeoutError | OSError | ConnectionError):
                    raise PeerError(f"{host}:{port} does not answer on the pool port") from None
                raise
            self._conns[(host, port)] = (stack, protocol)
            return protocol

    async def request(self, host: str, port: int, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` (a nonce and the time are added) and return the answer; :class:`PeerError`
        when the peer does not answer, is not a member, or refuses (its reason)."""
        message = dict(request, nonce=secrets.token_hex(16), time=time.time())
        for attempt in (1, 2):
            protocol = await self._connection(host, port)
            try:
                return await asyncio.wait_for(self._ask(protocol, message), REQUEST_TIMEOUT)
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as err:
                await self.forget(host, port)
                if attempt == 2 or isinstance(err, TimeoutError):
                    raise PeerError(f"{host}:{port} did not answer the request") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_raw(self, host: str, port: int, data: bytes) -> dict[str, Any]:
        """Tests: send bytes as they are (garbage, oversized or replayed frames) and read the answer."""
        protocol = await self._connection(host, port)
        reader, writer = await protocol.create_stream()
        writer.write(data)
        writer.write_eof()
        return decode_object(await asyncio.wait_for(_read_frame(reader), REQUEST_TIMEOUT))

    @staticmethod
    async def _ask(protocol: QuicConnectionProtocol, message: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await protocol.create_stream()
        writer.write(_frame(message))
        writer.write_eof()
        try:
            answer = decode_object(await _read_frame(reader))
        except RequestRefused as err:
            raise PeerError(f"the peer's answer: {err.reason}") from None
        except JSONBodyError as err:
            raise PeerError(f"the peer's answer is not acceptable JSON: the body {err.reason}") from None
        if answer.get("ok") is not True:
            raise PeerError(str(answer.get("error", "refused")))
        return answer

    async def forget(self, host: str, port: int) -> None:
        held = self._conns.pop((host, port), None)
        if held is not None:
            await _close_quietly(held[0])

    async def close(self) -> None:
        for key in list(self._conns):
            await self.forget(*key)


async def _close_quietly(stack: contextlib.AsyncExitStack) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stack.aclose(), 1.0)
