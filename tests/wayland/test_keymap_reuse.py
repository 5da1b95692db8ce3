"""Keymaps compiled once per process (issue 15: each attach compiled the viewer's keymap again, tens
of milliseconds on a busy server before the first frame): the same text gives the same keymap, a
keymap that does not compile is still refused every time, and the keymaps stay apart."""

from __future__ import annotations

import pytest

from wayray.wayland.xkb import Keymap, KeymapError, KeyState

KEY_Y = 21  # evdev: "y" on a US layout, "z" on a German one


def test_the_same_keymap_text_is_compiled_once_and_a_bad_one_is_refused_each_time() -> None:
    german = Keymap.from_names(layout="de").text
    first = Keymap.compiled(german)
    assert Keymap.compiled(german) is first
    assert Keymap.compiled(Keymap.default().text) is Keymap.default()
    # Each keymap types what its layout says: a shared one is not mixed up with another.
    assert KeyState(first).keysym(KEY_Y) != KeyState(Keymap.default()).keysym(KEY_Y)
    for _ in range(2):
        with pytest.raises(KeymapError):
            Keymap.compiled("xkb_keymap { this is not a keymap };")
