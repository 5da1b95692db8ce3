"""Frame credit: how many FrameUpdates may be in flight, with cumulative acknowledgements.

Used by WireConnection on both sides of a connection, and meant for whoever else paces frames on
the viewer's behalf (the session compositor, behind wrsrvd, sees the same FrameAcks relayed): encode
only while ``available`` > 0, and then the newest content.
"""

from __future__ import annotations

from collections import deque


class CreditError(ValueError):
    """A frame sent without credit, a seq out of order, or an ack that does not fit."""


class SeqOrderError(CreditError):
    """A FrameUpdate seq that does not increase."""


class FrameCredit:
    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"the frame window must be at least 1, not {window}")
        self.window = window
        self._unacked: deque[int] = deque()
        self.last_seq: int | None = None
        self.last_ack: int | None = None

    @property
    def available(self) -> int:
        """How many more frames may be sent now."""
        return max(0, self.window - len(self._unacked))

    @property
    def unacked(self) -> tuple[int, ...]:
        return tuple(self._unacked)

    def sent(self, seq: int) -> None:
        """Record frame ``seq`` as sent: seqs strictly increase, and only while there is credit."""
        if self.last_seq is not None and seq <= self.last_seq:
            raise SeqOrderError(f"FrameUpdate seq {seq} does not follow seq {self.last_seq}")
        if not self.available:
            raise CreditError(
                f"no frame credit: {len(self._unacked) + 1} FrameUpdates would be unacknowledged, "
                f"the window is {self.window}"
            )
        self.last_seq = seq
        self._unacked.append(seq)

    def acked(self, seq: int) -> None:
        """Record a cumulative ack: every frame up to and including ``seq`` is done."""
        if self.last_seq is None or seq > self.last_seq:
            raise CreditError(f"FrameAck for seq {seq}, but the last FrameUpdate was {self.last_seq}")
        if self.last_ack is not None and seq < self.last_ack:
            raise CreditError(f"FrameAck seq {seq} goes back from {self.last_ack}")
        self.last_ack = seq
        while self._unacked and self._unacked[0] <= seq:
            self._unacked.popleft()

    def reset(self, window: int | None = None) -> None:
        """Forget frames in flight (a new viewer attached); optionally take its window."""
        if window is not None:
            if window < 1:
                raise ValueError(f"the frame window must be at least 1, not {window}")
            self.window = window
        self._unacked.clear()
        self.last_seq = None
        self.last_ack = None
