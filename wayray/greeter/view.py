"""How the greeter looks: a card in the middle of the screen with the fields, notices and error.

Everything is sized from the screen (buffer pixels), so text is as legible on a 4K kiosk as in a
small test output. :func:`render` draws the whole screen from the model; the app uploads only the
bands that differ from the previous picture (:func:`changed_boxes`).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

from wayray.greeter.model import LoginModel, NoticeKind, Phase
from wayray.toolkit.draw import font, line_height, rounded_box, text_lines, text_width, wrap
from wayray.toolkit.widgets import FieldStyle, TextField

BACKGROUND = (28, 36, 52, 255)
BACKGROUND_TEXT = (200, 208, 222, 255)
CARD = (246, 247, 250, 255)
CARD_EDGE = (210, 214, 222, 255)
TEXT = (22, 26, 34, 255)
MUTED = (88, 96, 110, 255)
INFO = (30, 70, 140, 255)
ERROR_BG = (253, 232, 230, 255)
ERROR_EDGE = (214, 76, 64, 255)
ERROR_TEXT = (150, 24, 16, 255)
OK_TEXT = (20, 110, 50, 255)

HINT = "Enter: continue    Tab: next field    Esc: start over"

RectTuple = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Sizes derived from the screen: ``unit`` is the body text size in pixels."""

    unit: int
    card_width: int
    pad: int
    field_height: int

    @classmethod
    def for_screen(cls, width: int, height: int) -> Metrics:
        unit = max(12, int(min(width, height * 1.6) / 54))
        card_width = min(width - 2 * unit, unit * 26)
        return cls(unit=unit, card_width=card_width, pad=int(unit * 1.5), field_height=int(unit * 2.1))


def render(
    model: LoginModel, image: Image.Image, now: float, *, host: str | None = None
) -> list[tuple[RectTuple, int]]:
    """Draw the greeter for ``model`` into ``image``; returns each text field's rectangle and focus index."""
    w, h = image.size
    m = Metrics.for_screen(w, h)
    d = ImageDraw.Draw(image)
    d.rectangle((0, 0, w, h), fill=BACKGROUND)
    small = font(int(m.unit * 0.8))
    d.text(
        (m.unit, m.unit), f"WayRay \u00b7 {host or socket.gethostname()}", font=small, fill=BACKGROUND_TEXT
    )
    stamp = time.strftime("%H:%M", time.localtime())
    d.text((w - m.unit - text_width(stamp, small), m.unit), stamp, font=small, fill=BACKGROUND_TEXT)

    body = font(m.unit)
    bold = font(m.unit, bold=True)
    title = font(int(m.unit * 1.5), bold=True)
    label = font(int(m.unit * 0.85))
    inner = m.card_width - 2 * m.pad
    gap = m.unit // 2

    # Lay out first (to know the card's height), then draw.
    items: list[tuple[str, object]] = [("title", model.title)]
    if model.unlock_user:
        items.append(("text", f"The session of {model.unlock_user} is locked. Enter the password to go on."))
    else:
        items.append(("field", ("User name", model.username, 0)))
    for notice in model.notices:
        items.append(("notice", notice))
    for i, prompt in enumerate(model.prompts):
        items.append(("field", (prompt.label, prompt.field, i + 1)))
    error = model.error_text(now)
    if error:
        items.append(("error", error))
    if model.status:
        items.append(("status", model.status))
    items.append(("hint", HINT))

    def height(kind: str, value: object) -> int:
        if kind == "title":
            return line_height(title) + gap
        if kind == "field":
            return line_height(label) + m.field_height + gap
        if kind in ("text", "notice", "status"):
            text = value.text if kind == "notice" else str(value)  # type: ignore[attr-defined]
            return len(wrap(text, body, inner)) * line_height(body) + gap
        if kind == "error":
            return len(wrap(str(value), bold, inner - m.unit)) * line_height(bold) + m.unit + gap
        return len(wrap(str(value), small, inner)) * line_height(small) + gap

    def card_height() -> int:
        return sum(height(k, v) for k, v in items) + 2 * m.pad - gap

    # A long conversation on a small screen: leave out the oldest answered prompts, then the oldest
    # notices, so the open prompt and the error always stay on screen.
    total = card_height()
    while total > h - 4 * m.unit:
        drop = next(
            (i for i, (k, v) in enumerate(items) if k == "field" and _answered(model, v)),
            next((i for i, (k, _v) in enumerate(items) if k == "notice"), None),
        )
        if drop is None:
            break
        del items[drop]
        total = card_height()
    cx = (w - m.card_width) // 2
    cy = max(m.unit * 3, (h - total) // 2)
    rounded_box(d, (cx, cy, m.card_width, total), m.unit // 2, CARD, CARD_EDGE, max(1, m.unit // 12))
    x, y = cx + m.pad, cy + m.pad
    fields: list[tuple[RectTuple, int]] = []
    for kind, value in items:
        if kind == "title":
            d.text((x, y), str(value), font=title, fill=TEXT)
        elif kind == "text":
            text_lines(d, wrap(str(value), body, inner), body, x, y, MUTED)
        elif kind == "field":
            name, tf, index = cast(tuple[str, TextField, int], value)
            d.text((x, y), name, font=label, fill=MUTED)
            rect = (x, y + line_height(label), inner, m.field_height)
            tf.draw(image, rect, body, focused=model.focus == index and model.focused_field() is tf,
                    style=FieldStyle())  # fmt: skip
            fields.append((rect, index))
        elif kind == "notice":
            colour = ERROR_TEXT if value.kind is NoticeKind.ERROR else INFO  # type: ignore[attr-defined]
            text_lines(d, wrap(value.text, body, inner), body, x, y, colour)  # type: ignore[attr-defined]
        elif kind == "error":
            lines = wrap(str(value), bold, inner - m.unit)
            box_h = len(lines) * line_height(bold) + m.unit // 2 * 2
            rounded_box(d, (x, y, inner, box_h), m.unit // 3, ERROR_BG, ERROR_EDGE, max(1, m.unit // 10))
            text_lines(d, lines, bold, x + m.unit // 2, y + m.unit // 2, ERROR_TEXT)
        elif kind == "status":
            colour = OK_TEXT if model.phase is Phase.DONE else MUTED
            text_lines(d, wrap(str(value), body, inner), body, x, y, colour)
        else:
            text_lines(d, wrap(str(value), small, inner), small, x, y, MUTED)
        y += height(kind, value)
    return fields


def _answered(model: LoginModel, value: object) -> bool:
    index = cast(tuple[str, TextField, int], value)[2]
    return index > 0 and model.prompts[index - 1].answered


def changed_boxes(old: Image.Image | None, new: Image.Image, band: int = 32) -> list[RectTuple]:
    """Rectangles covering every pixel that differs, one per horizontal band of ``band`` rows."""
    w, h = new.size
    if old is None or old.size != new.size:
        return [(0, 0, w, h)]
    a = np.asarray(old).view(np.uint32).reshape(h, w)
    b = np.asarray(new).view(np.uint32).reshape(h, w)
    diff = a != b
    boxes: list[RectTuple] = []
    for y0 in range(0, h, band):
        rows = diff[y0 : y0 + band]
        cols = np.flatnonzero(rows.any(axis=0))
        if cols.size:
            boxes.append((int(cols[0]), y0, int(cols[-1]) + 1 - int(cols[0]), rows.shape[0]))
    return boxes
