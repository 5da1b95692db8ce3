"""Synthetic but realistic frame streams for the codec's tests and benchmarks.

Each scene yields what the session compositor hands the encoder: the output framebuffer (uint32
XRGB8888, height x width), the damage rectangles of that frame, and the time. Text is real text,
rendered with DejaVu Sans Mono through a glyph atlas the way terminals render it; the animation is
weston-simple-shm's own paint_pixels; the "video" is a panning photo-like picture. Every frame is a
fresh array, so a stream can be kept in a list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"

Damage = list[tuple[int, int, int, int]]
Frame = tuple[NDArray[np.uint32], Damage, float]


def rgb(r: int, g: int, b: int) -> int:
    return 0xFF000000 | (r << 16) | (g << 8) | b


@lru_cache(maxsize=4)
def glyph_atlas(size: int = 14) -> tuple[NDArray[np.uint8], int, int]:
    """Coverage (0..255) of the printable ASCII glyphs: array (96, cell_h, cell_w), and the cell size."""
    font = ImageFont.truetype(FONT, size)
    ascent, descent = font.getmetrics()
    cw, ch = round(font.getlength("M")), ascent + descent
    atlas = np.zeros((96, ch, cw), dtype=np.uint8)
    for i in range(96):
        img = Image.new("L", (cw, ch), 0)
        ImageDraw.Draw(img).text((0, 0), chr(32 + i) if i < 95 else " ", font=font, fill=255)
        atlas[i] = np.asarray(img)
    return atlas, cw, ch


def _blend_lut(fg: int, bg: int) -> NDArray[np.uint32]:
    """XRGB of every coverage value from bg (0) to fg (255)."""
    a = np.arange(256, dtype=np.float64) / 255.0
    out = np.zeros(256, dtype=np.uint32)
    for shift in (0, 8, 16):
        f, b = (fg >> shift) & 0xFF, (bg >> shift) & 0xFF
        out |= np.round(b + (f - b) * a).astype(np.uint32) << shift
    return out | np.uint32(0xFF000000)


def wallpaper(width: int, height: int, seed: int = 7) -> NDArray[np.uint32]:
    """A soft gradient with a little grain: like a photo wallpaper, which does not compress to nothing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 40 + 60 * xx / width + rng.normal(0, 2.0, (height, width))
    g = 70 + 50 * yy / height + 20 * np.sin(xx / 150.0) + rng.normal(0, 2.0, (height, width))
    b = 120 + 80 * (1 - yy / height) + rng.normal(0, 2.0, (height, width))
    c = [np.clip(v, 0, 255).astype(np.uint32) for v in (r, g, b)]
    return np.uint32(0xFF000000) | (c[0] << 16) | (c[1] << 8) | c[2]


@dataclass
class Terminal:
    """A terminal grid drawn like foot or weston-terminal draw it: glyph cells on a flat background."""

    cols: int = 80
    rows: int = 24
    fg: int = rgb(0xDC, 0xDC, 0xCC)
    bg: int = rgb(0x1E, 0x1E, 0x24)
    font_size: int = 14
    grid: NDArray[np.uint8] = field(init=False)
    cx: int = 0
    cy: int = 0

    def __post_init__(self) -> None:
        self.atlas, self.cw, self.ch = glyph_atlas(self.font_size)
        self.grid = np.zeros((self.rows, self.cols), dtype=np.uint8)  # atlas index; 0 = space
        self._lut = _blend_lut(self.fg, self.bg)
        self._lut_inv = _blend_lut(self.bg, self.fg)

    @property
    def width(self) -> int:
        return self.cols * self.cw

    @property
    def height(self) -> int:
        return self.rows * self.ch

    def write(self, text: str) -> None:
        for c in text:
            if c == "\n":
                self.cx = 0
                self._line_feed()
                continue
            if self.cx >= self.cols:
                self.cx = 0
                self._line_feed()
            code = ord(c) - 32
            self.grid[self.cy, self.cx] = code if 0 <= code < 95 else 0
            self.cx += 1

    def _line_feed(self) -> None:
        if self.cy + 1 < self.rows:
            self.cy += 1
        else:
            self.grid[:-1] = self.grid[1:]
            self.grid[-1] = 0

    def render(self) -> NDArray[np.uint32]:
        cover = self.atlas[self.grid]  # rows, cols, ch, cw
        img = self._lut[cover.transpose(0, 2, 1, 3).reshape(self.height, self.width)]
        if self.cx < self.cols:  # block cursor: the cell drawn inverted
            y, x = self.cy * self.ch, self.cx * self.cw
            img[y : y + self.ch, x : x + self.cw] = self._lut_inv[self.atlas[self.grid[self.cy, self.cx]]]
        return img


def simple_shm(width: int, height: int, time_ms: int) -> NDArray[np.uint32]:
    """weston-simple-shm's paint_pixels (clients/simple-shm.c, padding 20), the same pixels it draws."""
    padding = 20
    img = np.zeros((height, width), dtype=np.uint32)
    halfh = padding + (height - padding * 2) // 2
    halfw = padding + (width - padding * 2) // 2
    outer = min(halfw, halfh) - 8
    inner = outer - 32
    outer *= outer
    inner *= inner
    yy, xx = np.mgrid[padding : height - padding, padding : width - padding].astype(np.int64)
    r2 = (xx - halfw) ** 2 + (yy - halfh) ** 2
    v = np.where(
        r2 < inner,
        (r2 // 32 + time_ms // 64) * 0x0080401,
        np.where(r2 < outer, (yy + time_ms // 32) * 0x0080401, (xx + time_ms // 16) * 0x0080401),
    )
    v &= 0x00FFFFFF
    cross = (np.abs(xx - yy) > 6) & (np.abs(xx + yy - height) > 6)
    v |= np.where(cross, 0xFF000000, 0)
    img[padding : height - padding, padding : width - padding] = v.astype(np.uint32)
    return img


class Desktop:
    """An output with a wallpaper and windows pasted on it (no alpha: opaque windows, like a compositor)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.wall = wallpaper(width, height)
        self.fb = self.wall.copy()

    def paste(self, img: NDArray[np.uint32], x: int, y: int) -> tuple[int, int, int, int]:
        h, w = img.shape
        self.fb[y : y + h, x : x + w] = img
        return (x, y, w, h)


def _window(term: Terminal, title: str) -> NDArray[np.uint32]:
    """The terminal inside a 1-px border and a title bar, like a decorated toplevel."""
    atlas, cw, ch = glyph_atlas(12)
    body = term.render()
    h, w = body.shape
    win = np.full((h + ch + 4, w + 2), rgb(0x50, 0x50, 0x58), dtype=np.uint32)
    lut = _blend_lut(rgb(0xF0, 0xF0, 0xF0), rgb(0x50, 0x50, 0x58))
    for i, c in enumerate(title[: (w - 8) // cw]):
        win[2 : 2 + ch, 4 + i * cw : 4 + (i + 1) * cw] = lut[atlas[ord(c) - 32]]
    win[ch + 3 : ch + 3 + h, 1 : 1 + w] = body
    return win


def log_line(n: int) -> str:
    return f"{n:7d}  2026-11-21T09:{n % 60:02d}:00 wrsrvd[812]: session s-{n * 7919 % 10007:05d} ok\n"


def seq_line(n: int) -> str:
    return f"{n}\n"


def terminal_scroll(
    width: int = 1920,
    height: int = 1080,
    lines_per_frame: int = 1,
    frames: int = 120,
    fps: float = 60.0,
    cols: int = 90,
    rows: int = 40,
    line: Callable[[int], str] = log_line,
) -> Iterator[Frame]:
    """(a) A terminal printing ``lines_per_frame`` lines per frame, scrolling; damage = the window.

    ``lines_per_frame`` 1-3 is a log being tailed or `ls -l` of a big folder. A value above ``rows``
    is a flood (`seq 1 1000000`, waypipe-baseline.md's (a')): the whole screen is new each frame, so
    nothing can be copied and only the similarity of consecutive lines helps.
    """
    desk = Desktop(width, height)
    term = Terminal(cols=cols, rows=rows)
    x, y = min(120, width - term.width - 2), min(90, height - term.height - 24)
    n = 1
    for _ in range(term.rows):
        term.write(line(n))
        n += 1
    desk.paste(_window(term, "foot"), x, y)
    t = 0.0
    yield desk.fb.copy(), [(0, 0, width, height)], t
    for i in range(frames):
        if lines_per_frame > rows:
            # Only the last screenful is ever drawn. The jitter keeps consecutive screens from lining up
            # digit for digit, as a real flood's uneven frame timing does.
            n += lines_per_frame - rows + (i * 7919) % 1013
        for _ in range(min(lines_per_frame, rows)):
            term.write(line(n))
            n += 1
        t += 1 / fps
        damage = [desk.paste(_window(term, "foot"), x, y)]
        yield desk.fb.copy(), damage, t


def terminal_typing(
    width: int = 1920,
    height: int = 1080,
    text: str = "echo hello from a thin client; ls -l /etc/wayray",
    cps: float = 20,
    cols: int = 90,
    rows: int = 40,
) -> Iterator[Frame]:
    """(c) Typing a line one character at a time into a terminal with a prompt; damage = the window."""
    desk = Desktop(width, height)
    term = Terminal(cols=cols, rows=rows)
    for i in range(min(12, rows - 2)):
        term.write(f"drwxr-xr-x 2 root root 4096 Nov 21 09:{i:02d} dir{i}\n")
    term.write("user@kiosk:~$ ")
    x, y = min(120, width - term.width - 2), min(90, height - term.height - 24)
    desk.paste(_window(term, "foot"), x, y)
    t = 0.0
    yield desk.fb.copy(), [(0, 0, width, height)], t
    for c in text:
        term.write(c)
        t += 1 / cps
        damage = [desk.paste(_window(term, "foot"), x, y)]
        yield desk.fb.copy(), damage, t


def simple_shm_window(
    width: int = 1920, height: int = 1080, frames: int = 120, fps: float = 60.0, size: int = 250
) -> Iterator[Frame]:
    """(b) weston-simple-shm (250x250) animating in a window on the desktop; damage = its surface."""
    desk = Desktop(width, height)
    x, y = 400, 300
    t = 0.0
    desk.paste(simple_shm(size, size, 0), x, y)
    yield desk.fb.copy(), [(0, 0, width, height)], t
    for i in range(1, frames + 1):
        t = i / fps
        damage = [desk.paste(simple_shm(size, size, int(t * 1000)), x, y)]
        yield desk.fb.copy(), damage, t


def moving_picture(width: int, height: int, seed: int = 3) -> Iterator[NDArray[np.uint32]]:
    """Endless frames of a photo-like picture panning diagonally with a moving highlight (a 'video')."""
    rng = np.random.default_rng(seed)
    big_h, big_w = height + 512, width + 512
    yy, xx = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
    base = [
        110 + 60 * np.sin(xx / 97.0 + k) * np.cos(yy / 71.0 - k) + 30 * np.sin((xx + yy) / 23.0 + 2 * k)
        for k in (0.0, 1.3, 2.6)
    ]
    grain = rng.normal(0, 6, (big_h, big_w)).astype(np.float32)
    chans = [np.clip(c + grain, 0, 255).astype(np.uint32) for c in base]
    texture = np.uint32(0xFF000000) | (chans[0] << 16) | (chans[1] << 8) | chans[2]
    i = 0
    while True:
        ox = int(256 + 200 * math.sin(i / 40.0))
        oy = int(256 + 200 * math.cos(i / 53.0))
        frame = texture[oy : oy + height, ox : ox + width].copy()
        cx, cy = (
            int(width / 2 + width / 3 * math.sin(i / 17.0)),
            int(height / 2 + height / 3 * math.cos(i / 13.0)),
        )
        frame[max(0, cy - 60) : cy + 60, max(0, cx - 60) : cx + 60] |= np.uint32(0x00404040)
        yield frame
        i += 1


def fullscreen_video(
    width: int = 1920, height: int = 1080, frames: int = 120, fps: float = 30.0
) -> Iterator[Frame]:
    """(d) The whole output changes every frame (a full-screen video); damage = the output."""
    pics = moving_picture(width, height)
    for i in range(frames):
        yield next(pics), [(0, 0, width, height)], i / fps
