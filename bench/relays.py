"""Relays on 127.0.0.1 that count what crosses them, for the benchmarks that compare WayRay's bytes on the
wire with a peer's: TCP (every connection; a WebSocket, a PulseAudio tunnel, a page over HTTPS) and UDP
(QUIC: one socket towards the server per address on the other side, so the server sees distinct peers).
Each relays ``127.0.0.1:port → 127.0.0.1:target``; ``relay()`` picks a port free for both when asked.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Traffic:
    """What the relays saw: (monotonic time, towards the page?, bytes)."""

    events: list[tuple[float, bool, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, to_page: bool, n: int) -> None:
        with self.lock:
            self.events.append((time.monotonic(), to_page, n))

    def bytes(self, t0: float, t1: float, to_page: bool) -> int:
        with self.lock:
            return sum(n for t, d, n in self.events if t0 <= t <= t1 and d == to_page)


class TcpRelay(threading.Thread):
    """127.0.0.1:port → 127.0.0.1:target, every connection, counting bytes each way."""

    def __init__(self, listener: socket.socket, target: int, traffic: Traffic) -> None:
        super().__init__(daemon=True)
        self.listener, self.target, self.traffic = listener, target, traffic
        self.port = listener.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                page_side, _ = self.listener.accept()
            except OSError:
                return
            try:
                server_side = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                page_side.close()
                continue
            for s in (page_side, server_side):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(page_side, server_side, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server_side, page_side, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_page: bool) -> None:
        try:
            while data := src.recv(262144):
                dst.sendall(data)
                self.traffic.add(to_page, len(data))
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class UdpRelay(threading.Thread):
    """127.0.0.1:port (UDP) → 127.0.0.1:target, one socket towards the server per page-side address."""

    def __init__(self, front: socket.socket, target: int, traffic: Traffic) -> None:
        super().__init__(daemon=True)
        self.front, self.target, self.traffic = front, target, traffic
        self.backs: dict[tuple[str, int], socket.socket] = {}
        self.clients: dict[socket.socket, tuple[str, int]] = {}

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self.front, *self.clients], [], [], 0.5)
            for s in ready:
                try:
                    if s is self.front:
                        data, addr = self.front.recvfrom(65536)
                        back = self.backs.get(addr)
                        if back is None:
                            back = self.backs[addr] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            back.connect(("127.0.0.1", self.target))
                            self.clients[back] = addr
                        back.send(data)
                        self.traffic.add(False, len(data))
                    else:
                        data = s.recv(65536)
                        self.front.sendto(data, self.clients[s])
                        self.traffic.add(True, len(data))
                except OSError:
                    pass


def relay(target: int, traffic: Traffic, udp: bool) -> int:
    """Starts the relays towards ``target`` on a port free for TCP (and UDP: the same number); its port."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", 0))
        port: int = tcp.getsockname()[1]
        dgram = None
        if udp:
            dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                dgram.bind(("127.0.0.1", port))
            except OSError:
                tcp.close()
                dgram.close()
                continue
        tcp.listen(64)
        TcpRelay(tcp, target, traffic).start()
        if dgram is not None:
            UdpRelay(dgram, target, traffic).start()
        return port
    raise SystemExit("no port free for both TCP and UDP on 127.0.0.1")
