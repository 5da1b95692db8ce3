"""The server endpoint: listens on a UDP port, runs one handler task per greeted connection.

::

    async def handle(conn: ServerConnection) -> None:
        hello = conn.hello                      # token, keymap, screen, capabilities offered
        conn.accept(session_id="s-1", output_width=1920, output_height=1080)
        async for message in conn:              # input, acks, clipboard, keyframe requests
            ...

    identity = ServerIdentity.load_or_create(state_dir)
    server = await WireServer.start(ServerSettings(identity=identity), handle)
    ...
    await server.close()

The handler is called once the client's Hello arrived (TLS, pinning and mutual TLS are done by
then); it must ``accept()`` or ``close()`` within the wire's handshake timeout, and owns the
connection until it returns (the connection is closed then, if it is not already).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.asyncio import serve
from aioquic.asyncio.server import QuicServer
from aioquic.quic.connection import QuicConnection

from wayray.transport import _aioquic_private as private
from wayray.transport.connection import DEFAULT_PORT, Connection, QuicSettings, WireProtocol
from wayray.transport.errors import TransportError
from wayray.transport.identity import ServerIdentity
from wayray.transport.mtls import ClientCA, ClientCertificateRejected
from wayray.wire import (
    SCALE_ONE,
    Capability,
    ErrorCode,
    Hello,
    HelloReceived,
    ServerHello,
    WireConfig,
    WireRole,
)

log = logging.getLogger("wayray.transport")

Handler = Callable[["ServerConnection"], Awaitable[None]]


@dataclass(frozen=True)
class ServerSettings:
    identity: ServerIdentity
    host: str = "::"
    port: int = DEFAULT_PORT
    wire: WireConfig = field(default_factory=WireConfig)
    quic: QuicSettings = field(default_factory=QuicSettings)
    #: Mutual TLS: when set, viewers must present a certificate issued by this CA (PEM file).
    client_ca: Path | None = None
    #: Connections at once; more are closed with SERVER_BUSY right after their TLS handshake.
    max_connections: int = 1024
    #: QUIC address validation (a Retry round trip before any state is kept): packets from forged
    #: addresses cost the server nothing. Costs one round trip per connection.
    retry: bool = True
    server_name: str = "wrsrvd"
    server_version: str = ""


class ServerConnection(Connection):
    """A connection as the server sees it: the client's Hello, then ``accept()`` or ``close()``."""

    _p: _ServerProtocol

    @property
    def hello(self) -> Hello:
        """The client's Hello (the handler is only called once it arrived)."""
        hello = self._p.wire.hello
        assert hello is not None
        return hello

    @property
    def offered_capabilities(self) -> frozenset[str]:
        """What ``accept()`` will confirm: the client's offer intersected with the server's."""
        return self._p.wire.capabilities

    def withhold_capabilities(self, capabilities: frozenset[str]) -> None:
        """Before ``accept()``: confirm none of these, whatever the client offered (policy)."""
        self._check_open()
        self._p.wire.withhold(capabilities)

    @property
    def client_subject(self) -> str | None:
        """The verified subject of the client's certificate (mutual TLS), else None."""
        return self._p.client_subject

    def redirect(self, *, host: str, port: int, fingerprint: str, server_id: str, reason: str) -> None:
        """Send the viewer to another member of the pool (a Redirect, then Close ``REDIRECTED``);
        only for viewers that offered ``pools`` (:attr:`follows_redirects`)."""
        self._check_open()
        self._p.wire.redirect_to(host, port, fingerprint, server_id, reason)
        self._p.after_wire()
        log.info("%s: redirected to %s:%d (%s)", self.peer_address, host, port, reason)

    @property
    def follows_redirects(self) -> bool:
        """Whether the viewer offered the ``pools`` capability (it can follow a Redirect)."""
        return Capability.POOLS in self.hello.capabilities

    def accept(
        self,
        *,
        session_id: str,
        output_width: int,
        output_height: int,
        output_scale_120: int = SCALE_ONE,
        resumed: bool = False,
        keyframe_follows: bool = True,
    ) -> ServerHello:
        """Send ServerHello: the connection is established and every channel may be used."""
        self._check_open()
        sh = self._p.wire.accept(
            session_id=session_id,
            output_width=output_width,
            output_height=output_height,
            output_scale_120=output_scale_120,
            resumed=resumed,
            keyframe_follows=keyframe_follows,
            server_name=self._p.server.settings.server_name,
            server_version=self._p.server.settings.server_version,
            now=self._p.now(),
        )
        self._p.schedule_flush()
        log.info(
            "%s: accepted into session %s (%s)",
            self.peer_address,
            session_id,
            ", ".join(sorted(sh.capabilities)),
        )
        return sh


class _ServerProtocol(WireProtocol):
    role = WireRole.SERVER

    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *, server: WireServer) -> None:
        self.server = server
        self.client_subject: str | None = None
        self.over_capacity = len(server._live) >= server.settings.max_connections
        if server.client_ca is not None:
            private.request_client_certificate(quic)
        super().__init__(
            quic, stream_handler, wire_config=server.settings.wire, settings=server.settings.quic
        )
        server._live.add(self)

    def _make_connection(self) -> ServerConnection:
        return ServerConnection(self)

    def tls_handshake_completed(self) -> None:
        if self.over_capacity:
            self.wire.fail(
                ErrorCode.SERVER_BUSY,
                f"the server is at its limit of {self.server.settings.max_connections} connections; "
                "try again later",
            )
            return
        ca = self.server.client_ca
        if ca is not None:
            cert, chain = private.peer_certificate(self._quic)
            try:
                self.client_subject = ca.verify(cert, chain)
            except ClientCertificateRejected as err:
                self.wire.fail(err.code, err.reason)
                return
            log.info("%s: client certificate verified: %s", self.peer_address, self.client_subject)
        self.tls_ok = True

    def hello_received(self, event: HelloReceived) -> None:
        # Nothing of its secrets in it (Hello's repr); the application logs what it makes of it.
        log.debug("%s: %r", self.peer_address, event.hello)
        self.server._spawn(self)

    def _quic_terminated(self, ev: Any) -> None:
        super()._quic_terminated(ev)
        self.server._live.discard(self)


class WireServer:
    """A listening WayRay endpoint. Start with :meth:`start`; stop with :meth:`close`."""

    def __init__(self, settings: ServerSettings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.client_ca = ClientCA.load(settings.client_ca) if settings.client_ca is not None else None
        self._live: set[_ServerProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._quic_server: QuicServer | None = None

    @classmethod
    async def start(cls, settings: ServerSettings, handler: Handler) -> WireServer:
        server = cls(settings, handler)
        config = settings.quic.configuration(is_client=False)
        config.certificate = settings.identity.certificate
        config.certificate_chain = list(settings.identity.chain)
        config.private_key = settings.identity.private_key
        try:
            server._quic_server = await serve(
                settings.host,
                settings.port,
                configuration=config,
                create_protocol=functools.partial(_ServerProtocol, server=server),
                retry=settings.retry,
            )
        except OSError as err:
            raise TransportError(
                f"cannot listen on UDP {settings.host} port {settings.port}: {err.strerror}",
                hint="another program may use the port; pick another one in the server's configuration",
            ) from None
        log.info(
            "listening on UDP port %d, identity %s%s",
            server.port,
            settings.identity.fingerprint,
            f", client certificates required (CA {settings.client_ca})" if settings.client_ca else "",
        )
        return server

    @property
    def port(self) -> int:
        """The UDP port actually bound (useful with ``port=0``)."""
        assert self._quic_server is not None and self._quic_server._transport is not None
        return int(self._quic_server._transport.get_extra_info("sockname")[1])

    @property
    def connections(self) -> list[ServerConnection]:
        """Connections not yet closed."""
        return [p.connection for p in self._live if not p.wire.closed]  # type: ignore[misc]

    def _spawn(self, protocol: _ServerProtocol) -> None:
        task = asyncio.ensure_future(self._run_handler(protocol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, protocol: _ServerProtocol) -> None:
        conn = protocol.connection
        assert isinstance(conn, ServerConnection)
        try:
            await self.handler(conn)
        except asyncio.CancelledError:
            conn.close(ErrorCode.SERVER_SHUTDOWN, "the server is shutting down")
            raise
        except Exception as err:
            log.exception("%s: the connection handler failed", conn.peer_address)
            conn.close(
                ErrorCode.INTERNAL_ERROR, f"server error ({type(err).__name__}); see the server's log"
            )
            return
        if not conn.closed:
            if conn.server_hello is None:
                conn.close(ErrorCode.INTERNAL_ERROR, "the server did not answer the Hello")
            else:
                conn.close(ErrorCode.NO_ERROR, "the server finished with this connection")

    async def close(
        self,
        code: int = ErrorCode.SERVER_SHUTDOWN,
        reason: str = "the server is shutting down",
        timeout: float = 2.0,
    ) -> None:
        """Close every connection with ``code``/``reason``, wait for them briefly, stop listening."""
        protocols = list(self._live)
        for p in protocols:
            p.connection.close(code, reason)
        if protocols:
            await asyncio.wait([asyncio.ensure_future(p.wait_closed()) for p in protocols], timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        if self._quic_server is not None:
            self._quic_server.close()
            self._quic_server = None
            await asyncio.sleep(0)  # asyncio closes the socket on the next loop turn: free the port now

    async def __aenter__(self) -> WireServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
