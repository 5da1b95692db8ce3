"""Client: the FrameAck of a small frame, waiting for company (docs/protocol.md section 6).

Over QUIC every datagram carrying stream data is acknowledged by the peer: a FrameAck sent alone
after a typed character's frame made the server send a datagram of nothing but a QUIC ACK. Held for
the viewer's next message (its next key), it rides in that datagram instead. Used by
:class:`wayray.wire.connection.WireConnection` (``ack_frame``); no I/O, time passed in.
"""

from __future__ import annotations

from wayray.wire.messages import FrameAck

#: FrameUpdates of at most this many body bytes (one datagram) may have their ack held; larger ones
#: measure the link's bandwidth, and their acks go at once.
ACK_HOLD_MAX_BODY = 1200


class AckHold:
    def __init__(self, hold: float) -> None:
        #: How long an ack may wait (0: never held).
        self.hold = hold
        #: The ack waiting, if any.
        self.held: FrameAck | None = None
        self._since = 0.0
        self._last_frame: tuple[int, bool] | None = None  # its seq, and whether it is small
        self._pinged = False

    def frame_received(self, seq: int, keyframe: bool, body_bytes: int) -> None:
        self._last_frame = (seq, not keyframe and body_bytes <= ACK_HOLD_MAX_BODY)

    def pinged(self) -> None:
        """A Ping came: the next small frame's ack is not held (the Ping may have overtaken that
        frame, and the server wait for its ack: wrsrvd switching compositors)."""
        self._pinged = True

    def offer(self, ack: FrameAck, now: float) -> bool:
        """Hold ``ack`` when it may wait (True); False: it goes now. Take the held one out first."""
        small = self._last_frame == (ack.seq, True)
        if small and self.hold > 0 and not self._pinged:
            self.held, self._since = ack, now
            return True
        if small:
            self._pinged = False
        return False

    @property
    def deadline(self) -> float | None:
        """When the held ack must go even alone."""
        return None if self.held is None else self._since + self.hold

    def take(self, now: float) -> FrameAck | None:
        """The held ack, no longer held, its ``decode_us`` counting the wait (it always says how long
        after the frame arrived the ack left, so the server's round-trip estimate stays true)."""
        ack, self.held = self.held, None
        if ack is None:
            return None
        waited = int(max(0.0, now - self._since) * 1e6)
        return FrameAck(seq=ack.seq, decode_us=min(ack.decode_us + waited, 0xFFFF_FFFF))
