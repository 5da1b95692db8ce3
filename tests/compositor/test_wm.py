"""The built-in window manager, driven the way a person does it: clicks, drags and shortcuts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.compositor.harness import running_session
from wayray.compositor.geometry import Rect
from wayray.compositor.testing import BTN_LEFT, KEY_LEFTALT, chord, click

KEY_TAB, KEY_F4 = 15, 62
FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
TITLE = 26  # foot's client-side title bar height at scale 1
pytestmark = pytest.mark.slow


def button(rect: Rect, index_from_right: int) -> tuple[int, int]:
    """Centre of foot's title-bar button: 0 close, 1 maximize, 2 minimize."""
    return rect.x2 - TITLE // 2 - index_from_right * TITLE, rect.y + TITLE // 2


async def test_title_bar_buttons_maximize_restore_and_minimize_and_alt_tab_brings_back(
    tmp_path: Path,
) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        first = await s.spawn(*FOOT, name="foot-a")
        await s.wait_window(lambda w: w.pid == first.pid and w.focused, "foot a")
        second = await s.spawn(*FOOT, name="foot-b")
        b = await s.wait_window(lambda w: w.pid == second.pid and w.focused, "foot b, focused")
        await s.settle()
        await click(s.comp, *button(b.rect, 1))
        big = await s.wait_window(lambda w: w.pid == second.pid and w.maximized, "b maximized by its button")
        await s.wait_window(lambda w: w.pid == second.pid and w.rect == Rect(0, 0, 1024, 768), "b full size")
        await s.settle()
        await click(s.comp, *button(Rect(0, 0, 1024, 768), 1))
        await s.wait_window(
            lambda w: w.pid == second.pid and not w.maximized and w.rect == b.rect, "b restored"
        )
        await s.settle()
        await click(s.comp, *button(b.rect, 2))
        await s.wait_window(lambda w: w.pid == second.pid and w.minimized, "b minimized")
        await s.wait_window(lambda w: w.pid == first.pid and w.focused, "focus back on a")
        await s.settle()
        assert s.pixels()[b.rect.y2 - 5, b.rect.x2 - 5] == s.pixels()[5, 5], (
            "a minimized window is not drawn"
        )
        await chord(s.comp, KEY_LEFTALT, KEY_TAB)
        await s.wait_window(
            lambda w: w.pid == second.pid and w.focused and not w.minimized, "Alt+Tab restores b"
        )
    assert big.maximized


async def test_dragging_the_title_bar_moves_the_window(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        foot = await s.spawn(*FOOT)
        win = await s.wait_window(lambda w: w.pid == foot.pid and w.focused, "foot")
        await s.settle()
        x, y = win.rect.x + 60, win.rect.y + 10
        s.comp.pointer_motion(x, y)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(lambda: s.comp.core.seat.grab.value == "move", "foot to start an interactive move")
        for step in range(1, 11):
            s.comp.pointer_motion(x + 12 * step, y + 7 * step)
            await asyncio.sleep(0.01)
        s.comp.pointer_button(BTN_LEFT, False)
        moved = await s.wait_window(lambda w: w.pid == foot.pid and w.rect != win.rect, "the window to move")
    assert moved.rect == Rect(win.rect.x + 120, win.rect.y + 70, win.rect.width, win.rect.height)


async def test_alt_f4_closes_the_active_window_and_alt_tab_cycles(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        clients = []
        for name in ("a", "b", "c"):
            c = await s.spawn(*FOOT, name=f"foot-{name}")
            await s.wait_window(lambda w, c=c: w.pid == c.pid and w.focused, f"foot {name}")
            clients.append(c)
        await s.settle()
        a, b, c = clients
        await chord(s.comp, KEY_LEFTALT, KEY_TAB)
        await s.wait_window(lambda w: w.pid == b.pid and w.focused, "Alt+Tab: the previous window")
        # Holding Alt, Tab twice walks two steps down the most-recently-used list.
        s.comp.key(KEY_LEFTALT, True)
        for _ in range(2):
            s.comp.key(KEY_TAB, True)
            s.comp.key(KEY_TAB, False)
        s.comp.key(KEY_LEFTALT, False)
        await s.wait_window(lambda w: w.pid == a.pid and w.focused, "Alt+Tab+Tab: two steps back")
        await chord(s.comp, KEY_LEFTALT, KEY_F4)
        await s.wait_exit(a)  # foot exits (its shell gets SIGHUP, hence a non-zero status)
        await s.wait_for(lambda: len(s.comp.windows()) == 2, "two windows left")
        assert any(w.focused for w in s.comp.windows())


async def test_fullscreen_covers_the_output_and_the_panel(tmp_path: Path) -> None:
    panel_script = Path(__file__).parent / "clients" / "panel.py"
    async with running_session(tmp_path, size=(800, 600)) as s:
        panel = await s.spawn(sys.executable, str(panel_script), "30", name="panel")
        await s.wait_for(lambda: "mapped 800x30" in panel.output(), "the panel")
        foot = await s.spawn("foot", "--fullscreen", "sh")
        await s.wait_window(
            lambda w: w.pid == foot.pid and w.fullscreen and w.rect == Rect(0, 0, 800, 600),
            "foot fullscreen",
        )
        await s.settle()
        top = s.pixels()[0:30, :]
        assert not (top == 0xFF0000).any(), "the fullscreen window must cover the panel"


async def test_dragging_a_gtk_window_corner_resizes_it_keeping_the_opposite_corner(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 768)) as s:
        demo = await s.spawn("gtk3-demo")
        win = await s.wait_window(lambda w: w.pid == demo.pid and w.focused, "gtk3-demo")
        await s.settle()
        # GTK's invisible resize borders sit in its shadow, just outside the window geometry.
        x, y = win.rect.x - 3, win.rect.y - 3
        s.comp.pointer_motion(x, y)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(
            lambda: s.comp.core.seat.grab.value == "resize", "GTK to start an interactive resize"
        )
        for step in range(1, 11):
            s.comp.pointer_motion(x + 5 * step, y + 4 * step)
            await asyncio.sleep(0.02)
        s.comp.pointer_button(BTN_LEFT, False)
        r = win.rect
        resized = await s.wait_window(
            lambda w: w.pid == demo.pid and w.rect == Rect(r.x + 50, r.y + 40, r.width - 50, r.height - 40),
            "the window 50x40 smaller with its bottom-right corner in place",
        )
    assert (resized.rect.x2, resized.rect.y2) == (r.x2, r.y2)


async def test_a_client_that_draws_a_corner_drag_late_keeps_the_opposite_corner(tmp_path: Path) -> None:
    """A client on a loaded machine draws the sizes of an interactive resize late: after the drag is
    over, and an older one first. The opposite corner stays where it was all the same. (The first late
    commit used to end the anchoring, so the last size grew from the old top-left corner: GTK's
    corner drag above failed that way with two suites running at once.)"""
    script = Path(__file__).parent / "clients" / "lagging_resize.py"
    async with running_session(tmp_path, size=(1024, 768)) as s:
        client = await s.spawn(sys.executable, str(script), name="lagging")
        win = await s.wait_window(
            lambda w: w.pid == client.pid and w.rect.width == 300, "the client's window"
        )
        await s.settle()
        r = win.rect
        s.comp.pointer_motion(r.x + 10, r.y + 10)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(lambda: s.comp.core.seat.grab.value == "resize", "the client to start a resize")
        for step in range(1, 11):
            s.comp.pointer_motion(r.x + 10 + 5 * step, r.y + 10 + 4 * step)
            await asyncio.sleep(0.02)
        s.comp.pointer_button(BTN_LEFT, False)
        await s.wait_for(lambda: "done 250x160" in client.output(), "the client to draw the last size late")
        resized = await s.wait_window(
            lambda w: w.pid == client.pid and (w.rect.width, w.rect.height) == (250, 160), "the last size"
        )
        assert "late " in client.output() and "late 250x160" not in client.output(), client.output()
    assert (resized.rect.x2, resized.rect.y2) == (r.x2, r.y2), (resized.rect, r)


async def test_super_arrows_snap_the_active_window_to_a_half_maximize_and_restore(tmp_path: Path) -> None:
    super_, left, right, up, down = 125, 105, 106, 103, 108  # evdev: KEY_LEFTMETA and the arrows
    async with running_session(tmp_path, size=(1024, 768)) as s:
        foot = await s.spawn(*FOOT)
        before = await s.wait_window(lambda w: w.pid == foot.pid and w.focused, "foot")
        await s.settle()
        await chord(s.comp, super_, left)
        await s.wait_window(lambda w: w.rect == Rect(0, 0, 512, 768), "foot on the left half")
        await chord(s.comp, super_, right)
        await s.wait_window(lambda w: w.rect == Rect(512, 0, 512, 768), "foot on the right half")
        await chord(s.comp, super_, up)
        await s.wait_window(lambda w: w.maximized and w.rect == Rect(0, 0, 1024, 768), "foot maximized")
        await chord(s.comp, super_, down)
        await s.wait_window(
            lambda w: not w.maximized and w.rect == Rect(512, 0, 512, 768), "back to its half"
        )
        await chord(s.comp, super_, down)
        await s.wait_window(lambda w: w.rect == before.rect, "back where it was before the snap")
        # The keys went to the WM, not to the shell in foot: nothing was typed.
        assert "\x1b" not in foot.output()
