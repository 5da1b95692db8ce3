"""Members of a pool talking to each other: QUIC with mutual TLS on the pool port (docs/pools.md §2, §8).

Both sides present their server certificate and accept the other's only when the pool's trust does
(pinned fingerprints, or the pool's CA). A peer without an acceptable certificate fails the handshake
and never gets to send a request: it learns nothing, not whether a token exists.

One request per bidirectional stream: a frame (32-bit big-endian length, then that many bytes of strict
JSON, at most :data:`MAX_REQUEST`), answered by one frame. Every request carries a random ``nonce`` and
the sender's clock; a member refuses, with a reason, a frame over the limit, a body that is not one
acceptable JSON object, a clock more than :data:`MAX_SKEW` off, and a nonce it has seen within
:data:`NONCE_MEMORY` (a replay).

The first request on every connection is ``hello``, the members' key check (docs/pools.md §3.3): the
dialling member proves that it holds the pool's token key with an HMAC, under that key, of its member
id, both certificates' fingerprints and the request's fresh nonce, and the answer proves the same of
the member it reached. A peer that cannot (another key, or none) is refused with a reason and its
connection closed: it gets no other request through, so it can neither read the directory nor claim
badges for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
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
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
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
#: The peer's first message did not prove the pool's token key (the reason says how it failed).
KEY_CHECK_FAILED = 0x3
#: How long a member that failed the key check is not dialled again (seconds; a refused peer would
#: otherwise cost a handshake every keep-alive round) and a refusal is not logged again.
REFUSED_FOR = 30.0
_MEMBER_ID = re.compile(r"[0-9a-f]{16}")
_PROOF = re.compile(r"[0-9a-f]{64}")


class PeerError(Exception):
    """A peer could not be asked, or refused the request; ``str()`` says why."""


class NotAMember(PeerError):
    """The peer failed the members' key check, or refused this member's: it is no member of the pool."""


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


@dataclass(frozen=True)
class PoolKey:
    """What a member proves in its first message on the pool port: that it holds the pool's token key
    (docs/pools.md §3.3). ``previous``: the key it replaced (a rotation), only to say what went wrong
    when a peer proves that one instead: a peer must hold the *current* key to be a member."""

    pool: str
    member_id: str
    key: bytes = dataclasses.field(repr=False)
    previous: bytes | None = dataclasses.field(default=None, repr=False)

    def proof(self, key: bytes, role: str, member_id: str, sender: str, receiver: str, nonce: str) -> str:
        """HMAC-SHA256 under ``key`` of the message's role (``hello`` or ``answer``), the pool, the
        sender's member id and certificate fingerprint, the receiver's fingerprint and the hello's
        nonce: valid for this pair of certificates and this hello only (a replay elsewhere fails)."""
        text = "\0".join(("wayray-pool-key-check/1", role, self.pool, member_id, sender, receiver, nonce))
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def hello(self, sender: str, receiver: str) -> dict[str, Any]:
        """The first request on a connection (its nonce and clock included)."""
        nonce = secrets.token_hex(16)
        message: dict[str, Any] = {
            "type": "hello",
            "pool": self.pool,
            "member_id": self.member_id,
            "nonce": nonce,
            "time": time.time(),
            "proof": self.proof(self.key, "hello", self.member_id, sender, receiver, nonce),
        }
        if self.previous is not None:
            message["previous"] = self.proof(self.previous, "hello", self.member_id, sender, receiver, nonce)
        return message

    def check_hello(self, request: dict[str, Any], sender: str, receiver: str) -> str:
        """The hello's member id; :class:`RequestRefused` with the reason when it does not prove
        this pool's current key (the nonce and clock were checked already)."""
        pool, member_id, proof = request.get("pool"), request.get("member_id"), request.get("proof")
        if (
            not isinstance(pool, str)
            or not isinstance(member_id, str)
            or not _MEMBER_ID.fullmatch(member_id)
        ):
            raise RequestRefused("malformed hello: 'pool' and a 16-hex-digit 'member_id' are needed")
        if not isinstance(proof, str) or not _PROOF.fullmatch(proof):
            raise RequestRefused("malformed hello: 'proof' must be 64 hex digits")
        if pool != self.pool:
            raise RequestRefused(f"it is a member of pool {pool[:64]!r}, this is pool {self.pool!r}")
        if member_id == self.member_id:
            raise RequestRefused("it says it is this member (the same member id on two hosts?)")
        nonce = str(request["nonce"])

        def proves(key: bytes | None, given: object) -> bool:
            if key is None or not isinstance(given, str):
                return False
            return hmac.compare_digest(self.proof(key, "hello", member_id, sender, receiver, nonce), given)

        if proves(self.key, proof):
            return member_id
        hint = "peers.token_key_file must be the same file on every member (docs/pools.md §3.3)"
        if proves(self.previous, proof):
            raise RequestRefused(
                f"the pool token key differs: member {member_id} still holds the previous key; "
                "restart it with the new key file"
            )
        if proves(self.key, request.get("previous")):
            raise RequestRefused(
                f"the pool token key differs: member {member_id} holds a newer key, whose previous key "
                "is this member's; restart this member with the new key file"
            )
        raise RequestRefused(f"the pool token key differs from this member's; {hint}")

    def answer(self, member_id: str, sender: str, receiver: str, nonce: str) -> dict[str, Any]:
        """The answer to a hello that passed: this member's own proof, for the hello's nonce."""
        return {
            "ok": True,
            "member_id": self.member_id,
            "proof": self.proof(self.key, "answer", self.member_id, sender, receiver, nonce),
        }

    def check_answer(self, answer: dict[str, Any], sender: str, receiver: str, nonce: str) -> str:
        """The answering member's id; :class:`NotAMember` when its proof is not of this pool's key."""
        member_id, proof = answer.get("member_id"), answer.get("proof")
        if (
            not isinstance(member_id, str)
            or not _MEMBER_ID.fullmatch(member_id)
            or not isinstance(proof, str)
        ):
            raise NotAMember("its answer to the key check is malformed")
        if not hmac.compare_digest(
            self.proof(self.key, "answer", member_id, sender, receiver, nonce), proof
        ):
            raise NotAMember(
                "the pool token key differs: it does not prove this member's key; peers.token_key_file "
                "must be the same file on every member (docs/pools.md §3.3)"
            )
        return member_id


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


class _Once:
    """Says a refusal once per peer and reason within :data:`REFUSED_FOR` (a refused peer tries again
    every keep-alive round; the log must say it, not drown in it)."""

    def __init__(self) -> None:
        self._said: dict[tuple[str, str], float] = {}

    def __call__(self, peer: str, reason: str) -> bool:
        now = time.monotonic()
        for key in [k for k, at in self._said.items() if now - at > REFUSED_FOR]:
            del self._said[key]
        if (peer, reason) in self._said:
            return False
        self._said[(peer, reason)] = now
        return True


class _ServerProtocol(QuicConnectionProtocol):
    def __init__(self, quic: Any, stream_handler: Any = None, *, listener: PoolListener) -> None:
        private.request_client_certificate(quic)
        super().__init__(quic, stream_handler=self._on_stream)
        self.listener = listener
        self.peer: str | None = None
        #: The member id the peer's hello proved the pool's key for (None: no hello passed yet).
        self.member_id: str | None = None
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

    def _key_check(self, peer: str, request: dict[str, Any]) -> dict[str, Any]:
        """The connection's first request: the hello, proving the pool's key (else refused, and the
        connection closed by the caller)."""
        listener = self.listener
        if request.get("type") != "hello":
            raise RequestRefused("the first request must be the members' key check (hello)")
        member_id = listener.key.check_hello(request, peer, listener.fingerprint)
        self.member_id = member_id
        log.debug("pool port: member %s (%s) proved the pool's key", member_id, peer[:15])
        return listener.key.answer(member_id, listener.fingerprint, peer, str(request["nonce"]))

    async def _serve(self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = self.listener
        closing: str | None = None
        try:
            try:
                body = await asyncio.wait_for(_read_frame(reader), REQUEST_TIMEOUT)
                try:
                    request = decode_object(body)
                except JSONBodyError as err:
                    raise RequestRefused(f"malformed request: the body {err.reason}") from None
                if self.member_id is None:  # the first request: the key check, or the connection ends
                    listener.guard.check(request)
                    answer = self._key_check(peer, request)
                else:
                    listener.guard.check(request)
                    claimed = request.get("member")
                    if isinstance(claimed, dict) and claimed.get("id") != self.member_id:
                        raise RequestRefused(f"this connection is member {self.member_id}'s")
                    answer = await listener.handler(peer, request)
            except RequestRefused as err:
                listener.refusals += 1
                if self.member_id is None:
                    closing = err.reason
                if closing is not None:
                    if listener.said(peer, err.reason):
                        log.warning(
                            "pool port: refused the peer with certificate %s at %s: %s; its connection "
                            "is closed",
                            peer,
                            _address(self),
                            err.reason,
                        )
                else:
                    log.warning("pool port: %s: refused: %s", peer[:15], err.reason)
                answer = {"ok": False, "error": err.reason}
            except (asyncio.IncompleteReadError, TimeoutError):
                listener.refusals += 1
                answer = {"ok": False, "error": "malformed request: the frame was cut off or did not come"}
                if self.member_id is None:
                    closing = str(answer["error"])
            writer.write(_frame(answer))
            writer.write_eof()
            if closing is not None:
                self.transmit()  # the answer first, then the close with the same reason
                self._quic.close(error_code=KEY_CHECK_FAILED, reason_phrase=f"members' key check: {closing}")
                self.transmit()
        except Exception:  # a member's bug must not end the listener; the peer sees its stream end
            log.exception("pool port: a request of %s failed", peer[:15])
            with contextlib.suppress(Exception):
                writer.write_eof()


def _address(protocol: QuicConnectionProtocol) -> str:
    transport = getattr(protocol, "_transport", None)
    paths = getattr(protocol._quic, "_network_paths", None)
    if paths:
        addr = paths[0].addr
        return f"{addr[0]}:{addr[1]}"
    return str(transport.get_extra_info("peername")) if transport is not None else "?"


class PoolListener:
    """The pool port: answers authenticated peers' requests with ``handler(peer_fingerprint, req)``,
    once the peer's first request proved the pool's key (``key``)."""

    def __init__(self, trust: PeerTrust, key: PoolKey, handler: Handler, fingerprint: str = "") -> None:
        self.trust = trust
        self.key = key
        self.handler = handler
        #: This member's certificate fingerprint (the key check's proofs name it).
        self.fingerprint = fingerprint
        self.guard = ReplayGuard()
        self.said = _Once()
        self.refusals = 0
        self._server: QuicServer | None = None

    @classmethod
    async def start(
        cls,
        host: str,
        port: int,
        identity: ServerIdentity,
        trust: PeerTrust,
        handler: Handler,
        *,
        key: PoolKey,
    ) -> PoolListener:
        listener = cls(trust, key, handler, identity.fingerprint)
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


class _ClientProtocol(QuicConnectionProtocol):
    """Keeps the reason the peer gave when it closed the connection (a failed key check says why)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed_because: str | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and event.reason_phrase:
            self.closed_because = event.reason_phrase
        super().quic_event_received(event)

    async def wait_connected(self) -> None:
        try:
            await super().wait_connected()
        finally:
            # aioquic waits on a shielded future: a dial given up (timed out) leaves it, and the
            # connection's end sets ConnectionError on it, which asyncio would log as "never
            # retrieved". The dial has said what happened already: read it when it comes.
            waiter = self._connected_waiter
            if waiter is not None:
                waiter.add_done_callback(lambda f: f.cancelled() or f.exception())


class PeerClient:
    """Asks other members; one QUIC connection per peer, kept while it works. Each connection starts
    with the members' key check (``key``): a peer that refuses this member's or does not prove its
    own is no member (:class:`NotAMember`) and is not dialled again for :data:`REFUSED_FOR`."""

    def __init__(self, identity: ServerIdentity, trust: PeerTrust, key: PoolKey) -> None:
        self.identity = identity
        self.trust = trust
        self.key = key
        self._conns: dict[tuple[str, int], tuple[contextlib.AsyncExitStack, QuicConnectionProtocol]] = {}
        #: One lock per peer: a peer that does not answer must not hold up the requests to the others.
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        #: Peers that failed the key check: (host, port) → (until when, why).
        self._refused: dict[tuple[str, int], tuple[float, str]] = {}
        self._said = _Once()

    async def _connection(self, host: str, port: int) -> QuicConnectionProtocol:
        async with self._locks.setdefault((host, port), asyncio.Lock()):
            held = self._conns.get((host, port))
            if held is not None:
                return held[1]
            refused = self._refused.get((host, port))
            if refused is not None and time.monotonic() < refused[0]:
                raise NotAMember(refused[1])
            stack = contextlib.AsyncExitStack()
            try:
                protocol = await asyncio.wait_for(
                    stack.enter_async_context(
                        connect(
                            host,
                            port,
                            configuration=_configuration(self.identity, is_client=True),
                            create_protocol=_ClientProtocol,
                        )
                    ),
                    REQUEST_TIMEOUT,
                )
                cert, chain = private.peer_certificate(protocol._quic)
                peer = self.trust.check(cert, chain)
                await asyncio.wait_for(self._key_check(protocol, host, port, peer), REQUEST_TIMEOUT)
            except BaseException as err:
                await _close_quietly(stack)
                if isinstance(err, TimeoutError | OSError | ConnectionError | asyncio.IncompleteReadError):
                    raise PeerError(f"{host}:{port} does not answer on the pool port") from None
                raise
            self._refused.pop((host, port), None)
            self._conns[(host, port)] = (stack, protocol)
            return protocol

    async def _key_check(self, protocol: QuicConnectionProtocol, host: str, port: int, peer: str) -> None:
        """The connection's first request: prove the pool's key, and check the peer's proof."""
        me = self.identity.fingerprint
        hello = self.key.hello(me, peer)
        try:
            try:
                answer = await self._ask(protocol, hello)
            except PeerError as err:
                raise NotAMember(f"it refused this member: {err}") from None
            except asyncio.IncompleteReadError:
                why = getattr(protocol, "closed_because", None)
                if why is None:
                    raise
                raise NotAMember(f"it refused this member: {why}") from None
            self.key.check_answer(answer, peer, me, hello["nonce"])
        except NotAMember as err:
            reason = f"the member at {host}:{port} (certificate {peer}) is not taken into the pool: {err}"
            self._refused[(host, port)] = (time.monotonic() + REFUSED_FOR, reason)
            if self._said(peer, str(err)):
                log.warning("pool: %s", reason)
            protocol.close(error_code=KEY_CHECK_FAILED, reason_phrase=f"members' key check: {err}"[:256])
            raise NotAMember(reason) from None

    def refusal(self, host: str, port: int) -> str | None:
        """Why the member at ``host:port`` failed the members' key check when last dialled (None: it
        passed, or was not dialled yet); kept until a connection to it passes the check."""
        held = self._refused.get((host, port))
        return None if held is None else held[1]

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
