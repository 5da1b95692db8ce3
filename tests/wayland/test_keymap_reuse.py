"""Keymaps compiled once per process and shared (issue 15: one compiled default keymap for every
session a session parent forks, and no compile per attach for a keymap seen before), safely: each
holder has its own reference, so one compositor's teardown in a process never takes the keymap from
another (several compositors run in one test process); a keymap that does not compile is refused
every time."""

from __future__ import annotations

import gc
import os

import pytest

from wayray.wayland.xkb import Keymap, KeymapError, KeyState

KEY_Y = 21  # evdev: "y" on a US layout, "z" on a German one
Z, Y = 0x7A, 0x79


def test_the_same_text_shares_one_compiled_keymap_and_each_holder_keeps_it_alive() -> None:
    german_text = Keymap.from_names(layout="de").text
    first, second = Keymap.compiled(german_text), Keymap.compiled(german_text)
    assert first is not second and first.ptr == second.ptr  # one compiled keymap, two holders
    assert Keymap.compiled(Keymap.default().text).ptr == Keymap.default().ptr
    # One holder goes (a compositor torn down) and the cache forgets it: the other still types.
    del first
    Keymap._kept.clear()
    gc.collect()
    assert KeyState(second).keysym(KEY_Y) == Z
    assert KeyState(Keymap.default()).keysym(KEY_Y) == Y
    for _ in range(2):
        with pytest.raises(KeymapError):
            Keymap.compiled("xkb_keymap { this is not a keymap };")


def test_each_default_keymap_sends_its_own_keymap_file() -> None:
    a, b = Keymap.default(), Keymap.default()
    (fd_a, size_a), (fd_b, size_b) = a.memfd(), b.memfd()
    try:
        assert fd_a != fd_b and size_a == size_b
        del a
        gc.collect()
        os.close(fd_a)
        assert os.pread(fd_b, size_b, 0) == b.text.encode() + b"\0"
    finally:
        os.close(fd_b)
