"""Events a :class:`~wayray.wire.connection.WireConnection` hands to its owner (``next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wayray.wire.errors import ErrorCode
from wayray.wire.messages import Channel, Hello, ServerHello


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """Server side: a client said Hello in a compatible version. Answer with ``accept()`` or ``close()``."""

    hello: Hello
    #: The capabilities both sides offer; ``accept()`` confirms exactly these.
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """Both sides: ServerHello was sent (server) or received (client); every channel is open now."""

    hello: Hello
    server_hello: ServerHello

    @property
    def capabilities(self) -> frozenset[str]:
        return self.server_hello.capabilities


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for the application (Ping, Pong, Close and the handshake are handled inside)."""

    channel: Channel
    message: Any
    #: The size of the message's body on the wire, in bytes.
    size: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is over: no more events, ``data_to_send()`` has at most the final Close."""

    #: An :class:`ErrorCode` value (an int when a newer peer sent a code this code does not know).
    code: int
    reason: str
    #: True when the peer closed (or vanished), False when this side closed.
    by_peer: bool

    def describe(self) -> str:
        who = "peer" if self.by_peer else "local"
        return f"{ErrorCode.describe(self.code)} by {who}: {self.reason}"


WireEvent = HelloReceived | HandshakeCompleted | MessageReceived | ConnectionClosed
