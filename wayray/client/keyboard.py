"""The viewer's keyboard layout, and text or key combos turned into the key presses that type them.

The session types with the keymap the viewer sends (in its Hello), so scripted text must be pressed
as a keyboard with *that* layout would: on a German layout ``z`` is the key a US keyboard calls Y.
:class:`Keyboard` compiles the keymap with xkbcommon and looks each character (or key name) up in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wayray.client.backend import KeyEvent
from wayray.common.errors import UsageError
from wayray.wayland.xkb import Keymap, KeymapError, Modifier, keysym_from_name

#: Evdev codes of the modifier keys a script may hold (the left ones; AltGr is the right Alt).
MODIFIER_KEYS = {
    "shift": 42,
    "ctrl": 29,
    "control": 29,
    "alt": 56,
    "super": 125,
    "meta": 125,
    "logo": 125,
    "altgr": 100,
}
_BY_MODIFIER = {Modifier.SHIFT: 42, Modifier.CTRL: 29, Modifier.ALT: 56, Modifier.SUPER: 125}


class KeyLookupError(ValueError):
    """Text or a key name this keymap cannot type."""


@dataclass(frozen=True)
class KeymapChoice:
    """Which keymap the viewer uses: RMLVO names, or a keymap file (``xkbcomp``/xkbcommon text)."""

    layout: str = "us"
    variant: str = ""
    file: Path | None = None

    @classmethod
    def parse(cls, layout: str | None, file: Path | None) -> KeymapChoice:
        if file is not None:
            return cls(file=file)
        if not layout:
            return cls()
        name, _, variant = layout.partition(",")
        return cls(layout=name.strip(), variant=variant.strip())

    def describe(self) -> str:
        if self.file is not None:
            return str(self.file)
        return self.layout + (f" ({self.variant})" if self.variant else "")


class Keyboard:
    def __init__(self, keymap: Keymap) -> None:
        self.keymap = keymap

    @classmethod
    def load(cls, choice: KeymapChoice) -> Keyboard:
        try:
            if choice.file is not None:
                try:
                    text = choice.file.read_text(encoding="utf-8")
                except OSError as err:
                    raise UsageError(f"{choice.file}: cannot read the keymap: {err.strerror}") from None
                return cls(Keymap.from_text(text))
            return cls(Keymap.from_names(layout=choice.layout, variant=choice.variant))
        except KeymapError as err:
            raise UsageError(
                f"keymap {choice.describe()}: {err}",
                hint="layouts are xkb names (us, de, fr, gb); a variant follows a comma: de,nodeadkeys",
            ) from None

    @property
    def text(self) -> str:
        return self.keymap.text

    def type_text(self, text: str) -> list[KeyEvent]:
        """The presses and releases that type ``text`` (``\\n`` is Return)."""
        events: list[KeyEvent] = []
        for ch in text:
            found = self.keymap.keys_for_char(ch)
            if found is None:
                raise KeyLookupError(f"the keymap cannot type {ch!r} (characters needing AltGr: use `key`)")
            code, mods = found
            events += _press(code, [_BY_MODIFIER[m] for m in sorted(mods) if m in _BY_MODIFIER])
        return events

    def combo(self, spec: str) -> list[KeyEvent]:
        """``ctrl+shift+t``, ``Return``, ``alt+F4``, ``altgr+q``: modifiers held around one key."""
        parts = [p for p in spec.split("+")]
        if not parts or any(not p for p in parts):
            raise KeyLookupError(f"{spec!r} is not a key combo (write e.g. ctrl+shift+t or Return)")
        *mods, key = parts
        held = []
        for m in mods:
            code = MODIFIER_KEYS.get(m.lower())
            if code is None:
                raise KeyLookupError(
                    f"{m!r} is not a modifier (known: {', '.join(sorted(set(MODIFIER_KEYS)))})"
                )
            held.append(code)
        return _press(self.key_code(key), held)

    def key_code(self, name: str) -> int:
        """The evdev code of a key named by its character (``t``) or keysym name (``Return``, ``F4``)."""
        if name.lower() in MODIFIER_KEYS and len(name) > 1:
            return MODIFIER_KEYS[name.lower()]
        if len(name) == 1:
            found = self.keymap.keys_for_char(name.lower() if name.isalpha() else name)
        else:
            sym = keysym_from_name(name)
            found = self.keymap.keys_for_keysym(sym) if sym is not None else None
        if found is None:
            raise KeyLookupError(f"no key {name!r} in this keymap (use keysym names such as Return, F4, Up)")
        return found[0]


def _press(code: int, held: list[int]) -> list[KeyEvent]:
    return (
        [KeyEvent(m, True) for m in held]
        + [KeyEvent(code, True), KeyEvent(code, False)]
        + [KeyEvent(m, False) for m in reversed(held)]
    )
