"""decorations="server": clients that speak xdg-decoration get a title bar drawn by the compositor."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.compositor.harness import running_session
from wayray.compositor.geometry import Rect
from wayray.compositor.testing import BTN_LEFT, click
from wayray.compositor.titlebar import ACTIVE, HEIGHT

FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
ACTIVE_RGB = (ACTIVE[0] << 16) | (ACTIVE[1] << 8) | ACTIVE[2]
pytestmark = pytest.mark.slow


async def test_server_side_title_bar_moves_maximizes_and_closes(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 768), decorations="server") as s:
        foot = await s.spawn(*FOOT)
        win = await s.wait_window(lambda w: w.pid == foot.pid and w.focused, "foot")
        await s.settle()
        r = win.rect
        pixels = s.pixels()
        bar = pixels[r.y - HEIGHT : r.y, r.x : r.x2]
        assert (bar == ACTIVE_RGB).mean() > 0.8, "no title bar above the window"
        assert (bar != ACTIVE_RGB).any(), "the title bar shows no title"
        assert pixels[r.y + 5, r.x + 5] != ACTIVE_RGB  # foot drew no client-side title bar of its own
        s.save("ssd")
        # Drag the bar: the window follows.
        x, y = r.x + 100, r.y - HEIGHT // 2
        s.comp.pointer_motion(x, y)
        s.comp.pointer_button(BTN_LEFT, True)
        for step in range(1, 6):
            s.comp.pointer_motion(x + 10 * step, y + 20 * step)
            await asyncio.sleep(0.01)
        s.comp.pointer_button(BTN_LEFT, False)
        moved = await s.wait_window(lambda w: w.pid == foot.pid and w.rect != r, "the window moved")
        assert moved.rect == Rect(r.x + 50, r.y + 100, r.width, r.height)
        # Double click on the bar: maximized below its title bar.
        bx, by = moved.rect.x + 100, moved.rect.y - HEIGHT // 2
        await click(s.comp, bx, by)
        await click(s.comp, bx, by)
        await s.wait_window(
            lambda w: w.pid == foot.pid and w.maximized and w.rect == Rect(0, HEIGHT, 1024, 768 - HEIGHT),
            "foot maximized under its title bar",
        )
        await s.settle()
        # The close button at the bar's right end.
        await click(s.comp, 1024 - HEIGHT // 2, HEIGHT // 2)
        await s.wait_exit(foot)
        await s.wait_for(lambda: not s.comp.windows(), "the window gone")


async def test_a_window_wider_than_any_output_gets_a_title_bar_as_wide_as_the_output(tmp_path: Path) -> None:
    # A window geometry of 2**31-1 pixels is legal; its title bar must not be drawn that wide (it
    # would fail every composite and freeze the session's display).
    script = Path(__file__).parent / "clients" / "misbehave.py"
    async with running_session(tmp_path, size=(640, 480), decorations="server") as s:
        await s.spawn("weston-simple-shm")
        await s.wait_window(lambda w: w.title == "simple-shm", "simple-shm")
        wide = await s.spawn(sys.executable, str(script), "huge_window_geometry", "--stay")
        await s.wait_for(
            lambda: "no error" in wide.output() or wide.proc.returncode is not None, "the client"
        )
        assert "no error, staying" in wide.output(), wide.output()
        seq = s.comp.frame_seq
        await s.wait_for(lambda: s.comp.frame_seq > seq + 2, "simple-shm animating beside it")
        win = next(w for w in s.comp.windows() if w.pid == wide.pid)
        pixels = s.pixels()
    bar_y = win.rect.y - HEIGHT // 2
    assert 0 <= bar_y and (pixels[bar_y, max(0, win.rect.x) : 640] == ACTIVE_RGB).mean() > 0.5
