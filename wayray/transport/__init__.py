"""QUIC endpoints (aioquic) for the WayRay wire protocol: TLS identity, server pinning (TOFU or
fixed) or a server CA, optional mutual TLS, channel streams with bounded buffers, keep-alive.

Server: :class:`WireServer` ``.start(ServerSettings(...), handler)``; the handler gets a
:class:`ServerConnection` once the client's Hello arrived. Client: :func:`connect` returns a
:class:`ClientConnection` once the handshake completed. Both are :class:`Connection` objects.
"""

from wayray.transport.client import ClientConnection, ClientSettings, OwnServerKey, connect
from wayray.transport.connection import ALPN, DEFAULT_PORT, Connection, QuicSettings, UsbStreamFull
from wayray.transport.errors import (
    ConnectError,
    ConnectionClosedError,
    Redirected,
    ServerIdentityError,
    TransportError,
)
from wayray.transport.identity import ClientCertificate, ServerIdentity, fingerprint, normalize_fingerprint
from wayray.transport.server import ServerConnection, ServerSettings, WireServer
from wayray.transport.trust import KnownHosts, PinnedFingerprint, ServerCA, ServerTrust

__all__ = [
    "ALPN",
    "DEFAULT_PORT",
    "ClientCertificate",
    "ClientConnection",
    "ClientSettings",
    "ConnectError",
    "Connection",
    "ConnectionClosedError",
    "Redirected",
    "KnownHosts",
    "OwnServerKey",
    "PinnedFingerprint",
    "QuicSettings",
    "ServerCA",
    "ServerConnection",
    "UsbStreamFull",
    "ServerIdentity",
    "ServerIdentityError",
    "ServerSettings",
    "ServerTrust",
    "TransportError",
    "WireServer",
    "connect",
    "fingerprint",
    "normalize_fingerprint",
]
