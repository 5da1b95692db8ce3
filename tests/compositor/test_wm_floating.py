"""wr-wm-floating, the installed entry point, behaves as the built-in floating WM: one scripted
scenario (three foot windows, an application with a dialog, a click, Alt+Tab, Super+Left, Super+Up,
Super+Right) runs once under the built-in WM and once under wr-wm-floating, and the scene (geometry,
stacking, focus, states) and the pixels come out the same. Its decisions are also checked on their
own, with stand-in protocol objects."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.compositor.harness import Session, running_session
from tests.compositor.test_wm_protocol import BLUE, GREEN, RED, _foot
from wayray.compositor.geometry import Rect
from wayray.compositor.testing import BTN_LEFT, KEY_LEFTALT, chord, click, type_text
from wayray.compositor.titlebar import HEIGHT as TITLE
from wayray.wm.floating import KEY_DOWN, KEY_LEFT, KEY_RIGHT, KEY_UP, FloatingWM, Win

WR_WM_FLOATING = str(Path(sys.executable).parent / "wr-wm-floating")
DIALOG = Path(__file__).parent / "clients" / "dialog.py"
SIZE = (1024, 768)
YELLOW, MAGENTA = 0xC0C000, 0xC000C0
KEY_TAB, KEY_LEFTMETA, KEY_LEFT_ARROW, KEY_UP_ARROW, KEY_RIGHT_ARROW = 15, 125, 105, 103, 106


async def _scenario(s: Session) -> tuple[list[tuple[object, ...]], np.ndarray]:
    """The same steps a person takes; returns the scene (bottom to top) and the pixels."""
    t = TITLE if s.comp.decorations.value == "server" else 0  # foot's server-side title bar
    for colour, name in ((RED, "red"), (BLUE, "blue"), (GREEN, "green")):
        await s.spawn(*_foot(colour, name), name=name)
        await s.wait_window(lambda w, name=name: w.app_id == name and w.focused, f"{name} focused")
    await s.spawn(sys.executable, str(DIALOG), f"{YELLOW:06x}", f"{MAGENTA:06x}", name="dialog")
    dialog = await s.wait_window(lambda w: w.app_id == "dialog" and w.focused, "the dialog focused")
    main = next(w for w in s.comp.windows() if w.app_id == "main")
    assert (dialog.rect.x - main.rect.x, dialog.rect.y - main.rect.y) == (120, 100), (dialog, main)
    await s.settle()
    # A click on red's strip that the cascade leaves uncovered focuses and raises it.
    red = next(w for w in s.comp.windows() if w.app_id == "red")
    await click(s.comp, red.rect.x + 10, red.rect.y + red.rect.height // 2)
    await s.wait_for(
        lambda: s.comp.windows()[-1].app_id == "red" and s.comp.windows()[-1].focused, "red on top"
    )
    # Alt+Tab: the most recently used before red, the dialog; Super+Left snaps it to the left half.
    await chord(s.comp, KEY_LEFTALT, KEY_TAB)
    await s.wait_window(lambda w: w.app_id == "dialog" and w.focused, "Alt+Tab to the dialog")
    await chord(s.comp, KEY_LEFTMETA, KEY_LEFT_ARROW)
    await s.wait_window(
        lambda w: w.app_id == "dialog" and w.rect == Rect(0, 0, 512, 768), "the dialog snapped"
    )
    # Alt+Tab back to red, Super+Up maximizes it.
    await chord(s.comp, KEY_LEFTALT, KEY_TAB)
    await s.wait_window(lambda w: w.app_id == "red" and w.focused, "Alt+Tab back to red")
    await chord(s.comp, KEY_LEFTMETA, KEY_UP_ARROW)
    await s.wait_window(
        lambda w: w.app_id == "red" and w.maximized and w.rect == Rect(0, t, SIZE[0], SIZE[1] - t),
        "red maximized",
    )
    # Super+Right snaps the maximized red to the right half (and it stays there once drawn).
    await chord(s.comp, KEY_LEFTMETA, KEY_RIGHT_ARROW)
    await s.wait_window(
        lambda w: w.app_id == "red" and not w.maximized and w.rect == Rect(512, t, 512, 768 - t),
        "red snapped",
    )
    if t:
        # A drag of red's server-side title bar moves it; a double click on it maximizes it.
        await s.settle()
        s.comp.pointer_motion(600, t // 2)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(lambda: s.comp.core.seat.grab.value == "move", "a title-bar drag to move red")
        for step in range(1, 11):
            s.comp.pointer_motion(600 - 20 * step, t // 2 + 10 * step)
            await asyncio.sleep(0.01)
        s.comp.pointer_button(BTN_LEFT, False)
        await s.wait_window(
            lambda w: w.app_id == "red" and w.rect == Rect(312, t + 100, 512, 768 - t), "red dragged"
        )
        await s.settle()
        await click(s.comp, 400, 100 + t // 2)
        await click(s.comp, 400, 100 + t // 2)
        await s.wait_window(
            lambda w: w.app_id == "red" and w.maximized and w.rect == Rect(0, t, SIZE[0], SIZE[1] - t),
            "red maximized by a double click on its title bar",
        )
    await s.settle()
    scene = [(w.app_id, w.rect, w.focused, w.maximized, w.fullscreen, w.shown) for w in s.comp.windows()]
    return scene, s.pixels()


async def _requests(s: Session) -> tuple[list[tuple[object, ...]], np.ndarray]:
    """An application asks for fullscreen and back, and for maximized (its own shortcuts F and M)."""
    await s.spawn(*_foot(RED, "red"), name="red")
    await s.wait_window(lambda w: w.app_id == "red" and w.focused, "red focused")
    app = await s.spawn(sys.executable, str(DIALOG), f"{YELLOW:06x}", f"{MAGENTA:06x}", name="dialog")
    placed = await s.wait_window(lambda w: w.app_id == "dialog" and w.focused, "the dialog focused")
    await s.wait_for(lambda: "mapped" in app.output(), "the application ready")
    await type_text(s.comp, "f")
    await s.wait_window(
        lambda w: w.app_id == "dialog" and w.fullscreen and w.rect == Rect(0, 0, *SIZE), "dialog fullscreen"
    )
    await type_text(s.comp, "f")
    await s.wait_window(
        lambda w: w.app_id == "dialog" and not w.fullscreen and w.rect == placed.rect, "the dialog back"
    )
    await chord(s.comp, KEY_LEFTALT, KEY_TAB)
    await s.wait_window(lambda w: w.app_id == "main" and w.focused, "Alt+Tab to the main window")
    await type_text(s.comp, "m")
    await s.wait_window(
        lambda w: w.app_id == "main" and w.maximized and w.rect == Rect(0, 0, *SIZE), "main maximized"
    )
    await s.settle()
    scene = [(w.app_id, w.rect, w.focused, w.maximized, w.fullscreen, w.shown) for w in s.comp.windows()]
    return scene, s.pixels()


async def _minimize(s: Session) -> tuple[list[tuple[object, ...]], np.ndarray]:
    """An application minimizes its main window (a press on it); Alt+Tab brings it back."""
    await s.spawn(*_foot(RED, "red"), name="red")
    await s.wait_window(lambda w: w.app_id == "red" and w.focused, "red focused")
    app = await s.spawn(
        sys.executable, str(DIALOG), f"{YELLOW:06x}", f"{MAGENTA:06x}", "--minimize", name="dialog"
    )
    await s.wait_window(lambda w: w.app_id == "dialog" and w.focused, "the dialog focused")
    await s.wait_for(lambda: "mapped" in app.output(), "the application ready")
    main = next(w for w in s.comp.windows() if w.app_id == "main")
    await click(s.comp, main.rect.x + 10, main.rect.y + 10)  # beside its dialog
    await s.wait_for(lambda: not any(w.app_id == "main" and w.shown for w in s.comp.windows()), "main gone")
    await s.wait_window(lambda w: w.app_id == "dialog" and w.focused, "the dialog focused again")
    # Alt+Tab: the most recently used before the dialog is the minimized main window: it comes back
    # (under wr-wm-floating the compositor asks it to activate the window it hid).
    await chord(s.comp, KEY_LEFTALT, KEY_TAB)
    await s.wait_window(lambda w: w.app_id == "main" and w.shown and w.focused, "main back and focused")
    await s.settle()
    scene = [(w.app_id, w.rect, w.focused, w.maximized, w.fullscreen, w.shown) for w in s.comp.windows()]
    return scene, s.pixels()


Scenario = Callable[[Session], Awaitable[tuple[list[tuple[object, ...]], np.ndarray]]]


@pytest.mark.parametrize(
    ("scenario", "decorations"),
    [(_scenario, "client"), (_scenario, "server"), (_requests, "client"), (_minimize, "client")],
    ids=["click-alt-tab-snap", "click-alt-tab-snap-server-title-bars", "requests", "minimize"],
)
async def test_wr_wm_floating_gives_the_scene_and_pixels_of_the_built_in_wm(
    tmp_path: Path, scenario: Scenario, decorations: str
) -> None:
    (tmp_path / "builtin").mkdir()
    (tmp_path / "client").mkdir()
    wm = (WR_WM_FLOATING, "-v")
    async with running_session(tmp_path / "builtin", SIZE, decorations=decorations) as s:
        builtin_scene, builtin_pixels = await scenario(s)
        s.save("builtin")
    async with running_session(tmp_path / "client", SIZE, decorations=decorations, window_manager=wm) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "wr-wm-floating to bind")
        client_scene, client_pixels = await scenario(s)
        s.save("wr-wm-floating")
        # It was wr-wm-floating all along: bound once, still bound, and the built-in Super+arrows
        # are off while it runs (so the snap and the maximize were its own).
        assert s.comp.core.wm_service.active and s.comp.core.wm_service.takeovers == 1
    assert client_scene == builtin_scene
    differ = np.argwhere(client_pixels != builtin_pixels)
    assert differ.size == 0, f"{len(differ)} pixels differ, first at (y, x) {differ[0].tolist()}"


async def test_a_restarted_wr_wm_floating_keeps_every_window_where_it_is_and_cascades_on(
    tmp_path: Path,
) -> None:
    async with running_session(tmp_path, SIZE, window_manager=(WR_WM_FLOATING,)) as s:
        service = s.comp.core.wm_service
        await s.wait_for(lambda: service.active, "wr-wm-floating to bind")
        for colour, name in ((RED, "red"), (BLUE, "blue")):
            await s.spawn(*_foot(colour, name), name=name)
            await s.wait_window(lambda w, name=name: w.app_id == name and w.focused, f"{name} focused")
        await chord(s.comp, KEY_LEFTMETA, KEY_LEFT_ARROW)  # blue to the left half: not where placed
        await s.wait_window(lambda w: w.app_id == "blue" and w.rect.x == 0, "blue snapped")
        await s.settle()
        before = [(w.app_id, w.rect, w.focused) for w in s.comp.windows()]
        proc = s.comp.wm_process
        assert proc is not None and proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)
        await s.wait_for(lambda: service.takeovers == 2 and service.active, "wr-wm-floating started again")
        await s.settle()
        assert [(w.app_id, w.rect, w.focused) for w in s.comp.windows()] == before
        # A new window is cascaded from the newest (blue, where it is now), raised and focused.
        blue = next(w for w in s.comp.windows() if w.app_id == "blue")
        await s.spawn(*_foot(GREEN, "green"), name="green")
        green = await s.wait_window(lambda w: w.app_id == "green" and w.focused, "green focused")
        assert (green.rect.x, green.rect.y) == (blue.rect.x + 32, blue.rect.y + 32), (green, blue)
        assert s.comp.windows()[-1].app_id == "green"


# The decisions alone, with stand-ins for the protocol objects --------------------------------------


class Proxy:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, *args))


def _win(wm: FloatingWM, width: int, height: int, parent: Win | None = None) -> Win:
    w = Win(Proxy(), width=width, height=height, parent=parent, mapped=True)
    wm.windows.append(w)
    return w


def test_placement_centres_cascades_wraps_and_puts_dialogs_over_their_parent() -> None:
    wm = FloatingWM(Proxy())
    wm.area, wm.ready = (0, 30, 1000, 700), True
    first = _win(wm, 400, 300)
    wm.window_mapped(first)
    assert first.proxy.calls == [("set_geometry", 300, 230, 0, 0), ("raise_to_top",), ("focus",)]
    second = _win(wm, 400, 300)
    wm.window_mapped(second)
    assert second.rect == (332, 262, 400, 300)
    dialog = _win(wm, 200, 100, parent=second)
    wm.window_mapped(dialog)
    assert dialog.rect == (432, 362, 200, 100)
    # The cascade goes on from the dialog (the last placed) and wraps when it would leave the area.
    big = _win(wm, 600, 400)
    wm.window_mapped(big)
    assert big.rect == (32, 62, 600, 400)
    # A window that was on screen before the WM bound stays where it is.
    wm.ready = False
    old = _win(wm, 100, 100)
    wm.window_mapped(old)
    assert old.proxy.calls == []
    wm.ready = True  # ... and the cascade goes on from it
    new = _win(wm, 100, 100)
    wm.window_mapped(new)
    assert new.rect == (old.x + 32, old.y + 32, 100, 100)


def _focused_window() -> tuple[FloatingWM, Win]:
    """A WM with a 1000 x 700 output and one focused 400 x 300 window at (50, 60)."""
    wm = FloatingWM(Proxy())
    wm.area, wm.ready = (0, 0, 1000, 700), True
    w = _win(wm, 400, 300)
    w.x, w.y = 50, 60
    wm.focused = w
    return wm, w


def test_super_arrows_snap_maximize_and_restore_through_the_protocol() -> None:
    wm, w = _focused_window()
    wm.super_key(KEY_RIGHT)
    assert w.proxy.calls[-1] == ("set_geometry", 500, 0, 500, 700)
    wm.super_key(KEY_LEFT)
    assert w.proxy.calls[-1] == ("set_geometry", 0, 0, 500, 700)
    wm.super_key(KEY_DOWN)  # back to where it was before the first snap
    assert w.proxy.calls[-1] == ("set_geometry", 50, 60, 400, 300)
    wm.super_key(KEY_UP)
    assert w.proxy.calls[-1] == ("set_maximized", 1)
    wm.super_key(KEY_DOWN)
    assert w.proxy.calls[-1] == ("set_maximized", 0)
    w.title_bar = 24  # a server-side title bar is inside the half
    wm.super_key(KEY_LEFT)
    assert w.proxy.calls[-1] == ("set_geometry", 0, 24, 500, 676)
    w.fullscreen = True
    n = len(w.proxy.calls)
    wm.super_key(KEY_RIGHT)
    assert len(w.proxy.calls) == n, "a fullscreen window is not snapped"


def test_a_maximized_window_the_application_drags_is_no_longer_maximized_for_the_wm() -> None:
    """The compositor restores a maximized window that its application drags (as the built-in WM
    does): Super+Down after that restores it from its snap, as under the built-in WM, instead of
    doing nothing."""
    wm, w = _focused_window()
    wm.super_key(KEY_LEFT)
    wm.super_key(KEY_UP)
    assert w.proxy.calls[-1] == ("set_maximized", 1)
    wm.request_move(w)
    assert w.proxy.calls[-1] == ("begin_move",)
    wm.super_key(KEY_DOWN)
    assert w.proxy.calls[-1] == ("set_geometry", 50, 60, 400, 300)
    w.fullscreen = True  # a fullscreen window is not moved
    n = len(w.proxy.calls)
    wm.request_move(w)
    assert len(w.proxy.calls) == n
