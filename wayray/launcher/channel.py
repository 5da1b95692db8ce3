"""Blocking framed-JSON channel over a stream socket (the session worker's and the sync client's side)."""

from __future__ import annotations

import socket
from typing import Any

from wayray.launcher import protocol


class Channel:
    def __init__(self, sock: socket.socket, *, max_bytes: int = protocol.MAX_MESSAGE_BYTES) -> None:
        self.sock = sock
        self._decoder = protocol.FrameDecoder(max_bytes)
        self._queue: list[dict[str, Any]] = []
        self.closed = False

    def send(self, obj: dict[str, Any]) -> bool:
        """Send one message; False when the peer is gone (the caller decides whether that matters)."""
        if self.closed:
            return False
        try:
            self.sock.sendall(protocol.encode(obj))
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.closed = True
            return False

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None at end of stream. ``socket.timeout`` when ``timeout`` passes."""
        self.sock.settimeout(timeout)
        while not self._queue:
            if self.closed:
                return None
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
                return None
            self._queue.extend(self._decoder.feed(data))
        return self._queue.pop(0)

    def has_buffered(self) -> bool:
        return bool(self._queue)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
