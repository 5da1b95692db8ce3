"""A WebTransport client over aioquic's HTTP/3, speaking the wire as the browser kiosk's page does:
for testing wrsrvd's web endpoint without a browser (docs/web-kiosk.md, section 2).

It checks the server's certificate the way a browser given ``serverCertificateHashes`` does (the
SHA-256 of the certificate must be one of the hashes), opens the extended CONNECT, then runs a
client-side :class:`~wayray.wire.WireConnection` over the session's unidirectional streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3 import events as h3e
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from cryptography.hazmat.primitives import serialization

from wayray.transport import _aioquic_private as private
from wayray.wire import (
    Channel,
    ConnectionClosed,
    HelloParams,
    MessageReceived,
    TokenKind,
    WireConfig,
    WireConnection,
    WireRole,
)

#: evdev codes of what the tests type.
KEYS = {
    **dict(zip("qwertyuiop", range(16, 26), strict=True)),
    **dict(zip("asdfghjkl", range(30, 39), strict=True)),
    **dict(zip("zxcvbnm", range(44, 51), strict=True)),
    " ": 57,
    "\n": 28,
}


def fetch(url: str, fingerprint: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """GET ``url`` over HTTPS, the server's certificate checked against ``fingerprint`` (sha256:hex
    of its DER, as wrsrvd prints it) instead of a CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(url)
    handler = urllib.request.HTTPSHandler(context=ctx)
    opener = urllib.request.build_opener(handler)
    try:
        with opener.open(req, timeout=30) as res:
            if fingerprint is not None:
                der = res.fp.raw._sock.getpeercert(binary_form=True)
                assert "sha256:" + hashlib.sha256(der).hexdigest() == fingerprint
            return res.status, res.read(), dict(res.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def web_json(port: int, fingerprint: str) -> dict[str, Any]:
    status, body, _ = fetch(f"https://127.0.0.1:{port}/web.json", fingerprint)
    assert status == 200, body
    data: dict[str, Any] = json.loads(body)
    return data


class CertificateNotPinned(Exception):
    pass


class _Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.client: WTClient | None = None
        self.early: list[qe.QuicEvent] = []  # events before the client took the connection

    def take(self, client: WTClient) -> None:
        self.client = client
        for event in self.early:
            self.quic_event_received(event)
        self.early.clear()

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        if self.client is None:
            self.early.append(event)
            return
        if isinstance(event, qe.ConnectionTerminated):
            self.client._terminated(event)
        for ev in self.h3.handle_event(event):
            self.client._h3_event(ev)


@dataclass
class WTClient:
    """One WebTransport session to wrsrvd's web endpoint; use :meth:`open`."""

    port: int
    host: str = "127.0.0.1"
    wire: WireConnection = field(
        default_factory=lambda: WireConnection(WireRole.CLIENT, WireConfig(), now=0.0)
    )
    status: int | None = None
    messages: list[Any] = field(default_factory=list)
    closed: ConnectionClosed | None = None
    quic_close: tuple[int, str] | None = None

    async def open(
        self,
        hashes: list[str],
        *,
        path: str,
        origin: str | None = None,
        timeout: float = 30,
    ) -> int:
        """Connect, check the certificate against ``hashes``, send the CONNECT; returns its status."""
        loop = asyncio.get_running_loop()
        self.wire = WireConnection(WireRole.CLIENT, WireConfig(), now=loop.time())
        config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
        config.verify_mode = ssl.CERT_NONE  # checked against the hashes below, as a browser does
        self._cm = connect(self.host, self.port, configuration=config, create_protocol=_Protocol)
        self.proto: _Protocol = await asyncio.wait_for(self._cm.__aenter__(), timeout)  # type: ignore[assignment]
        cert, _ = private.peer_certificate(self.proto._quic)
        assert cert is not None
        digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        if hashes and digest not in hashes:
            raise CertificateNotPinned(f"the server's certificate {digest} is none of {hashes}")
        self._status = loop.create_future()
        self._streams: dict[Channel, int] = {}
        self._recv: dict[int, int | None] = {}
        authority = f"{self.host}:{self.port}"
        self.session_id = self.proto._quic.get_next_available_stream_id()
        self.proto.take(self)
        self.proto.h3.send_headers(
            self.session_id,
            [
                (b":method", b"CONNECT"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b":protocol", b"webtransport"),
                (b"origin", (origin if origin is not None else f"https://{authority}").encode()),
            ],
        )
        self.proto.transmit()
        self._ticker = asyncio.ensure_future(self._tick())
        self.status = await asyncio.wait_for(self._status, timeout)
        return self.status

    def hello(
        self,
        token: str,
        *,
        access_key: str = "",
        kind: TokenKind = TokenKind.BADGE,
        size: tuple[int, int] = (800, 600),
    ) -> None:
        self.wire.send_hello(
            HelloParams(
                token=token,
                token_kind=kind,
                screen_width=size[0],
                screen_height=size[1],
                client_name="wtclient",
                access_key=access_key,
            )
        )
        self.flush()

    def send(self, message: Any) -> None:
        self.wire.send(message)
        self.flush()

    def send_raw(self, data: bytes, *, stream: int | None = None) -> int:
        """Bytes of our own on a new (or the given) unidirectional WebTransport stream."""
        if stream is None:
            stream = self.proto.h3.create_webtransport_stream(self.session_id, is_unidirectional=True)
        self.proto._quic.send_stream_data(stream, data)
        self.proto.transmit()
        return stream

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        at = self.wire.get_timer()
        if at is not None and at <= loop.time():
            self.wire.handle_timer(loop.time())
        for ch, data in self.wire.data_to_send():
            sid = self._streams.get(ch)
            if sid is None:
                sid = self.proto.h3.create_webtransport_stream(self.session_id, is_unidirectional=True)
                self._streams[ch] = sid
                data = bytes([ch]) + data
            self.proto._quic.send_stream_data(sid, data)
        self._drain()
        self.proto.transmit()

    def _drain(self) -> None:
        while (ev := self.wire.next_event()) is not None:
            if isinstance(ev, MessageReceived):
                self.messages.append(ev.message)
            elif isinstance(ev, ConnectionClosed):
                self.closed = ev

    async def _tick(self) -> None:
        while self.closed is None:
            await asyncio.sleep(0.05)
            self.flush()

    def _h3_event(self, ev: h3e.H3Event) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(ev, h3e.HeadersReceived) and ev.stream_id == self.session_id:
            status = int(dict(ev.headers)[b":status"])
            if not self._status.done():
                self._status.set_result(status)
        elif isinstance(ev, h3e.WebTransportStreamDataReceived):
            data = ev.data
            if ev.stream_id not in self._recv:
                self._recv[ev.stream_id] = None
            if self._recv[ev.stream_id] is None:
                if not data:
                    return
                self._recv[ev.stream_id] = data[0]
                data = data[1:]
            ch = self._recv[ev.stream_id]
            assert ch is not None
            self.wire.receive(ch, data, loop.time(), end=ev.stream_ended)
            self._drain()

    def _terminated(self, ev: qe.ConnectionTerminated) -> None:
        self.quic_close = (ev.error_code, ev.reason_phrase)
        if not self.wire.closed:
            self.wire.connection_lost(ev.error_code, ev.reason_phrase)
        self._drain()
        if hasattr(self, "_status") and not self._status.done():
            self._status.set_result(0)

    async def next_message(self, kind: type, timeout: float = 60) -> Any:
        """The first received message of ``kind`` (taken off the list); fails if the connection closed."""
        end = asyncio.get_running_loop().time() + timeout
        while True:
            for i, m in enumerate(self.messages):
                if isinstance(m, kind):
                    return self.messages.pop(i)
            if self.closed is not None:
                raise AssertionError(f"closed while waiting for {kind.__name__}: {self.closed.describe()}")
            if asyncio.get_running_loop().time() > end:
                raise AssertionError(f"no {kind.__name__} in {timeout} s")
            await asyncio.sleep(0.02)

    async def wait_closed(self, timeout: float = 30) -> ConnectionClosed:
        end = asyncio.get_running_loop().time() + timeout
        while self.closed is None:
            if asyncio.get_running_loop().time() > end:
                raise AssertionError(f"not closed in {timeout} s")
            await asyncio.sleep(0.02)
        return self.closed

    async def aclose(self) -> None:
        if hasattr(self, "_ticker"):
            self._ticker.cancel()
        if not self.wire.closed:
            self.wire.close(0, "the test is done")
            self.flush()
        if hasattr(self, "_cm"):
            await self._cm.__aexit__(None, None, None)
