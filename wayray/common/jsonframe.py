"""JSON objects in frames between WayRay's processes: the one decoding path of the JSON bodies (the
link's control messages, wrsessd's IPC and its worker channel, wrsrvd's admin socket), and the one
framing of the local JSON sockets (a 32-bit length in native byte order, then that many bytes of
UTF-8 JSON: greetd's), with its sans-IO splitter and its asyncio reader.

Strict where Python's json module is lenient, so that what it returns can be used, logged and sent on
without a surprise: it refuses NaN and the infinities (not JSON, though ``json`` reads them), numbers
too long for any field (``int()`` refuses more than 4,300 digits with a ValueError of its own, and
even below that a long one costs quadratic time), and strings holding half of a surrogate pair
(JSON can escape one, ``"\\ud800"``; no UTF-8 can hold it, so encoding it again would fail).
Every refusal is a :class:`JSONBodyError` whose ``reason`` completes a sentence such as
"the body …" or "message …".
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

#: Longest number accepted, in characters: the largest field is 64 bits (20 digits and a sign).
MAX_NUMBER_CHARS = 30


class JSONBodyError(ValueError):
    """The body is not one acceptable JSON object; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        digits = len(text.lstrip("-"))
        raise JSONBodyError(f"has a number of {digits} digits (at most {MAX_NUMBER_CHARS} are accepted)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONBodyError(f"has a number too large for a float ({text[:40]})")
    return value


def _constant(name: str) -> Any:
    raise JSONBodyError(f"has {name}, which JSON does not allow")


def _unicode(obj: Any) -> None:
    """Every string (and key) must be encodable as UTF-8: no lone surrogates."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                bad = item[err.start]
                raise JSONBodyError(
                    f"has a lone surrogate (\\u{ord(bad):04x}) in a string, which is not Unicode text"
                ) from None
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def decode_object(body: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The JSON object in ``body`` (UTF-8), or :class:`JSONBodyError`."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as err:
        raise JSONBodyError(f"is not valid UTF-8 (byte {err.start})") from None
    try:
        obj = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except JSONBodyError:
        raise
    except RecursionError:
        raise JSONBodyError("is nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError, and anything else int() or float() refuse
        raise JSONBodyError(f"is not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise JSONBodyError("is not a JSON object")
    _unicode(obj)
    return obj


# --- framing: a 32-bit length in native byte order, then the body ----------------------------------

HEADER = struct.Struct("=I")
HEADER_SIZE = HEADER.size


class FrameError(Exception):
    """A frame that cannot be read; ``reason`` completes "the frame …" (each protocol words it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameTooLarge(FrameError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"of {length} bytes exceeds the {limit}-byte limit")
        self.length = length
        self.limit = limit


class FrameCut(FrameError):
    """The stream ended inside a frame (``where``: ``header`` or ``body``)."""

    def __init__(self, where: str) -> None:
        super().__init__(f"was cut off: the connection closed in the middle of its {where}")
        self.where = where


class FrameUnfinished(FrameError):
    """The rest of a begun frame did not come within ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"is unfinished: the rest of it did not come within {timeout:g} s")
        self.timeout = timeout


class IdleTimeout(Exception):
    """Nothing came on a connection for longer than it may stay silent."""


def header_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    return int(length)


def encode(obj: Mapping[str, Any], max_bytes: int | None = None, *, ensure_ascii: bool = False) -> bytes:
    """One frame holding ``obj`` as compact JSON; :class:`FrameTooLarge` beyond ``max_bytes``."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()
    if max_bytes is not None and len(body) > max_bytes:
        raise FrameTooLarge(len(body), max_bytes)
    return HEADER.pack(len(body)) + body


class FrameSplitter:
    """Sans-IO: feed received bytes, get the bodies of the complete frames out."""

    def __init__(self, max_bytes: int) -> None:
        self._buf = bytearray()
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER_SIZE:
            length = header_length(bytes(self._buf[:HEADER_SIZE]))
            if length > self.max_bytes:
                raise FrameTooLarge(length, self.max_bytes)
            if len(self._buf) < HEADER_SIZE + length:
                break
            out.append(bytes(self._buf[HEADER_SIZE : HEADER_SIZE + length]))
            del self._buf[: HEADER_SIZE + length]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


async def read_frame(
    reader: asyncio.StreamReader,
    max_bytes: int,
    *,
    idle_timeout: float | None = None,
    frame_timeout: float | None = None,
) -> bytes | None:
    """The body of the next frame, or None at a clean end of stream (before a frame began).

    ``idle_timeout``: how long to wait for a frame to begin (:class:`IdleTimeout`); ``frame_timeout``:
    how long a begun frame may take to be complete (:class:`FrameUnfinished`). A frame over
    ``max_bytes`` is :class:`FrameTooLarge` (its body is not read), a stream that ends inside one
    :class:`FrameCut`."""
    try:
        first = await asyncio.wait_for(reader.readexactly(1), idle_timeout)
    except asyncio.IncompleteReadError:
        return None
    except TimeoutError:
        raise IdleTimeout() from None

    async def rest() -> bytes:
        try:
            header = first + await reader.readexactly(HEADER_SIZE - 1)
        except asyncio.IncompleteReadError:
            raise FrameCut("header") from None
        length = header_length(header)
        if length > max_bytes:
            raise FrameTooLarge(length, max_bytes)
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise FrameCut("body") from None

    try:
        return await asyncio.wait_for(rest(), frame_timeout)
    except TimeoutError:
        raise FrameUnfinished(frame_timeout or 0) from None
