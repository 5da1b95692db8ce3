"""From a keyboard-wedge badge reader's key events to badge IDs (sans-IO: no devices, no clocks).

A keyboard-wedge reader pretends to be a USB keyboard and types the badge ID followed by Enter. It
assumes a US layout, so its key codes are read here with a US table, whatever layout the kiosk's people
type with: a French kiosk must not turn badge 1234 into &é"'. Lines come out per Enter (or Tab), a
pause longer than ``inter_key_timeout`` inside a line drops what came before it, and a line longer than
``max_length`` is dropped whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: ``struct input_event`` as the kernel hands it to this process: a ``struct timeval`` (two C longs:
#: 64-bit on 64-bit systems; on 32-bit systems two 32-bit fields even with a 64-bit time_t), then
#: u16 type, u16 code, s32 value.
INPUT_EVENT = struct.Struct("@llHHi")

EV_SYN = 0x00
EV_KEY = 0x01
#: ``_IOW('E', 0x90, int)``: with argument 1 this open file gets the device's events exclusively
#: (nothing reaches the compositor, the console or any other reader); 0 gives them back.
EVIOCGRAB = 0x40044590

KEY_RELEASED, KEY_PRESSED, KEY_REPEATED = 0, 1, 2

KEY_TAB = 15
KEY_ENTER = 28
KEY_LEFTSHIFT = 42
KEY_RIGHTSHIFT = 54
KEY_KPENTER = 96
SHIFT_KEYS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
#: Keys that end a badge ID. Readers are configured with an Enter suffix (sometimes Tab).
END_KEYS = frozenset({KEY_ENTER, KEY_KPENTER, KEY_TAB})


def _row(first_code: int, plain: str, shifted: str) -> dict[int, tuple[str, str]]:
    return {first_code + i: (p, s) for i, (p, s) in enumerate(zip(plain, shifted, strict=True))}


#: Linux key code -> (character, character with Shift), for a US layout. Keypad keys give their digits
#: (readers that use them assume NumLock on). Keys not listed (function keys, Ctrl, ...) are ignored.
US_KEYS: dict[int, tuple[str, str]] = {
    **_row(2, "1234567890-=", "!@#$%^&*()_+"),
    **_row(16, "qwertyuiop[]", "QWERTYUIOP{}"),
    **_row(30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    **_row(43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
    55: ("*", "*"),  # keypad *
    57: (" ", " "),
    **_row(71, "789-456+1230.", "789-456+1230."),  # keypad
    98: ("/", "/"),  # keypad /
}


@dataclass(frozen=True, slots=True)
class InputEvent:
    """One ``struct input_event``; ``time`` in seconds (the kernel's timestamp)."""

    time: float
    type: int
    code: int
    value: int


def parse_events(data: bytes) -> tuple[list[InputEvent], bytes]:
    """Whole events in ``data``, and the bytes left over (a partial event, normally none)."""
    size = INPUT_EVENT.size
    whole = len(data) - len(data) % size
    events = [
        InputEvent(sec + usec / 1e6, type_, code, value)
        for sec, usec, type_, code, value in INPUT_EVENT.iter_unpack(data[:whole])
    ]
    return events, data[whole:]


def pack_event(time: float, type_: int, code: int, value: int) -> bytes:
    """The bytes of one ``struct input_event`` (for tests and recordings)."""
    sec = int(time)
    return INPUT_EVENT.pack(sec, round((time - sec) * 1e6), type_, code, value)


@dataclass(frozen=True, slots=True)
class Line:
    """What the reader typed before Enter (never logged: it is a badge ID)."""

    text: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """Keystrokes thrown away, and why (safe to log: says nothing about what was typed)."""

    reason: str


Outcome = Line | Dropped


class KeystrokeAssembler:
    """Collects one reader's key presses into :class:`Line`\\ s."""

    def __init__(self, *, max_length: int = 256, inter_key_timeout: float = 0.5) -> None:
        self.max_length = max_length
        self.inter_key_timeout = inter_key_timeout
        self._chars: list[str] = []
        self._overflow = False
        self._shift: set[int] = set()
        self._last_key: float | None = None

    def feed(self, event: InputEvent) -> list[Outcome]:
        """Take one event; returns what it completed or dropped (usually nothing)."""
        if event.type != EV_KEY:
            return []
        if event.code in SHIFT_KEYS:
            if event.value == KEY_RELEASED:
                self._shift.discard(event.code)
            else:
                self._shift.add(event.code)
            return []
        if event.value != KEY_PRESSED:  # releases, and auto-repeat (readers do not hold keys down)
            return []
        out: list[Outcome] = []
        pending = bool(self._chars) or self._overflow
        if pending and self._last_key is not None and event.time - self._last_key > self.inter_key_timeout:
            out.append(Dropped(f"a pause of {event.time - self._last_key:.1f} s inside a badge ID"))
            self._clear()
        self._last_key = event.time
        if event.code in END_KEYS:
            if self._overflow:
                out.append(Dropped(f"more than {self.max_length} characters before Enter"))
            elif self._chars:
                out.append(Line("".join(self._chars)))
            self._clear()
            return out
        chars = US_KEYS.get(event.code)
        if chars is None or self._overflow:
            return out
        if len(self._chars) >= self.max_length:
            self._overflow = True
            self._chars.clear()
            return out
        self._chars.append(chars[1] if self._shift else chars[0])
        return out

    def reset(self) -> None:
        """Forget everything (a device was reopened)."""
        self._clear()
        self._shift.clear()
        self._last_key = None

    def _clear(self) -> None:
        self._chars.clear()
        self._overflow = False
