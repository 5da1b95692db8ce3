"""What can go wrong on the QUIC side, as errors an operator or a viewer's user can act on."""

from __future__ import annotations

from wayray.common.errors import WayRayError
from wayray.wire.errors import ErrorCode
from wayray.wire.events import ConnectionClosed
from wayray.wire.messages import Redirect


class TransportError(WayRayError):
    """A connection could not be made or kept."""


class ConnectError(TransportError):
    """The server did not answer, refused, or the TLS handshake failed."""


class ServerIdentityError(TransportError):
    """The server's certificate is not the one this viewer trusts for that address."""


class Redirected(TransportError):
    """The server sent the viewer to another member of its pool (``redirect``: where, and the
    identity to accept there)."""

    def __init__(self, redirect: Redirect, *, where: str) -> None:
        super().__init__(f"{where} sends this viewer to {redirect.host}:{redirect.port} ({redirect.reason})")
        self.redirect = redirect


class ConnectionClosedError(TransportError):
    """The connection is closed; ``code`` and ``reason`` say why (from the peer or from this side)."""

    def __init__(self, event: ConnectionClosed, *, where: str = "") -> None:
        who = "the peer" if event.by_peer else "this side"
        prefix = f"{where}: " if where else ""
        super().__init__(
            f"{prefix}connection closed by {who}: {ErrorCode.describe(event.code)}: {event.reason}"
        )
        self.event = event
        self.code = event.code
        self.reason = event.reason
