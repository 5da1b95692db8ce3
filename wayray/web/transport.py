"""The HTTP/3 endpoint of the browser kiosk: each WebTransport session is one wire connection.

A browser opens a QUIC connection (ALPN ``h3``), then an extended CONNECT (``:protocol``
``webtransport``, path ``/wayray?build=BUILD``). Once the endpoint accepted it, the session's
unidirectional streams carry the wire's channels exactly as QUIC streams do for a native viewer
(docs/protocol.md section 10; docs/web-kiosk.md section 2): the first byte names the channel, frames
follow. The same sans-IO :class:`~wayray.wire.WireConnection` runs behind it, and the front door's
handler gets a :class:`~wayray.transport.ServerConnection` as from a QUIC viewer.

Refusals before the session (wrong path, foreign origin, a stale page, a second session) are HTTP
statuses on the CONNECT; anything wrong after it closes the connection with the wire's error code.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aioquic.asyncio import serve
from aioquic.buffer import encode_uint_var
from aioquic.h3 import events as h3e
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from wayray.transport.errors import TransportError
from wayray.transport.server import ServerSettings, WireServer, _ServerProtocol
from wayray.wire import ConnectionClosed, ErrorCode

log = logging.getLogger("wayray.web")

#: The path of the CONNECT that opens a session (the page's ``new WebTransport(URL)``).
SESSION_PATH = "/wayray"
#: The capsule that ends a WebTransport session with a code and a reason (at most 1024 bytes).
CLOSE_WEBTRANSPORT_SESSION = 0x2843
CLOSE_REASON_LIMIT = 1024
#: How long the browser has to end a closed session itself before QUIC's close ends the connection.
CLOSE_GRACE = 1.0
#: The draft of WebTransport over HTTP/3 aioquic speaks; browsers want the server to name it.
_DRAFT_HEADER = (b"sec-webtransport-http3-draft", b"draft02")


@dataclass(frozen=True)
class WebTransportSettings:
    server: ServerSettings
    #: The build of the page this server serves: a CONNECT from another build is refused (409).
    build: str


class WebTransportServer(WireServer):
    """A listening HTTP/3 endpoint whose WebTransport sessions are wire connections."""

    def __init__(self, settings: WebTransportSettings, handler: Any) -> None:
        super().__init__(settings.server, handler)
        self.build = settings.build
        self._configuration: QuicConfiguration | None = None

    @classmethod
    async def start_web(
        cls,
        settings: WebTransportSettings,
        handler: Any,
        certificate: x509.Certificate,
        private_key: PrivateKeyTypes,
        chain: list[x509.Certificate] | None = None,
    ) -> WebTransportServer:
        server = cls(settings, handler)
        quic = settings.server.quic
        config = QuicConfiguration(
            is_client=False,
            alpn_protocols=H3_ALPN,
            idle_timeout=quic.idle_timeout,
            max_datagram_size=quic.max_datagram_size,
            max_data=quic.max_data,
            max_stream_data=quic.max_stream_data,
            # HTTP/3 datagrams must be on offer for WebTransport (RFC 9297); the wire uses none.
            max_datagram_frame_size=65536,
        )
        config.certificate = certificate
        config.certificate_chain = list(chain or [])
        config.private_key = private_key
        server._configuration = config
        try:
            server._quic_server = await serve(
                settings.server.host,
                settings.server.port,
                configuration=config,
                create_protocol=functools.partial(_WebProtocol, server=server),
                retry=settings.server.retry,
            )
        except OSError as err:
            raise TransportError(
                f"cannot listen on UDP {settings.server.host} port {settings.server.port} for the browser "
                f"kiosk: {err.strerror}",
                hint="another program may use the port; pick another web.port in the server's configuration",
            ) from None
        return server

    def present(self, certificate: x509.Certificate, private_key: PrivateKeyTypes) -> None:
        """Present another certificate to connections from now on (those open keep theirs)."""
        assert self._configuration is not None
        self._configuration.certificate = certificate
        self._configuration.private_key = private_key


class _WebProtocol(_ServerProtocol):
    """One QUIC connection of the HTTP/3 endpoint: HTTP/3 until the WebTransport session is accepted,
    then the wire inside that session's streams."""

    server: WebTransportServer

    def __init__(
        self, quic: QuicConnection, stream_handler: Any = None, *, server: WebTransportServer
    ) -> None:
        super().__init__(quic, stream_handler, server=server)
        self.h3: H3Connection | None = None
        #: The accepted WebTransport session (its CONNECT stream), None until then.
        self.session_id: int | None = None
        #: QUIC ended the connection (either side's close, or its idle timeout).
        self._quic_gone = False

    def _quic_terminated(self, ev: qe.ConnectionTerminated) -> None:
        self._quic_gone = True
        super()._quic_terminated(ev)

    # --- aioquic → HTTP/3 → wire ---------------------------------------------------------------------

    def tls_handshake_completed(self) -> None:
        if self.over_capacity:
            self.wire.fail(
                ErrorCode.SERVER_BUSY,
                f"the server is at its limit of {self.server.settings.max_connections} connections; "
                "try again later",
            )
        # tls_ok stays False until a WebTransport session is accepted: stream data is HTTP/3's.

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        try:
            if isinstance(event, qe.ProtocolNegotiated) and self.h3 is None:
                self.h3 = H3Connection(self._quic, enable_webtransport=True)
            elif isinstance(event, qe.HandshakeCompleted):
                self.tls_handshake_completed()
            elif isinstance(event, qe.ConnectionTerminated):
                self._quic_terminated(event)
            elif isinstance(event, (qe.StreamReset, qe.StopSendingReceived)) and self._is_wire_stream(
                event.stream_id
            ):
                self.wire.fail(
                    ErrorCode.PROTOCOL_VIOLATION, f"the page reset or refused stream {event.stream_id}"
                )
            elif self.h3 is not None:
                for h3_event in self.h3.handle_event(event):
                    self._h3_event(h3_event)
        except Exception:  # one connection's bug must not reach aioquic's caller (the server's loop)
            log.exception("%s: internal error handling %s", self.peer_address, type(event).__name__)
            self.wire.fail(ErrorCode.INTERNAL_ERROR, "internal error in the transport (see the log)")
        self.after_wire()

    def _is_wire_stream(self, stream_id: int) -> bool:
        return stream_id in self._recv_streams or stream_id in self._send_streams.values()

    def _h3_event(self, event: h3e.H3Event) -> None:
        if isinstance(event, h3e.HeadersReceived):
            self._request(event)
        elif isinstance(event, h3e.WebTransportStreamDataReceived):
            if self.session_id is None or event.session_id != self.session_id:
                self.wire.fail(
                    ErrorCode.PROTOCOL_VIOLATION, "WebTransport stream data for no accepted session"
                )
                return
            self._stream_data(qe.StreamDataReceived(event.data, event.stream_ended, event.stream_id))
        elif isinstance(event, h3e.DatagramReceived):
            self.wire.fail(
                ErrorCode.PROTOCOL_VIOLATION, "WayRay sends no datagrams in a WebTransport session"
            )
        elif (
            isinstance(event, h3e.DataReceived) and event.stream_id == self.session_id and event.stream_ended
        ):
            # The page ended its session (the CONNECT stream's end): as a QUIC viewer going away.
            self.wire.connection_lost(ErrorCode.NO_ERROR, "the page closed its WebTransport session")

    def _request(self, event: h3e.HeadersReceived) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1", "replace") for k, v in event.headers}
        method, protocol = headers.get(":method"), headers.get(":protocol")
        url = urlsplit(headers.get(":path", ""))
        if method != "CONNECT" or protocol != "webtransport" or url.path != SESSION_PATH:
            self._refuse(event.stream_id, 404, f"{method} {url.path} is not the WayRay session")
            return
        authority = headers.get(":authority", "")
        origin = headers.get("origin", "")
        if origin != f"https://{authority}":
            self._refuse(
                event.stream_id, 403, f"a page of another origin ({origin or 'none'}) is not served"
            )
            return
        build = parse_qs(url.query).get("build", [""])[0]
        if build != self.server.build:
            self._refuse(event.stream_id, 409, "a stale page (of another build of WayRay); it must reload")
            return
        if self.session_id is not None or self.wire.closed:
            self._refuse(event.stream_id, 429, "one WebTransport session per connection")
            return
        assert self.h3 is not None
        self.h3.send_headers(event.stream_id, [(b":status", b"200"), _DRAFT_HEADER])
        self.session_id = event.stream_id
        self.tls_ok = True  # from now on stream data is the wire's (see _stream_data)
        log.debug("%s: WebTransport session %d accepted", self.peer_address, event.stream_id)

    def _refuse(self, stream_id: int, status: int, why: str) -> None:
        assert self.h3 is not None
        _log_refusal(f"{self.peer_address}: WebTransport refused ({status}): {why}", status)
        self.h3.send_headers(stream_id, [(b":status", str(status).encode())], end_stream=True)

    # --- wire → WebTransport ------------------------------------------------------------------------

    def _wire_closed(self, event: ConnectionClosed) -> None:
        # The page cannot see QUIC's application close code (the browser reports a WebTransport
        # session's close from its CLOSE_WEBTRANSPORT_SESSION capsule): the wire's code and reason
        # go in one, on the CONNECT stream, ahead of the Close message and QUIC's close.
        if self.h3 is not None and self.session_id is not None and not self.quic_terminated:
            reason = event.reason.encode("utf-8")[:CLOSE_REASON_LIMIT].decode("utf-8", "ignore").encode()
            body = int(event.code).to_bytes(4, "big") + reason
            capsule = encode_uint_var(CLOSE_WEBTRANSPORT_SESSION) + encode_uint_var(len(body)) + body
            try:
                self.h3.send_data(self.session_id, capsule, end_stream=True)
            except Exception:  # noqa: BLE001 - the page then reads the Close message, or QUIC's close
                log.debug("%s: no close capsule", self.peer_address, exc_info=True)
            else:
                # The Close message and the capsule go now; QUIC's own close a moment later, so that
                # the browser ends the session by the capsule (an abrupt QUIC close is "connection
                # lost" to it, whatever its code).
                try:
                    self._pump(unlimited=True)
                except (ValueError, RuntimeError):
                    pass
                self.transmit()
                self.quic_terminated = True  # for the base class: nothing more to send now
                super()._wire_closed(event)
                self._loop.call_later(CLOSE_GRACE, self._close_quic, int(event.code), event.reason)
                return
        super()._wire_closed(event)

    def _close_quic(self, code: int, reason: str) -> None:
        if not self._quic_gone:  # the browser did not close first
            self._quic.close(error_code=code, reason_phrase=reason.encode()[:200].decode("utf-8", "ignore"))
            self.transmit()

    def _open_stream(self) -> int:
        if self.h3 is None or self.session_id is None:  # a Close before any session: QUIC's says it
            raise RuntimeError("no WebTransport session to send on")
        return self.h3.create_webtransport_stream(self.session_id, is_unidirectional=True)


#: Refusals are logged once a minute per status, the ones in between counted in the next line (as
#: the front door's Gate does): a page or a stranger retrying fills no disk.
REFUSAL_LOG_INTERVAL = 60.0
_refusals: dict[int, tuple[float, int]] = {}


def _log_refusal(line: str, status: int) -> None:
    now = time.monotonic()
    last, quiet = _refusals.get(status, (-REFUSAL_LOG_INTERVAL, 0))
    if now - last < REFUSAL_LOG_INTERVAL:
        _refusals[status] = (last, quiet + 1)
        return
    more = f" ({quiet} more refused with {status} in the last minute, not logged)" if quiet else ""
    log.info("%s%s", line, more)
    _refusals[status] = (now, 0)
