"""zwlr_layer_shell_v1 with real clients: a wallpaper (swaybg), a launcher (fuzzel), a panel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.compositor.harness import running_session
from wayray.compositor.geometry import Rect
from wayray.compositor.testing import type_text

KEY_ESC = 1
FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
pytestmark = pytest.mark.slow


async def test_wallpaper_below_windows_and_launcher_takes_the_keyboard(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(800, 600)) as s:
        await s.spawn("swaybg", "-c", "#336699")
        await s.wait_for(lambda: s.pixels()[5, 5] == 0x336699, "swaybg's colour on the background")
        foot = await s.spawn(*FOOT)
        win = await s.wait_window(lambda w: w.pid == foot.pid and w.focused, "foot, focused")
        await s.settle()
        pixels = s.pixels()
        assert pixels[5, 5] == 0x336699, "the wallpaper must stay visible around the window"
        assert pixels[win.rect.y + 100, win.rect.x + 100] != 0x336699, (
            "the window must be above the wallpaper"
        )
        launcher = await s.spawn("fuzzel")
        await s.wait_for(
            lambda: (
                s.comp.core.seat.keyboard_focus is not None
                and s.comp.core.seat.keyboard_focus.client.pid == launcher.pid
            ),
            "fuzzel (exclusive keyboard interactivity) to take the keyboard",
        )
        await s.settle()
        s.save("launcher")
        s.comp.key(KEY_ESC, True)
        s.comp.key(KEY_ESC, False)
        assert await s.wait_exit(launcher) == 0
        # The keyboard goes back to the window: typing reaches the shell in foot.
        await s.wait_for(
            lambda: (
                s.comp.core.seat.keyboard_focus is not None
                and s.comp.core.seat.keyboard_focus.client.pid == foot.pid
            ),
            "the keyboard back on foot",
        )
        await type_text(s.comp, "touch back-in-foot\n")
        await s.wait_for((s.workdir / "back-in-foot").exists, "the file foot's shell creates")


async def test_panel_exclusive_zone_shrinks_the_maximized_area(tmp_path: Path) -> None:
    panel_script = Path(__file__).parent / "clients" / "panel.py"
    async with running_session(tmp_path, size=(1024, 768)) as s:
        panel = await s.spawn(sys.executable, str(panel_script), "30", name="panel")
        await s.wait_for(lambda: "mapped 1024x30" in panel.output(), "the panel mapped at full width")
        foot = await s.spawn("foot", "--maximized", "sh")
        win = await s.wait_window(
            lambda w: w.pid == foot.pid and w.rect == Rect(0, 30, 1024, 738),
            "foot maximized below the panel",
        )
        await s.settle()
        pixels = s.pixels()
        assert (pixels[0:30, :] == 0xFF0000).all(), "the panel is drawn on top"
        assert win.maximized
        # The panel goes away: the maximized window grows back to the whole output.
        panel.proc.terminate()
        await s.wait_exit(panel)
        await s.wait_window(
            lambda w: w.pid == foot.pid and w.rect == Rect(0, 0, 1024, 768), "foot re-maximized"
        )


async def test_a_panel_with_int32_margins_keeps_windows_on_the_output(tmp_path: Path) -> None:
    # Margins are any int32: a panel far below the screen, and one wider than any screen, are legal.
    # They must not push maximized windows off the output nor overflow what is sent to clients.
    panel_script = Path(__file__).parent / "clients" / "panel.py"
    async with running_session(tmp_path, size=(1024, 768)) as s:
        far = await s.spawn(sys.executable, str(panel_script), "30", str(2**31 - 1), "0", "0", name="far")
        wide = await s.spawn(sys.executable, str(panel_script), "30", "0", str(-(2**31)), str(-(2**31)))
        await s.wait_for(
            lambda: "mapped" in far.output() and "mapped" in wide.output(), "both panels mapped"
        )
        foot = await s.spawn("foot", "--maximized", "sh")
        win = await s.wait_window(lambda w: w.pid == foot.pid and w.maximized, "foot maximized")
        await s.settle()
        assert far.proc.returncode is None and wide.proc.returncode is None, far.output() + wide.output()
    assert 0 <= win.rect.y < 768 and win.rect.height > 0, win.rect
