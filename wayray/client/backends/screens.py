"""What the thin client draws itself: the connection-state overlay and the kiosk's idle screen.

Pure Pillow drawing into an RGBA image of the window's size (buffer pixels), so any backend can use
it. Sizes follow the window's height: legible on a 1080p kiosk across a room, and in a small window.
"""

from __future__ import annotations

import time

from PIL import Image, ImageDraw

from wayray.client.backend import ConnectionState
from wayray.toolkit.draw import font, line_height, text_lines, text_width, wrap

#: Dim the session picture by this much (alpha of black over it) while it is not live.
DIM_ALPHA = 150
BAR_BG = (24, 28, 36, 235)
BAR_FG = (255, 255, 255, 255)
ACCENT = (250, 190, 60, 255)
SCREEN_BG = (18, 22, 30, 255)
SCREEN_FG = (236, 240, 246, 255)
SCREEN_DIM_FG = (160, 170, 186, 255)
ERROR_FG = (255, 140, 130, 255)
#: The microphone mark: while the session hears this machine's microphone (docs/audio.md §3).
MIC_BG = (200, 30, 30, 235)

STATE_TITLES = {
    ConnectionState.CONNECTING: "Connecting\u2026",
    ConnectionState.RECONNECTING: "Reconnecting\u2026",
    ConnectionState.FAILED: "Cannot reach the session",
    ConnectionState.NOT_RESPONDING: "The session is not responding",
}


def draw_status(image: Image.Image, state: ConnectionState, detail: str, *, has_picture: bool) -> None:
    """A status bar over the dimmed picture, or a full screen with the same words when there is none."""
    w, h = image.size
    d = ImageDraw.Draw(image)
    title = STATE_TITLES.get(state, state.value)
    if not has_picture or state is ConnectionState.FAILED:
        d.rectangle((0, 0, w, h), fill=SCREEN_BG)
        big = font(max(16, h // 14), bold=True)
        small = font(max(12, h // 32))
        lines = wrap(title, big, w * 9 // 10)
        details = wrap(detail, small, w * 8 // 10) if detail else []
        total = len(lines) * line_height(big) + (
            len(details) * line_height(small) + h // 30 if details else 0
        )
        y = (h - total) // 2
        y = text_lines(d, lines, big, 0, y, ERROR_FG if state is ConnectionState.FAILED else SCREEN_FG,
                       center_width=w)  # fmt: skip
        if details:
            text_lines(d, details, small, 0, y + h // 30, SCREEN_DIM_FG, center_width=w)
        return
    d.rectangle((0, 0, w, h), fill=(0, 0, 0, DIM_ALPHA))
    f = font(max(14, h // 28), bold=True)
    fd = font(max(12, h // 34))
    bar_h = line_height(f) * 2
    d.rectangle((0, 0, w, bar_h), fill=BAR_BG)
    d.rectangle((0, bar_h - max(2, bar_h // 16), w, bar_h), fill=ACCENT)
    x = bar_h // 2
    y = (bar_h - line_height(f)) // 2
    d.text((x, y), title, font=f, fill=BAR_FG)
    if detail:
        x += text_width(title, f) + bar_h // 2
        room = w - x - bar_h // 2
        shown = wrap(detail, fd, max(room, 1))[0]
        d.text((x, y + (line_height(f) - line_height(fd)) // 2), shown, font=fd, fill=SCREEN_DIM_FG)


def draw_idle(image: Image.Image, detail: str = "", now: float | None = None) -> None:
    """The kiosk screen with no session: "Present your badge", the time, and an optional line."""
    w, h = image.size
    d = ImageDraw.Draw(image)
    d.rectangle((0, 0, w, h), fill=SCREEN_BG)
    big = font(max(18, min(h // 9, w // 12)), bold=True)
    clock = font(max(14, h // 16))
    small = font(max(12, h // 30))
    title = wrap("Present your badge", big, w * 9 // 10)
    stamp = time.strftime("%H:%M", time.localtime(now))
    details = wrap(detail, small, w * 8 // 10) if detail else []
    gap = h // 20
    total = len(title) * line_height(big) + gap + line_height(clock)
    total += gap + len(details) * line_height(small) if details else 0
    y = (h - total) // 2
    y = text_lines(d, title, big, 0, y, SCREEN_FG, center_width=w)
    y = text_lines(d, [stamp], clock, 0, y + gap, SCREEN_DIM_FG, center_width=w)
    if details:
        text_lines(d, details, small, 0, y + gap, SCREEN_DIM_FG, center_width=w)


def draw_microphone(image: Image.Image) -> None:
    """The "microphone on" mark in the top right corner, over the live picture (the rest of the image
    stays transparent): a red pill with a white dot and the words, seen across a room."""
    w, h = image.size
    d = ImageDraw.Draw(image)
    f = font(max(12, h // 40), bold=True)
    label = "Microphone on"
    pad = line_height(f) // 2
    dot = line_height(f) * 2 // 3
    pill_w = pad + dot + pad + text_width(label, f) + pad
    pill_h = line_height(f) + pad
    x0, y0 = w - pill_w - pad, pad
    d.rounded_rectangle((x0, y0, x0 + pill_w, y0 + pill_h), radius=pill_h // 2, fill=MIC_BG)
    cy = y0 + pill_h // 2
    d.ellipse((x0 + pad, cy - dot // 2, x0 + pad + dot, cy + dot // 2), fill=BAR_FG)
    d.text((x0 + pad + dot + pad, y0 + pad // 2), label, font=f, fill=BAR_FG)
