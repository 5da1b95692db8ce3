"""Simple widgets: a text field (editing, secret entry) and the keysyms they react to."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from PIL import Image, ImageDraw

from wayray.toolkit.draw import RGBA, Font, RectTuple, line_height, rounded_box, text_width
from wayray.toolkit.seat import Key

#: Shown instead of each character of a secret field.
SECRET_CHAR = "\u25cf"  # ●


class Keysym(enum.IntEnum):
    """X keysyms the widgets and the greeter act on."""

    BackSpace = 0xFF08
    Tab = 0xFF09
    Return = 0xFF0D
    Escape = 0xFF1B
    Home = 0xFF50
    Left = 0xFF51
    Up = 0xFF52
    Right = 0xFF53
    Down = 0xFF54
    End = 0xFF57
    KP_Enter = 0xFF8D
    Delete = 0xFFFF
    ISO_Left_Tab = 0xFE20


@dataclass(frozen=True, slots=True)
class FieldStyle:
    background: RGBA = (255, 255, 255, 255)
    border: RGBA = (150, 156, 168, 255)
    focus_border: RGBA = (40, 110, 220, 255)
    text: RGBA = (20, 24, 32, 255)
    disabled_text: RGBA = (110, 116, 128, 255)


class TextField:
    """One line of editable text. ``secret`` shows dots; ``max_length`` bounds what can be typed."""

    def __init__(
        self, *, secret: bool = False, value: str = "", editable: bool = True, max_length: int = 4096
    ) -> None:
        self.secret = secret
        self.value = value
        self.cursor = len(value)
        self.editable = editable
        self.max_length = max_length

    def clear(self) -> None:
        self.value = ""
        self.cursor = 0

    def key(self, event: Key) -> bool:
        """Apply an editing key (press or repeat); True if the field changed or moved its cursor."""
        if not event.pressed or not self.editable:
            return False
        sym = event.keysym
        if sym == Keysym.BackSpace:
            if event.modifiers.ctrl:  # delete the word before the cursor
                start = self.value.rstrip()[: self.cursor].rfind(" ") + 1 if not self.secret else 0
                self.value, self.cursor = self.value[:start] + self.value[self.cursor :], start
                return True
            if self.cursor > 0:
                self.value = self.value[: self.cursor - 1] + self.value[self.cursor :]
                self.cursor -= 1
                return True
            return False
        if sym == Keysym.Delete:
            if self.cursor < len(self.value):
                self.value = self.value[: self.cursor] + self.value[self.cursor + 1 :]
                return True
            return False
        if sym == Keysym.Left:
            self.cursor = max(0, self.cursor - 1)
            return True
        if sym == Keysym.Right:
            self.cursor = min(len(self.value), self.cursor + 1)
            return True
        if sym == Keysym.Home:
            self.cursor = 0
            return True
        if sym == Keysym.End:
            self.cursor = len(self.value)
            return True
        if event.modifiers.ctrl and event.text in ("\x15", "u", "U"):  # Ctrl+U clears, as in a shell
            self.clear()
            return True
        text = "".join(ch for ch in event.text if ch.isprintable())
        if not text or event.modifiers.ctrl or event.modifiers.alt:
            return False
        text = text[: max(0, self.max_length - len(self.value))]
        if not text:
            return False
        self.value = self.value[: self.cursor] + text + self.value[self.cursor :]
        self.cursor += len(text)
        return True

    def shown(self) -> str:
        return SECRET_CHAR * len(self.value) if self.secret else self.value

    def draw(
        self,
        image: Image.Image,
        rect: RectTuple,
        f: Font,
        *,
        focused: bool,
        style: FieldStyle = FieldStyle(),
    ) -> None:
        """Draw the box, the text (scrolled so the cursor stays visible) and, when focused, the caret."""
        draw = ImageDraw.Draw(image)
        x, y, w, h = rect
        border = max(1, h // 20)
        rounded_box(
            draw,
            rect,
            max(2, h // 6),
            style.background,
            style.focus_border if focused else style.border,
            border * (2 if focused else 1),
        )
        pad = max(4, h // 4)
        inner_w = w - 2 * pad
        shown = self.shown()
        before = shown[: self.cursor]
        offset = max(0, text_width(before, f) - inner_w + 2)
        ty = y + (h - line_height(f)) // 2
        colour = style.text if self.editable else style.disabled_text
        # Draw into a clipped sub-image so long text never spills out of the box.
        clip = image.crop((x + pad, y + border, x + pad + inner_w, y + h - border))
        sub = ImageDraw.Draw(clip)
        sub.text((-offset, ty - y - border), shown, font=f, fill=colour)
        if focused and self.editable:
            cx = text_width(before, f) - offset
            top = ty - y - border
            sub.line((cx, top, cx, top + line_height(f)), fill=style.text, width=max(1, h // 24))
        image.paste(clip, (x + pad, y + border))
