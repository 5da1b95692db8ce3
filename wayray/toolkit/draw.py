"""Drawing with Pillow: fonts, text layout, and a canvas that uploads only what changed.

A :class:`Canvas` is a Pillow RGBA image the application draws into, plus the region it touched
(``invalidate``). :meth:`Canvas.present` copies only the changed pixels — and what the buffer it
lands in missed while others were shown — into a shm buffer, damages just that, commits, and paces
itself on the surface's frame callbacks. Nothing is drawn while nothing changes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wayray.toolkit.shm import PixelFormat, Swapchain
from wayray.toolkit.surface import Surface
from wayray.wayland.pixman import Region

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {
    (False, False): "DejaVuSans.ttf",
    (True, False): "DejaVuSans-Bold.ttf",
    (False, True): "DejaVuSansMono.ttf",
    (True, True): "DejaVuSansMono-Bold.ttf",
}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGBA = tuple[int, int, int, int]
RectTuple = tuple[int, int, int, int]


@functools.lru_cache(maxsize=64)
def font(size: int, *, bold: bool = False, mono: bool = False) -> Font:
    """DejaVu Sans (Bold, Mono) at ``size`` pixels; Pillow's built-in font if DejaVu is missing."""
    size = max(6, int(size))
    path = FONT_DIR / FONT_FILES[(bold, mono)]
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        log.warning("font %s missing (Debian: fonts-dejavu-core); using Pillow's built-in font", path)
        return ImageFont.load_default(size)


def text_width(text: str, f: Font) -> int:
    return int(round(f.getlength(text)))


def line_height(f: Font) -> int:
    if isinstance(f, ImageFont.FreeTypeFont):
        ascent, descent = f.getmetrics()
        return int(ascent + descent)
    box = f.getbbox("Ag")
    return int(box[3] - box[1])


def wrap(text: str, f: Font, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` (at spaces; overlong words are cut)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, f) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while text_width(word, f) > width and len(word) > 1:
                cut = len(word)
                while cut > 1 and text_width(word[:cut], f) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


class Canvas:
    """A Pillow image shown on a surface; draw with ``draw``, then :meth:`invalidate` what changed."""

    def __init__(self, surface: Surface, swapchain: Swapchain) -> None:
        self.surface = surface
        self.swapchain = swapchain
        self.image = Image.new("RGBA", (1, 1))
        self.draw = ImageDraw.Draw(self.image)
        self.dirty = Region()
        self.scale = 1
        self._waiting = False

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def resize(self, width: int, height: int, scale: int = 1) -> None:
        """A new blank image of ``width`` x ``height`` buffer pixels (draw it all, then present)."""
        if (width, height) != self.image.size:
            self.image = Image.new("RGBA", (width, height))
            self.draw = ImageDraw.Draw(self.image)
            self.swapchain.resize(width, height)
        self.scale = scale
        self.dirty = Region.rect(0, 0, width, height)

    def invalidate(self, rect: RectTuple | None = None) -> None:
        """Mark ``rect`` (buffer pixels; None: everything) as changed."""
        if rect is None:
            self.dirty.add_rect(0, 0, *self.image.size)
        else:
            self.dirty.add_rect(*rect)

    def hide(self) -> None:
        """Unmap the surface; the next :meth:`resize` and :meth:`present` show it again."""
        self.dirty = Region()
        self.surface.attach(None)
        self.surface.commit()
        self.swapchain.damage_all()

    def present(self) -> None:
        """Upload what changed and commit, now or at the next frame callback / buffer release."""
        if not self.dirty:
            return
        if self.surface.frame_pending:
            log.debug("present: waiting for the frame callback")
            self._wait()
            return
        buf = self.swapchain.acquire()
        if buf is None:  # every buffer still held by the compositor: try again next frame
            log.debug("present: no free buffer")
            self._wait()
            return
        log.debug("present: %s", self.dirty.extents)
        w, h = self.image.size
        self.dirty.intersect_rect(0, 0, w, h)
        damage = [(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1) for b in self.dirty.boxes()]
        self.swapchain.damage(damage)
        raw = "BGRa" if self.swapchain.format is PixelFormat.ARGB8888 else "BGRA"
        for box in buf.stale.boxes():
            x1, y1, x2, y2 = max(box.x1, 0), max(box.y1, 0), min(box.x2, w), min(box.y2, h)
            if x2 <= x1 or y2 <= y1:
                continue
            data = self.image.crop((x1, y1, x2, y2)).tobytes("raw", raw)
            buf.pixels[y1:y2, x1:x2] = np.frombuffer(data, dtype="<u4").reshape(y2 - y1, x2 - x1)
        buf.stale = Region()
        self.dirty = Region()
        self.surface.set_buffer_scale(self.scale)
        self.surface.attach(buf, damage)
        self.surface.request_frame(lambda: None)
        self.surface.commit()

    def _wait(self) -> None:
        if not self._waiting:
            self._waiting = True
            self.surface.request_frame(self._retry)

    def _retry(self) -> None:
        self._waiting = False
        self.present()


def rounded_box(
    draw: ImageDraw.ImageDraw,
    rect: RectTuple,
    radius: int,
    fill: RGBA,
    outline: RGBA | None = None,
    width: int = 1,
) -> None:
    x, y, w, h = rect
    draw.rounded_rectangle(
        (x, y, x + w - 1, y + h - 1), radius=radius, fill=fill, outline=outline, width=width
    )


def text_lines(
    draw: ImageDraw.ImageDraw,
    lines: Iterable[str],
    f: Font,
    x: int,
    y: int,
    fill: RGBA,
    *,
    center_width: int | None = None,
) -> int:
    """Draw ``lines`` from (x, y) down (centred in ``center_width`` if given); returns the y below them."""
    step = line_height(f)
    for line in lines:
        lx = x if center_width is None else x + (center_width - text_width(line, f)) // 2
        draw.text((lx, y), line, font=f, fill=fill)
        y += step
    return y
