"""The viewer's keymap reaches clients, and release_all lets go of everything held."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compositor.harness import running_session
from wayray.compositor.testing import BTN_LEFT, KEY_LEFTSHIFT, type_text
from wayray.wayland.xkb import Keymap, KeymapError

KEY_Y, KEY_Z = 21, 44
FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
pytestmark = pytest.mark.slow


async def test_a_german_viewer_keymap_is_sent_to_clients(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "foot")
        await s.settle()
        german = Keymap.from_names(layout="de").text
        s.comp.set_keymap(german)
        await type_text(s.comp, "echo ")  # type_text looks characters up in the current (German) keymap
        # The key a US keyboard calls Y (evdev 21) is Z on a German one, and the other way round.
        for code in (KEY_Y, KEY_Z):
            s.comp.key(code, True)
            s.comp.key(code, False)
        await type_text(s.comp, " > de.txt\n")  # '>' is Shift+<> (evdev 86) in German
        out = s.workdir / "de.txt"
        await s.wait_for(lambda: out.exists() and out.read_text() == "zy\n", "zy in the file")
        with pytest.raises(KeymapError):
            s.comp.set_keymap("xkb_keymap { garbage")
        assert s.comp.keymap_text == german  # a bad keymap leaves the old one in place


async def test_release_all_lets_go_of_held_keys_and_buttons(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        demo = await s.spawn(
            "stdbuf", "-oL", "weston-eventdemo", "--log-key", "--log-button", name="eventdemo"
        )
        win = await s.wait_window(lambda w: w.title == "EventDemo", "eventdemo")
        await s.settle()
        s.comp.pointer_motion(win.rect.x + 50, win.rect.y + 50)
        s.comp.key(KEY_LEFTSHIFT, True)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(lambda: "state: pressed" in demo.output() and "272" in demo.output(), "the presses")
        s.comp.release_all()
        await s.wait_for(
            lambda: "key: 42, unicode: 65505, state: released" in demo.output(), "shift released"
        )
        await s.wait_for(lambda: "button: 272, state: released" in demo.output(), "the button released")
