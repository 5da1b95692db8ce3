"""The client endpoint: connect to a server, check its identity, say Hello.

::

    settings = ClientSettings(trust=KnownHosts(Path("~/.config/wayray/known_hosts").expanduser()))
    hello = HelloParams(token=badge, token_kind=TokenKind.BADGE, screen_width=1920, screen_height=1080,
                        keymap=xkb_text)
    conn = await connect("server.example", 7100, settings, hello)
    try:
        conn.server_hello                      # session id, output size, resumed, frame window
        async for message in conn:             # FrameUpdate, CursorImage, ClipboardText, SessionEvent
            ...
            conn.send(FrameAck(seq=frame.seq, decode_us=...))
    finally:
        await conn.aclose()

The server's certificate is checked against ``server_ca`` (when set: chain and host name) and
``trust`` (when set: pins or trust on first use) as soon as TLS completes and before anything is
sent, so a server that fails the check never sees the token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from aioquic.quic.connection import QuicConnection

from wayray.transport import _aioquic_private as private
from wayray.transport.connection import Connection, QuicSettings, WireProtocol
from wayray.transport.errors import ConnectError, ConnectionClosedError, Redirected, ServerIdentityError
from wayray.transport.identity import ClientCertificate, fingerprint, terminal_id_for
from wayray.transport.trust import ServerCA, ServerTrust, host_key
from wayray.wire import ErrorCode, HelloParams, HelloReceived, WireConfig, WireRole
from wayray.wire.protocol import HELLO_CREDENTIALS

log = logging.getLogger("wayray.transport")


@dataclass(frozen=True)
class OwnServerKey:
    """The access key of the user's own standalone server (``wrsrvd --standalone`` keeps it in its
    state directory, with its TLS identity). A viewer given no key presents it only to a server on
    a loopback address (the address connected to, not the name given) whose certificate is that
    identity: not to another user's server on this machine, nor to one elsewhere."""

    fingerprint: str
    #: A secret: never in a repr.
    key: str = field(repr=False)


@dataclass(frozen=True)
class ClientSettings:
    #: Which server identities to accept: PinnedFingerprint(...) or KnownHosts(path). None: only
    #: ``server_ca`` decides (it must be set then).
    trust: ServerTrust | None
    wire: WireConfig = field(default_factory=WireConfig)
    quic: QuicSettings = field(default_factory=QuicSettings)
    #: For servers that require mutual TLS.
    client_certificate: ClientCertificate | None = None
    #: Give up when the handshake (QUIC, TLS, Hello/ServerHello) has not finished in this time.
    connect_timeout: float = 10.0
    #: The server's certificate must chain to this CA and name the host dialled; checked before
    #: ``trust``, so trust on first use never records an identity the CA refuses.
    server_ca: ServerCA | None = None
    #: The user's own standalone server: its key goes in a Hello that carries no key, to that server
    #: only (see OwnServerKey).
    own_server: OwnServerKey | None = None

    def __post_init__(self) -> None:
        if self.trust is None and self.server_ca is None:
            raise ValueError("ClientSettings needs trust, server_ca, or both")


class ClientConnection(Connection):
    _p: _ClientProtocol

    @property
    def server_fingerprint(self) -> str | None:
        """The server's identity (``sha256:...``), checked against the trust settings."""
        return self._p.server_fingerprint


class _ClientProtocol(WireProtocol):
    role = WireRole.CLIENT

    def __init__(
        self,
        quic: QuicConnection,
        *,
        settings: ClientSettings,
        host: str,
        port: int,
        hello: HelloParams,
        loopback: bool = False,
        hold_hello: bool = False,
    ) -> None:
        #: Dialled ahead (:func:`dial_ahead`): the Hello waits for :meth:`send_held_hello`.
        self.hold_hello = hold_hello
        #: Set when TLS completed and the identity checks passed (``tls_ok``), or the connection ended.
        self.tls_checked = asyncio.Event()
        self.trust = settings.trust
        #: The user's own server's key, when the address connected to is loopback.
        self.own_server = settings.own_server if loopback else None
        self.server_ca = settings.server_ca
        self.host, self.port = host, port
        self.hello_params = hello
        self.server_fingerprint: str | None = None
        self.identity_error: ServerIdentityError | None = None
        self.refused: OSError | None = None
        self.transport_closer: asyncio.Task[None] | None = None
        super().__init__(quic, wire_config=settings.wire, settings=settings.quic)

    def _make_connection(self) -> ClientConnection:
        return ClientConnection(self)

    @property
    def peer_address(self) -> str:
        return host_key(self.host, self.port)

    def tls_handshake_completed(self) -> None:
        cert, chain = private.peer_certificate(self._quic)
        if cert is None:  # cannot happen with TLS 1.3 certificates; fail closed all the same
            self.wire.fail(ErrorCode.SERVER_IDENTITY_REJECTED, "the server presented no certificate")
            return
        fp = fingerprint(cert)
        try:
            if self.server_ca is not None:
                self.server_ca.check(self.host, self.port, cert, chain)
            if self.trust is not None:
                self.trust.check(self.host, self.port, fp)
        except ServerIdentityError as err:
            self.identity_error = err
            self.wire.fail(
                ErrorCode.SERVER_IDENTITY_REJECTED, "the viewer does not trust this server's identity"
            )
            return
        self.server_fingerprint = fp
        self.tls_ok = True
        self.tls_checked.set()
        if not self.hold_hello:
            self._send_hello()

    def _send_hello(self) -> None:
        hello = self.hello_params
        own = self.own_server
        if own is not None and not hello.access_key and self.server_fingerprint == own.fingerprint:
            hello = dataclasses.replace(hello, access_key=own.key)
        if hello.terminal_key and self.server_fingerprint is not None:
            # An identity for this server only: one server's cannot pass for this kiosk at another.
            bound = terminal_id_for(hello.terminal_key, self.server_fingerprint)
            hello = dataclasses.replace(hello, terminal_id=bound, terminal_key="")
        self.wire.send_hello(hello)

    def send_held_hello(self, hello: HelloParams) -> None:
        """A connection dialled ahead: say ``hello`` now (TLS and the identity checks passed)."""
        assert self.hold_hello and self.tls_ok
        self.hold_hello = False
        self.hello_params = hello
        self._send_hello()
        self.after_wire()
        self.transmit()

    def _wire_closed(self, event: Any) -> None:
        super()._wire_closed(event)
        self.tls_checked.set()  # whoever waits for a connection dialled ahead: it ended

    def hello_received(self, event: HelloReceived) -> None:  # pragma: no cover - server side only
        raise AssertionError("a client never receives Hello")

    def error_received(self, exc: Exception) -> None:
        # ICMP errors on the connected UDP socket: nothing listens there.
        if isinstance(exc, OSError) and not self.wire.established:
            self.refused = exc
            self.wire.connection_lost(
                ErrorCode.TRANSPORT_ERROR, f"{self.peer_address}: {exc.strerror or exc}"
            )
            self.after_wire()


#: Servers (host:port) that refused a 1.2 Hello as malformed: they speak 1.1, whose Hello ends before
#: the access key and the terminal identity. Kept for the life of the process.
_SPEAKS_1_1: set[str] = set()


async def connect(host: str, port: int, settings: ClientSettings, hello: HelloParams) -> ClientConnection:
    """Connect, check the server's identity, complete Hello/ServerHello. Raises ConnectError (no
    answer, refused, TLS failure), ServerIdentityError (identity not trusted) or ConnectionClosedError
    (the server refused: version, token, client certificate, busy).

    A server of protocol 1.1 refuses a 1.2 Hello (its decoder does not know the fields 1.2 added and
    calls them trailing bytes): the viewer then connects again with a 1.1 Hello, once, and keeps doing
    so with that server. Only the server whose identity was just checked can send that refusal (it
    travels inside TLS), so nobody else can talk a viewer down to 1.1."""
    where = host_key(host, port)
    if settings.wire.version >= HELLO_CREDENTIALS and where in _SPEAKS_1_1:
        settings = _as_1_1(settings)
    try:
        return await _connect(host, port, settings, hello)
    except ConnectionClosedError as err:
        old_server = (
            err.code == ErrorCode.MALFORMED_MESSAGE
            and err.reason.startswith("Hello")
            and settings.wire.version >= HELLO_CREDENTIALS
        )
        if not old_server:
            raise
    _SPEAKS_1_1.add(where)
    log.info(
        "%s speaks protocol 1.1 (it refused the 1.2 Hello); connecting again with a 1.1 Hello, without "
        "the access key and this viewer's identity, which that server does not know",
        where,
    )
    return await _connect(host, port, _as_1_1(settings), hello)


def _as_1_1(settings: ClientSettings) -> ClientSettings:
    wire = dataclasses.replace(settings.wire, version=(settings.wire.version[0], 1))
    return dataclasses.replace(settings, wire=wire)


async def _connect(host: str, port: int, settings: ClientSettings, hello: HelloParams) -> ClientConnection:
    protocol, transport = await _open(host, port, settings, hello, hold_hello=False)
    return await _finish(protocol, transport, host, port, settings)


async def _open(
    host: str, port: int, settings: ClientSettings, hello: HelloParams, *, hold_hello: bool
) -> tuple[_ClientProtocol, Any]:
    """Start the QUIC handshake to ``host``:``port`` (the Hello follows the identity checks, or with
    ``hold_hello`` waits for :meth:`_ClientProtocol.send_held_hello`)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as err:
        raise ConnectError(f"cannot resolve {host}: {err.strerror or err}") from None
    family, _, _, _, sockaddr = infos[0]
    addr: Any = sockaddr  # (host, port), or for IPv6 (host, port, flowinfo, scope_id)

    config = settings.quic.configuration(is_client=True)
    # Identity (pins, trust on first use, the configured CA and the host name) is checked in
    # tls_handshake_completed, where a refusal can say what was wrong: aioquic's own check only says
    # "bad certificate".
    config.verify_mode = ssl.CERT_NONE
    config.server_name = host
    if settings.client_certificate is not None:
        config.certificate, config.certificate_chain, config.private_key = settings.client_certificate.load()
    quic = QuicConnection(configuration=config)

    def factory() -> _ClientProtocol:
        return _ClientProtocol(
            quic,
            settings=settings,
            host=host,
            port=port,
            hello=hello,
            loopback=_is_loopback(addr[0]),
            hold_hello=hold_hello,
        )

    # A connected socket: only the server's datagrams reach us, and ICMP "port unreachable" does.
    transport, protocol = await loop.create_datagram_endpoint(factory, family=family, remote_addr=addr[:2])
    protocol.connect(transport.get_extra_info("peername"))  # the exact form asyncio's sendto accepts
    return protocol, transport


async def _finish(
    protocol: _ClientProtocol, transport: Any, host: str, port: int, settings: ClientSettings
) -> ClientConnection:
    """Wait for the ServerHello of a connection whose Hello is sent (or will be)."""
    where = host_key(host, port)
    try:
        await asyncio.wait_for(asyncio.shield(protocol.established), settings.connect_timeout)
    except TimeoutError:
        await _abandon(protocol, transport)
        raise ConnectError(
            f"no answer from {where} within {settings.connect_timeout:g} s",
            hint=f"check that wrsrvd runs there and that UDP port {port} is reachable",
        ) from None
    except ConnectionClosedError as err:
        if err.code == ErrorCode.REDIRECTED and protocol.wire.redirect is not None:
            # The server closed on purpose: let QUIC finish its close in the background and go to
            # the member the Redirect names now (waiting for it cost a redirected badge-in ~200 ms).
            _close_transport_when_done(protocol, transport)
            raise Redirected(protocol.wire.redirect, where=where) from None
        await _abandon(protocol, transport)
        if protocol.identity_error is not None:
            raise protocol.identity_error from None
        if protocol.refused is not None:
            raise ConnectError(
                f"{where} refused the connection: nothing listens on UDP port {port}",
                hint="check the address and that wrsrvd runs there",
            ) from None
        if err.code == ErrorCode.TRANSPORT_ERROR:
            raise ConnectError(f"could not connect to {where}: {err.reason}") from None
        raise
    except BaseException:
        await _abandon(protocol, transport)
        raise
    conn = protocol.connection
    assert isinstance(conn, ClientConnection)
    _close_transport_when_done(protocol, transport)
    log.info("connected to %s (%s): %r", where, protocol.server_fingerprint, conn.server_hello)
    return conn


class DialledAhead:
    """A QUIC + TLS handshake made before it is known to be needed (docs/pools.md §4): a pool viewer
    dials the other members while the member it reached looks the badge up, so that a Redirect to
    one of them finds the handshake done. Nothing is sent on it (no Hello, so no token) until
    :meth:`use`; :meth:`close` ends it unused."""

    def __init__(self, host: str, port: int, settings: ClientSettings, hello: HelloParams) -> None:
        self.host, self.port = host, port
        self.settings = settings
        self._opened: asyncio.Task[tuple[_ClientProtocol, Any]] = asyncio.ensure_future(
            _open(host, port, settings, hello, hold_hello=True)
        )
        self._used = False

    async def ready(self, fingerprint: str) -> bool:
        """Whether the handshake completed with the server's identity ``fingerprint`` (and the
        viewer's own trust); waits for a handshake still under way, up to the connect timeout, then
        raises :class:`ConnectError` as :func:`connect` would (dialling again would wait as long)."""
        timeout = self.settings.connect_timeout
        try:
            protocol, _ = await asyncio.wait_for(asyncio.shield(self._opened), timeout)
            await asyncio.wait_for(protocol.tls_checked.wait(), timeout)
        except TimeoutError:
            raise ConnectError(
                f"no answer from {host_key(self.host, self.port)} within {timeout:g} s",
                hint=f"check that wrsrvd runs there and that UDP port {self.port} is reachable",
            ) from None
        except (ConnectError, OSError):
            return False
        return protocol.tls_ok and not protocol.wire.closed and protocol.server_fingerprint == fingerprint

    async def use(self, hello: HelloParams) -> ClientConnection:
        """Say ``hello`` on the connection (call after :meth:`ready` said True)."""
        protocol, transport = self._opened.result()
        self._used = True
        protocol.send_held_hello(hello)
        return await _finish(protocol, transport, self.host, self.port, self.settings)

    def close(self) -> None:
        """End it unused (in the background: nobody waits for QUIC's close)."""
        if self._used:
            return
        self._used = True
        if self._opened.done():
            _close_opened(self._opened)
        else:  # the socket is being made (no handshake is awaited there): close it once it is
            self._opened.add_done_callback(_close_opened)


def _close_opened(opened: asyncio.Task[tuple[_ClientProtocol, Any]]) -> None:
    if opened.cancelled() or opened.exception() is not None:
        return
    protocol, transport = opened.result()
    if not protocol.wire.closed:
        protocol.connection.close(ErrorCode.NO_ERROR, "dialled ahead for a redirect that did not come")
    _close_transport_when_done(protocol, transport)


def _is_loopback(address: str) -> bool:
    """Whether a resolved address is this machine's own (127.0.0.0/8, ::1, IPv4-mapped 127/8)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


async def _abandon(protocol: _ClientProtocol, transport: Any) -> None:
    protocol.connection.close(ErrorCode.NO_ERROR, "the viewer gave up connecting")
    try:
        await asyncio.wait_for(protocol.wait_closed(), 1.0)
    except TimeoutError:
        pass
    transport.close()


def _close_transport_when_done(protocol: _ClientProtocol, transport: Any) -> None:
    async def wait() -> None:
        await protocol.wait_closed()
        transport.close()

    protocol.transport_closer = asyncio.ensure_future(wait())  # a reference keeps the task alive
