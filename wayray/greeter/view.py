"""How the greeter looks: a card in the middle of the screen with the fields, notices and error.

Everything is sized from the screen (buffer pixels), so text is as legible on a 4K kiosk as in a
small test output. :func:`render` draws the whole screen from the model; the app uploads only the
bands that differ from the previous picture (:func:`changed_boxes`).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from wayray.greeter.model import LoginModel, NoticeKind, Phase
from wayray.toolkit.draw import Font, font, line_height, rounded_box, text_lines, text_width, wrap
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
Colour = tuple[int, int, int, int]


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
    card = _Card(Metrics.for_screen(w, h))
    m = card.metrics
    d = ImageDraw.Draw(image)
    _draw_background(d, card, (w, h), host)
    # Lay out first (to know the card's height), then draw.
    items, total = _fit(_items(model, now), card, room=h - 4 * m.unit)
    cx = (w - m.card_width) // 2
    cy = max(m.unit * 3, (h - total) // 2)
    rounded_box(d, (cx, cy, m.card_width, total), m.unit // 2, CARD, CARD_EDGE, max(1, m.unit // 12))
    x, y = cx + m.pad, cy + m.pad
    fields: list[tuple[RectTuple, int]] = []
    for item in items:
        if isinstance(item, _Field):
            fields.append((card.draw_field(d, image, item, x, y), item.index))
        else:
            card.draw_text(d, item, x, y)
        y += card.item_height(item)
    return fields


@dataclass(frozen=True, slots=True)
class _Text:
    """A block of wrapped text on the card."""

    kind: Literal["title", "text", "notice", "error", "status", "hint"]
    text: str
    colour: Colour = MUTED


@dataclass(frozen=True, slots=True)
class _Field:
    """A labelled text field; ``index`` is its focus index (0: the user name, n: prompt n)."""

    label: str
    field: TextField
    index: int
    focused: bool
    answered: bool


def _items(model: LoginModel, now: float) -> list[_Text | _Field]:
    """What the card shows, top to bottom."""
    items: list[_Text | _Field] = [_Text("title", model.title, TEXT)]
    if model.unlock_user:
        items.append(
            _Text("text", f"The session of {model.unlock_user} is locked. Enter the password to go on.")
        )
    else:
        items.append(_field(model, "User name", model.username, 0))
    for notice in model.notices:
        items.append(_Text("notice", notice.text, ERROR_TEXT if notice.kind is NoticeKind.ERROR else INFO))
    for i, prompt in enumerate(model.prompts):
        items.append(_field(model, prompt.label, prompt.field, i + 1))
    error = model.error_text(now)
    if error:
        items.append(_Text("error", error, ERROR_TEXT))
    if model.status:
        items.append(_Text("status", model.status, OK_TEXT if model.phase is Phase.DONE else MUTED))
    items.append(_Text("hint", HINT))
    return items


def _field(model: LoginModel, label: str, field: TextField, index: int) -> _Field:
    return _Field(
        label,
        field,
        index,
        focused=model.focus == index and model.focused_field() is field,
        answered=index > 0 and model.prompts[index - 1].answered,
    )


def _fit(items: list[_Text | _Field], card: _Card, *, room: int) -> tuple[list[_Text | _Field], int]:
    """The items that fit in ``room`` pixels of height, and the card's height. A long conversation on
    a small screen leaves out the oldest answered prompts, then the oldest notices, so the open
    prompt and the error always stay on screen."""
    total = card.height(items)
    while total > room:
        drop = next(
            (i for i, item in enumerate(items) if isinstance(item, _Field) and item.answered),
            next(
                (i for i, item in enumerate(items) if isinstance(item, _Text) and item.kind == "notice"),
                None,
            ),
        )
        if drop is None:
            break
        del items[drop]
        total = card.height(items)
    return items, total


class _Card:
    """The login card on one screen: its fonts and spacing, how tall each item is, how it is drawn."""

    def __init__(self, metrics: Metrics) -> None:
        unit = metrics.unit
        self.metrics = metrics
        self.small = font(int(unit * 0.8))
        self.body = font(unit)
        self.bold = font(unit, bold=True)
        self.title = font(int(unit * 1.5), bold=True)
        self.label = font(int(unit * 0.85))
        self.inner = metrics.card_width - 2 * metrics.pad
        self.gap = unit // 2

    def height(self, items: list[_Text | _Field]) -> int:
        return sum(self.item_height(item) for item in items) + 2 * self.metrics.pad - self.gap

    def item_height(self, item: _Text | _Field) -> int:
        m, gap = self.metrics, self.gap
        if isinstance(item, _Field):
            return line_height(self.label) + m.field_height + gap
        if item.kind == "title":
            return line_height(self.title) + gap
        if item.kind == "error":
            return (
                len(wrap(item.text, self.bold, self.inner - m.unit)) * line_height(self.bold) + m.unit + gap
            )
        f = self._font(item)
        return len(wrap(item.text, f, self.inner)) * line_height(f) + gap

    def draw_field(
        self, d: ImageDraw.ImageDraw, image: Image.Image, item: _Field, x: int, y: int
    ) -> RectTuple:
        """Draw a field with its label at (x, y); returns the field's rectangle."""
        d.text((x, y), item.label, font=self.label, fill=MUTED)
        rect = (x, y + line_height(self.label), self.inner, self.metrics.field_height)
        item.field.draw(image, rect, self.body, focused=item.focused, style=FieldStyle())
        return rect

    def draw_text(self, d: ImageDraw.ImageDraw, item: _Text, x: int, y: int) -> None:
        unit = self.metrics.unit
        if item.kind == "title":
            d.text((x, y), item.text, font=self.title, fill=item.colour)
        elif item.kind == "error":
            lines = wrap(item.text, self.bold, self.inner - unit)
            box_h = len(lines) * line_height(self.bold) + unit // 2 * 2
            rounded_box(d, (x, y, self.inner, box_h), unit // 3, ERROR_BG, ERROR_EDGE, max(1, unit // 10))
            text_lines(d, lines, self.bold, x + unit // 2, y + unit // 2, item.colour)
        else:
            f = self._font(item)
            text_lines(d, wrap(item.text, f, self.inner), f, x, y, item.colour)

    def _font(self, item: _Text) -> Font:
        """The font of a paragraph: small for the key hint, else the body's."""
        return self.small if item.kind == "hint" else self.body


def _draw_background(d: ImageDraw.ImageDraw, card: _Card, size: tuple[int, int], host: str | None) -> None:
    """The dark screen, with the host name at the top left and the time at the top right."""
    (width, height), unit, small = size, card.metrics.unit, card.small
    d.rectangle((0, 0, width, height), fill=BACKGROUND)
    d.text((unit, unit), f"WayRay \u00b7 {host or socket.gethostname()}", font=small, fill=BACKGROUND_TEXT)
    stamp = time.strftime("%H:%M", time.localtime())
    d.text((width - unit - text_width(stamp, small), unit), stamp, font=small, fill=BACKGROUND_TEXT)


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
