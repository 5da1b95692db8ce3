"""A UDP relay that behaves like a slow link: a bit rate, a delay each way, a bounded queue.

    relay = ThrottledRelay(server_port, rate_bps=2_000_000, rtt_s=0.05)
    relay.start()            # viewers connect to 127.0.0.1:relay.port
    ...
    relay.stop()

Each direction is a bottleneck of its own: a datagram waits until the ones before it have been
serialized at ``rate_bps``, then travels ``rtt_s / 2``; a datagram that would wait more than
``queue_s`` in the bottleneck's queue is dropped (drop-tail, as a router's buffer does), which is
what QUIC's congestion control reacts to. One thread, ``select`` with the next delivery as timeout:
enough for tens of Mbit/s in Python. Used by ``bench/adaptive_link.py`` and tests/e2e/test_adaptive.py.
"""

from __future__ import annotations

import heapq
import select
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Direction:
    rate_bps: float
    delay_s: float
    queue_s: float
    busy_until: float = 0.0
    dropped: int = 0
    sent_bytes: int = 0
    #: (monotonic time, seconds the datagram waited in the queue), for the queue's growth.
    waits: list[tuple[float, float]] = field(default_factory=list)

    def admit(self, now: float, size: int) -> float | None:
        """When a datagram of ``size`` bytes arriving ``now`` comes out the far end (None: dropped)."""
        start = max(now, self.busy_until)
        if start - now > self.queue_s:
            self.dropped += 1
            return None
        self.busy_until = start + size * 8 / self.rate_bps
        self.sent_bytes += size
        if len(self.waits) < 500_000:
            self.waits.append((now, start - now))
        return self.busy_until + self.delay_s


class ThrottledRelay(threading.Thread):
    def __init__(
        self, server_port: int, *, rate_bps: float, rtt_s: float = 0.05, queue_s: float = 0.2
    ) -> None:
        super().__init__(daemon=True, name="throttled-relay")
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.front.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.back.connect(("127.0.0.1", server_port))
        self.down = _Direction(rate_bps, rtt_s / 2, queue_s)  # server → viewer
        self.up = _Direction(rate_bps, rtt_s / 2, queue_s)  # viewer → server
        self.client: tuple[str, int] | None = None
        self._due: list[tuple[float, int, bool, bytes]] = []  # (when, order, to_viewer, datagram)
        self._order = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join(5)
        self.front.close()
        self.back.close()

    def run(self) -> None:
        while not self._done.is_set():
            now = time.monotonic()
            timeout = 0.05 if not self._due else max(0.0, min(0.05, self._due[0][0] - now))
            ready, _, _ = select.select([self.front, self.back], [], [], timeout)
            now = time.monotonic()
            for s in ready:
                try:
                    if s is self.front:
                        data, self.client = self.front.recvfrom(65536)
                        self._queue(self.up, now, False, data)
                    else:
                        self._queue(self.down, now, True, self.back.recv(65536))
                except OSError:
                    pass
            while self._due and self._due[0][0] <= time.monotonic():
                _, _, to_viewer, data = heapq.heappop(self._due)
                try:
                    if to_viewer:
                        if self.client is not None:
                            self.front.sendto(data, self.client)
                    else:
                        self.back.send(data)
                except OSError:
                    pass

    def _queue(self, d: _Direction, now: float, to_viewer: bool, data: bytes) -> None:
        when = d.admit(now, len(data))
        if when is not None:
            self._order += 1
            heapq.heappush(self._due, (when, self._order, to_viewer, data))
