"""pixman (regions, compositing) and xkbcommon (keymaps, state) through cffi."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from wayray.wayland.pixman import LIMIT, Box, Format, Image, Op, Region, composite
from wayray.wayland.xkb import Keymap, KeymapError, KeyState, Modifier, keysym_from_name

KEY_A, KEY_LEFTSHIFT, KEY_LEFTALT = 30, 42, 56


def test_regions_union_subtract_and_band() -> None:
    r = Region([(0, 0, 10, 10), (5, 5, 10, 10)])
    assert r.extents == Box(0, 0, 15, 15)
    assert r.area() == 175
    r.subtract_rect(0, 0, 15, 5)
    assert r.boxes() == [Box(0, 5, 15, 10), Box(5, 10, 15, 15)]
    assert r.contains(6, 12) and not r.contains(1, 12)
    assert not Region() and Region.rect(0, 0, 1, 1)


def test_regions_take_any_coordinates_a_client_can_send_and_keep_what_can_be_on_screen() -> None:
    # int32 positions and sizes, times a scale: nothing raises, pixman's x + width never overflows.
    r = Region.rect(-(2**31), -(2**31), 2**32 - 1, 2**32 - 1)
    assert r.extents == Box(-LIMIT, -LIMIT, LIMIT, LIMIT)
    r.intersect_rect(0, 0, 2**40, 100)
    assert r.boxes() == [Box(0, 0, LIMIT, 100)]
    r.add_rect(2**31 - 1, 0, 2**31 - 1, 10)  # wholly beyond the square: nothing to add
    assert r.translated(5, 5).boxes() == [Box(5, 5, LIMIT, 105)]
    r.translate(2**40, 0)
    assert not r  # moved wholly beyond the square
    assert not Region.rect(2**33, 0, 5, 5) and not r.contains(2**40, 5)
    damage = Region()
    damage.add_rect(-5, -5, 2**45, 10)
    assert damage.boxes() == [Box(-5, -5, LIMIT, 5)]


def test_over_blends_premultiplied_argb_onto_xrgb() -> None:
    dst = np.full((4, 4), 0xFF000000 | 0x0000FF, dtype=np.uint32)  # blue
    src = np.full((2, 2), 0x80800000, dtype=np.uint32)  # 50% red, premultiplied
    composite(Op.OVER, Image(src, Format.A8R8G8B8), Image(dst, Format.X8R8G8B8), 0, 0, 1, 1, 2, 2)
    assert dst[0, 0] & 0xFFFFFF == 0x0000FF
    assert dst[1, 1] & 0xFFFFFF == 0x80007F


def test_default_keymap_types_shifted_characters() -> None:
    km = Keymap.from_names()
    assert km.keys_for_char("a") == (KEY_A, frozenset())
    assert km.keys_for_char("A") == (KEY_A, frozenset({Modifier.SHIFT}))
    assert km.keys_for_char("!") == (2, frozenset({Modifier.SHIFT}))
    assert km.keys_for_char("\n") == (28, frozenset())


def test_keys_for_named_keysyms() -> None:
    km = Keymap.from_names()
    for name, code in (("Return", 28), ("F4", 62), ("BackSpace", 14), ("escape", 1), ("Left", 105)):
        sym = keysym_from_name(name)
        assert sym is not None, name
        assert km.keys_for_keysym(sym) == (code, frozenset()), name
    assert keysym_from_name("NoSuchKey") is None


def test_key_state_serializes_modifiers_and_knows_alt() -> None:
    st = KeyState(Keymap.from_names())
    st.update(KEY_LEFTSHIFT, True)
    assert st.modifiers().depressed == 1
    st.update(KEY_LEFTSHIFT, False)
    st.update(KEY_LEFTALT, True)
    assert st.is_active(Modifier.ALT)


def test_keymap_text_round_trips_and_garbage_is_refused() -> None:
    de = Keymap.from_names(layout="de")
    again = Keymap.from_text(de.text)
    assert again.keys_for_char("z") == (21, frozenset())  # QWERTZ: z is where y is on US
    with pytest.raises(KeymapError):
        Keymap.from_text("xkb_keymap { this is not a keymap")
    fd, size = de.memfd()
    try:
        assert os.pread(fd, size, 0).rstrip(b"\0").decode() == de.text
    finally:
        os.close(fd)


#: Keymap, KeyState, Region and Image objects only a collection frees (a reference cycle), collected
#: while cffi holds its lock, as it does to parse a type for ffi.new or to bind a function on first use.
COLLECTED_UNDER_CFFIS_LOCK = """
import gc
import numpy as np
from wayray.wayland import pixman, xkb
garbage = [xkb.KeyState(xkb.Keymap.from_names()), pixman.Region.rect(0, 0, 5, 5),
           pixman.Image(np.zeros((4, 4), np.uint32), pixman.Format.A8R8G8B8)]
garbage.append(garbage)
del garbage
with xkb.ffi._lock, pixman.ffi._lock:
    gc.collect()
print("collected")
"""


def test_finalizers_never_wait_for_cffis_lock() -> None:
    """A garbage collection can run anywhere, also while cffi holds its (non-reentrant) lock to parse a
    type for ffi.new. The finalizers of xkb and pixman objects must not take that lock: they looked up
    their unref function on first use, which does, and the thread waited for itself for ever (a
    compositor test hung at its first typed key; a session compositor could freeze the same way)."""
    try:
        res = subprocess.run(
            [sys.executable, "-c", COLLECTED_UNDER_CFFIS_LOCK], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a finalizer waits for cffi's lock: the collection never returned")
    assert res.returncode == 0 and res.stdout == "collected\n", res.stderr
