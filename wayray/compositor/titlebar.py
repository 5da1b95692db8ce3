"""Server-side title bars, for windows whose decoration mode is ``server_side`` (xdg-decoration).

The session chooses the mode (``decorations="server"``); clients that speak xdg-decoration then
draw no frame of their own and the compositor draws a title bar above the window geometry: the
title, and a close button. Pressing the bar starts an interactive move; the button closes the
window; a double click toggles maximize. A ``TitleBar`` looks enough like a ``Surface`` (texture,
mapping, size, frame damage) for the scene and the renderer to treat it as one. What it needs of
its window is ``TitledWindow``.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Protocol

import numpy as np

from wayray.compositor.geometry import BufferMapping, Rect, Transform, buffer_mapping
from wayray.wayland.pixman import Format, Image, Region

log = logging.getLogger(__name__)

HEIGHT = 24  # layout pixels
FONT_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)
ACTIVE = (0x3B, 0x42, 0x52)
INACTIVE = (0x4C, 0x56, 0x6A)
TEXT = (0xEC, 0xEF, 0xF4)
CLOSE_HOVER = (0xBF, 0x61, 0x6A)
DOUBLE_CLICK = 0.4  # seconds


@functools.lru_cache(maxsize=8)
def _font(px: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    for path in FONT_PATHS:
        try:
            return ImageFont.truetype(path, px)
        except OSError:
            continue
    return ImageFont.load_default()


def fit_text(draw: Any, text: str, font: Any, max_width: float) -> str:
    """``text``, or its longest beginning followed by an ellipsis, that is at most ``max_width`` wide.

    A binary search: titles may be as long as a Wayland message (4 KiB), and cutting one character at
    a time measured the text thousands of times -- a second per redraw, on the compositor's loop.
    """
    if draw.textlength(text, font=font) <= max_width:
        return text
    lo, hi = 0, len(text) - 1  # the longest prefix that fits with the ellipsis is text[:lo]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid] + "…", font=font) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…" if lo else ""


class _Texture:
    """The bits of ``surface.Texture`` the renderer uses."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.storage = pixels
        self.array = pixels
        self.height, self.width = pixels.shape
        self.image = Image(pixels, Format.X8R8G8B8, self.width)
        self.opaque = True


class TitledWindow(Protocol):
    """What a title bar needs of its window (the window manager's)."""

    @property
    def x(self) -> int:
        """Layout position of the window geometry."""

    @property
    def y(self) -> int: ...

    @property
    def geometry(self) -> Rect: ...

    @property
    def title(self) -> str: ...

    @property
    def app_id(self) -> str: ...

    @property
    def activated(self) -> bool: ...


class TitleBar:
    """The title bar of one window; drawn at output resolution, shown above the window geometry."""

    client = None  # never a client's: pointer events on it go to the window manager
    alive = True
    children: list[TitleBar]
    subsurface = None

    def __init__(self, window: TitledWindow) -> None:
        self.window = window
        self.texture: _Texture | None = None
        self.mapping: BufferMapping | None = None
        self.width = 0
        self.height = HEIGHT
        self.scale = 1
        self.frame_damage = Region()
        self._drawn: tuple[object, ...] | None = None
        self._last_press = 0.0
        self.children = [self]

    def __repr__(self) -> str:
        return f"<title bar of {self.window!r}>"

    @property
    def mapped_content(self) -> bool:
        return self.texture is not None and self.width > 0

    def accepts_input_at(self, sx: float, sy: float) -> bool:
        return 0 <= sx < self.width and 0 <= sy < self.height

    def root(self) -> TitleBar:
        return self

    def origin(self) -> tuple[int, int]:
        return (self.window.x, self.window.y - HEIGHT)

    def close_button(self) -> Rect:
        return Rect(self.width - HEIGHT, 0, HEIGHT, HEIGHT)

    def update(self, output_scale: int, output_width: int) -> None:
        """Redraw when the title, width, focus or scale changed (``output_width``: layout pixels)."""
        # No wider than the output: a window may be any int32 wide, and what is off screen is never
        # seen (this also keeps the close button on screen for a window wider than the output).
        width = min(self.window.geometry.width, output_width)
        key = (self.window.title, width, self.window.activated, output_scale)
        if key == self._drawn or width <= 0:
            return
        self._drawn = key
        self.width, self.scale = width, output_scale
        self.texture = _Texture(self._render(width, output_scale))
        self.mapping = buffer_mapping(
            width * output_scale, HEIGHT * output_scale, output_scale, Transform.NORMAL, None, None
        )
        self.frame_damage.add_rect(0, 0, width, HEIGHT)

    def _render(self, width: int, scale: int) -> np.ndarray:
        from PIL import Image as PILImage
        from PIL import ImageDraw

        w, h = width * scale, HEIGHT * scale
        img = PILImage.new("RGB", (w, h), ACTIVE if self.window.activated else INACTIVE)
        draw = ImageDraw.Draw(img)
        font = _font(13 * scale)
        title = fit_text(draw, self.window.title or self.window.app_id or "", font, w - h - 12 * scale)
        draw.text((8 * scale, h // 2), title, fill=TEXT, font=font, anchor="lm")
        # The close button: an x in the rightmost square.
        pad = 7 * scale
        x0 = w - h
        draw.line((x0 + pad, pad, w - pad, h - pad), fill=TEXT, width=2 * scale)
        draw.line((x0 + pad, h - pad, w - pad, pad), fill=TEXT, width=2 * scale)
        rgb = np.asarray(img, dtype=np.uint32)
        return np.ascontiguousarray(
            0xFF000000 | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], dtype=np.uint32
        )

    def pressed(self, sx: float, sy: float) -> str:
        """A button press at surface point (sx, sy): what the WM should do."""
        if self.close_button().contains(sx, sy):
            return "close"
        now = time.monotonic()
        double = now - self._last_press < DOUBLE_CLICK
        self._last_press = 0.0 if double else now
        return "maximize" if double else "move"
