"""Frames: ``length (u32) + type (u16) + body`` on a byte stream, with a hard maximum body size.

Independent of QUIC and of the message table, so any ordered byte stream (a QUIC stream, a Unix
socket between wrsrvd and a session compositor) can carry frames. ``length`` counts the body only.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from wayray.wire.errors import ErrorCode, WireProtocolError

HEADER = struct.Struct("<IH")
HEADER_SIZE = HEADER.size  # 6


class Frame(NamedTuple):
    type: int
    body: bytes


def frame_header(msg_type: int, body_length: int) -> bytes:
    return HEADER.pack(body_length, msg_type)


def encode_frame(msg_type: int, body: bytes | bytearray) -> bytes:
    return HEADER.pack(len(body), msg_type) + body


def parse_header(frame: bytes | bytearray | memoryview) -> tuple[int, int]:
    """``(type, body length)`` of a complete encoded frame; checks that the length adds up."""
    if len(frame) < HEADER_SIZE:
        raise WireProtocolError(ErrorCode.MALFORMED_MESSAGE, f"frame of {len(frame)} bytes has no header")
    length, msg_type = HEADER.unpack_from(frame, 0)
    if length != len(frame) - HEADER_SIZE:
        raise WireProtocolError(
            ErrorCode.MALFORMED_MESSAGE,
            f"frame header says {length} body bytes, the frame has {len(frame) - HEADER_SIZE}",
        )
    return msg_type, length


class FrameDecoder:
    """Cuts a byte stream into frames. Holds at most one partial frame (at most ``max_body`` + 6 bytes).

    ``feed`` raises :class:`WireProtocolError` (``FRAME_TOO_LARGE``) as soon as a header announces a
    body over the limit, before any of that body is buffered.
    """

    def __init__(self, max_body: int, *, what: str = "frame") -> None:
        self.max_body = max_body
        self._what = what
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            length, msg_type = HEADER.unpack_from(buf, pos)
            if length > self.max_body:
                raise WireProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"{self._what} of {length} bytes (type {msg_type}) "
                    f"exceeds the {self.max_body}-byte limit",
                )
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            frames.append(Frame(msg_type, bytes(buf[pos + HEADER_SIZE : stop])))
            pos = stop
        # Drop consumed bytes: the buffer never holds more than one partial frame.
        if pos:
            del buf[:pos]
        return frames

    def check_finished(self) -> None:
        """Call when the stream ends: a partial frame left over is malformed input."""
        if self.buffered:
            raise WireProtocolError(
                ErrorCode.MALFORMED_MESSAGE,
                f"stream ended inside a {self._what} ({self.buffered} bytes left)",
            )
