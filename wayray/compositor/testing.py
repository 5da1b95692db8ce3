"""Helpers to drive a SessionCompositor like a person would (tests, demos, automation)."""

from __future__ import annotations

import asyncio

from wayray.compositor.session import SessionCompositor
from wayray.wayland.xkb import Modifier

KEY_LEFTSHIFT = 42
KEY_LEFTCTRL = 29
KEY_LEFTALT = 56
MODIFIER_KEYS = {Modifier.SHIFT: KEY_LEFTSHIFT, Modifier.CTRL: KEY_LEFTCTRL, Modifier.ALT: KEY_LEFTALT}
BTN_LEFT = 0x110
BTN_RIGHT = 0x111
BTN_MIDDLE = 0x112


async def type_text(comp: SessionCompositor, text: str, delay: float = 0.005) -> None:
    """Type ``text`` through the input API with the current keymap (shift etc. pressed as needed)."""
    keymap = comp.core.seat.keymap
    for ch in text:
        found = keymap.keys_for_char(ch)
        if found is None:
            raise ValueError(f"the keymap cannot type {ch!r}")
        code, mods = found
        held = [MODIFIER_KEYS[m] for m in mods if m in MODIFIER_KEYS]
        for k in held:
            comp.key(k, True)
        comp.key(code, True)
        comp.key(code, False)
        for k in reversed(held):
            comp.key(k, False)
        await asyncio.sleep(delay)


async def chord(comp: SessionCompositor, *codes: int) -> None:
    """Press ``codes`` in order, then release them in reverse (e.g. Alt+Tab)."""
    for c in codes:
        comp.key(c, True)
        await asyncio.sleep(0.005)
    for c in reversed(codes):
        comp.key(c, False)
        await asyncio.sleep(0.005)


async def click(comp: SessionCompositor, x: float, y: float, button: int = BTN_LEFT) -> None:
    comp.pointer_motion(x, y)
    await asyncio.sleep(0.01)
    comp.pointer_button(button, True)
    await asyncio.sleep(0.01)
    comp.pointer_button(button, False)
    await asyncio.sleep(0.01)
