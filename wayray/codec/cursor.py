"""The pointer cursor, drawn by the client: image + hotspot when it changes, position otherwise.

Moving the pointer costs one small CursorPosition and no framebuffer update at all. Images carry a
serial; positions name the serial to draw. Every change of image sends the new image (a cursor is a
few hundred bytes compressed): the client never depends on an older image it may not have, even if
the wire coalesces cursor messages ("latest wins"). The decoder keeps the last few images so a
position that overtakes its image is drawn as soon as the image arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import zstandard
from numpy.typing import NDArray

from wayray.codec.errors import CodecError
from wayray.wire.display import CursorImage, CursorPosition

#: How many recent cursor images the decoder keeps by serial.
IMAGE_CACHE = 8
#: Largest cursor image accepted (Wayland cursors are 24 to 64 px; scaled ones up to 256).
MAX_CURSOR_SIDE = 256

CursorMessage = CursorImage | CursorPosition


@dataclass(frozen=True, slots=True)
class CursorShape:
    """A cursor image: premultiplied ARGB8888 words (bytes B, G, R, A), rows packed, and its hotspot."""

    width: int
    height: int
    hotspot_x: int
    hotspot_y: int
    pixels: bytes

    @classmethod
    def from_array(cls, pixels: NDArray[np.uint32], hotspot_x: int, hotspot_y: int) -> CursorShape:
        h, w = pixels.shape
        return cls(w, h, hotspot_x, hotspot_y, np.ascontiguousarray(pixels, dtype="<u4").tobytes())

    def __post_init__(self) -> None:
        if not (0 < self.width <= MAX_CURSOR_SIDE and 0 < self.height <= MAX_CURSOR_SIDE):
            raise ValueError(f"cursor size {self.width}x{self.height} is outside 1..{MAX_CURSOR_SIDE}")
        if len(self.pixels) != self.width * self.height * 4:
            raise ValueError(f"cursor {self.width}x{self.height} needs {self.width * self.height * 4} bytes")


@dataclass(frozen=True, slots=True)
class CursorState:
    """What the client should draw: ``image`` with its hotspot at (x, y) of the output."""

    image: NDArray[np.uint32]
    hotspot_x: int
    hotspot_y: int
    x: int
    y: int


class CursorEncoder:
    def __init__(self) -> None:
        self._cctx = zstandard.ZstdCompressor(level=3, write_checksum=False)
        self._next_serial = 1
        self._shape: CursorShape | None = None
        self._serial = 0
        self._x = self._y = 0
        self._last: CursorPosition | None = None

    def update(
        self,
        image: NDArray[np.uint32] | None,
        hotspot: tuple[int, int],
        x: int,
        y: int,
        visible: bool = True,
    ) -> list[CursorMessage]:
        """Everything about the pointer at once (the compositor's cursor state): what to send, maybe nothing.

        ``image`` is premultiplied ARGB8888 (uint32, height x width) or None for no cursor.
        """
        self._x, self._y = x, y
        shape = CursorShape.from_array(image, *hotspot) if image is not None and visible else None
        return self.set_shape(shape) or self._position()

    def set_shape(self, shape: CursorShape | None) -> list[CursorMessage]:
        """The pointer's image changed (None hides it). Returns the messages to send, maybe none."""
        if shape == self._shape:
            return []
        self._shape = shape
        out: list[CursorMessage] = []
        if shape is not None:
            image = self._image(shape)
            self._serial = image.serial
            out.append(image)
        out.extend(self._position())
        return out

    def move(self, x: int, y: int) -> list[CursorMessage]:
        """The pointer moved to (x, y) in output pixels. Returns the messages to send, maybe none."""
        self._x, self._y = x, y
        return list(self._position())

    def snapshot(self) -> list[CursorMessage]:
        """Everything a newly attached client needs: the current image (if any) and position."""
        self._last = None
        out: list[CursorMessage] = []
        if self._shape is not None:
            image = self._image(self._shape)
            self._serial = image.serial
            out.append(image)
        out.extend(self._position())
        return out

    def _image(self, shape: CursorShape) -> CursorImage:
        serial = self._next_serial
        self._next_serial = self._next_serial % 0xFFFF_FFFF + 1
        pixels = self._cctx.compress(shape.pixels)
        return CursorImage(serial, shape.width, shape.height, shape.hotspot_x, shape.hotspot_y, pixels)

    def _position(self) -> list[CursorMessage]:
        visible = self._shape is not None
        pos = CursorPosition(self._x, self._y, visible, self._serial if visible else 0)
        if pos == self._last:
            return []
        self._last = pos
        return [pos]


class CursorDecoder:
    def __init__(self) -> None:
        self._images: OrderedDict[int, tuple[NDArray[np.uint32], int, int]] = OrderedDict()
        self._dctx = zstandard.ZstdDecompressor()
        self._position: CursorPosition | None = None

    def apply(self, message: CursorMessage) -> None:
        """Take one cursor message. Raises CodecError for a malformed image."""
        if isinstance(message, CursorImage):
            w, h = message.width, message.height
            if not (0 < w <= MAX_CURSOR_SIDE and 0 < h <= MAX_CURSOR_SIDE):
                raise CodecError(
                    f"cursor image {message.serial}: size {w}x{h} is outside 1..{MAX_CURSOR_SIDE}"
                )
            try:
                raw = self._dctx.decompress(message.pixels, max_output_size=w * h * 4)
            except zstandard.ZstdError as e:
                raise CodecError(f"cursor image {message.serial}: corrupt zstd data ({e})") from e
            if len(raw) != w * h * 4:
                raise CodecError(f"cursor image {message.serial}: {len(raw)} bytes for {w}x{h} pixels")
            pixels = np.frombuffer(raw, dtype="<u4").reshape(h, w)
            self._images[message.serial] = (pixels, message.hotspot_x, message.hotspot_y)
            while len(self._images) > IMAGE_CACHE:
                self._images.popitem(last=False)
        else:
            self._position = message

    @property
    def state(self) -> CursorState | None:
        """What to draw now, or None (hidden, or its image has not arrived)."""
        pos = self._position
        if pos is None or not pos.visible:
            return None
        found = self._images.get(pos.serial)
        if found is None:
            return None
        pixels, hx, hy = found
        return CursorState(pixels, hx, hy, pos.x, pos.y)
