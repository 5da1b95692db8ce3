"""The settings of one side of a WayRay connection: :class:`WireConfig`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wayray.wire import messages as m
from wayray.wire.layout import MiB

#: What a capability name may look like (lower-case letters, digits, '.', '_', '-'; 32 at most).
CAPABILITY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")


@dataclass(frozen=True)
class WireConfig:
    """Settings of one side. Times are in seconds, on whatever clock the owner passes as ``now``."""

    #: What this side offers. The server confirms the intersection with the client's offer.
    capabilities: frozenset[str] = m.IMPLEMENTED_CAPABILITIES
    #: The version this side speaks (tests use other values to see a mismatch refused).
    version: tuple[int, int] = (m.PROTOCOL_MAJOR, m.PROTOCOL_MINOR)
    #: Server: most FrameUpdates sent but not acknowledged.
    frame_window: int = 4
    #: A Ping goes out this often once the connection is established.
    ping_interval: float = 1.0
    #: Close with IDLE_TIMEOUT when the peer answered no Ping for this long.
    idle_timeout: float = 6.0
    #: Close with HANDSHAKE_TIMEOUT when Hello/ServerHello did not complete in this time.
    handshake_timeout: float = 10.0
    #: Most bytes queued per channel, not counting FrameUpdates (bounded by the window instead).
    send_queue_limit: int = 8 * MiB
    #: Client, with :meth:`WireConnection.ack_frame`: the FrameAck of a small frame (a typed
    #: character) waits up to this long for another message of ours to ride with (the next key, a
    #: Pong), so that the server need not acknowledge a datagram of its own. 0: never held.
    frame_ack_hold: float = 0.25

    def __post_init__(self) -> None:
        # Plain strings, so sets compare and print the same whether built from Capability or decoded.
        object.__setattr__(self, "capabilities", frozenset(str(c) for c in self.capabilities))
        if not 1 <= self.frame_window <= 0xFFFF:
            raise ValueError(f"frame_window must be 1..65535, not {self.frame_window}")
        if self.ping_interval <= 0 or self.idle_timeout <= self.ping_interval:
            raise ValueError("idle_timeout must be longer than ping_interval, and both positive")
        if self.handshake_timeout <= 0 or self.send_queue_limit <= 0:
            raise ValueError("handshake_timeout and send_queue_limit must be positive")
        if not 0 <= self.frame_ack_hold < self.idle_timeout:
            raise ValueError("frame_ack_hold must be at least 0 and shorter than idle_timeout")
        bad = [c for c in self.capabilities if not CAPABILITY_NAME.match(c) or len(c) > 32]
        if bad:
            raise ValueError(f"bad capability names {bad}: lower-case letters, digits, '.', '_', '-'")
