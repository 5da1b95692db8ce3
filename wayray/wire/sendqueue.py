"""The per-channel queues of encoded frames a :class:`~wayray.wire.connection.WireConnection` has not
handed to its transport yet: bounded, latest-wins where the message allows it, taken in priority
order."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from wayray.wire import messages as m
from wayray.wire.protocol import CLOSE, FRAME_UPDATE_NUMBERS, FRAME_UPDATES, MessageSpec

#: Order in which queued data leaves: control first, input before display (input latency matters most).
SEND_ORDER = (m.Channel.CONTROL, m.Channel.INPUT, m.Channel.DISPLAY, m.Channel.AUDIO, m.Channel.USB)


@dataclass
class _Queue:
    frames: deque[bytes] = field(default_factory=deque)
    types: deque[int] = field(default_factory=deque)
    #: Bytes queued that count against the limit (everything but FrameUpdates).
    limited_bytes: int = 0
    total_bytes: int = 0


class SendQueues:
    def __init__(self, limit: int) -> None:
        #: Most bytes queued per channel, not counting FrameUpdates (bounded by the window instead).
        self.limit = limit
        self._queues: dict[m.Channel, _Queue] = {ch: _Queue() for ch in m.Channel}

    def add(self, spec: MessageSpec, frame: bytes) -> int | None:
        """Queue ``frame`` (a latest-wins message replaces an unsent one of its type that is last on
        its channel). Returns None, or, when it would pass the limit and is not queued, the bytes
        that wait on its channel."""
        q = self._queues[spec.channel]
        limited = spec not in FRAME_UPDATES
        if spec.coalesce and q.types and q.types[-1] == spec.number:
            old = q.frames.pop()
            q.types.pop()
            q.total_bytes -= len(old)
            q.limited_bytes -= len(old)
        elif (
            limited
            and spec is not CLOSE
            and q.limited_bytes  # one message larger than the limit still goes out when nothing waits
            and q.limited_bytes + len(frame) > self.limit
        ):
            return q.limited_bytes
        q.frames.append(frame)
        q.types.append(spec.number)
        q.total_bytes += len(frame)
        if limited:
            q.limited_bytes += len(frame)
        return None

    def queued_bytes(self, channel: m.Channel) -> int:
        return self._queues[channel].total_bytes

    def drop(self, channel: m.Channel) -> None:
        self._queues[channel] = _Queue()

    def take(self, budget: Mapping[m.Channel, int] | None = None) -> list[tuple[m.Channel, bytes]]:
        """Whole frames per channel in :data:`SEND_ORDER`, each channel's while what it took is below
        its ``budget`` (so one frame may overshoot; a channel not in it gets nothing; None: all)."""
        out: list[tuple[m.Channel, bytes]] = []
        for ch in SEND_ORDER:
            q = self._queues[ch]
            if not q.frames:
                continue
            limit = None if budget is None else budget.get(ch, 0)
            taken: list[bytes] = []
            size = 0
            while q.frames and (limit is None or size < limit):
                frame = q.frames.popleft()
                msg_type = q.types.popleft()
                taken.append(frame)
                size += len(frame)
                q.total_bytes -= len(frame)
                if not (ch is m.Channel.DISPLAY and msg_type in FRAME_UPDATE_NUMBERS):
                    q.limited_bytes -= len(frame)
            if taken:
                out.append((ch, b"".join(taken) if len(taken) > 1 else taken[0]))
        return out
