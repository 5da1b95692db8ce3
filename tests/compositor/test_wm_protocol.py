"""The window-manager protocol (docs/wm-protocol.md) with a real WM process and real clients.

``clients/columns_wm.py`` is the session's window manager, started by the compositor: it lays the
windows out in columns. foot windows with distinct backgrounds show in the pixels where they are.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import Session, running_session
from wayray.compositor import wm_protocol
from wayray.compositor.geometry import Rect

CLIENTS = Path(__file__).parent / "clients"
COLUMNS_WM = (sys.executable, str(CLIENTS / "columns_wm.py"))
RED, BLUE, GREEN = 0xC00000, 0x0000C0, 0x00A000
SIZE = (1024, 768)


def _foot(colour: int, app_id: str) -> tuple[str, ...]:
    return (
        "foot",
        "-o",
        "font=monospace:size=11",
        "-o",
        f"colors.background={colour:06x}",
        "-o",
        "pad=0x0",
        "--app-id",
        app_id,
        "sh",
    )


def _share(s: Session, region: tuple[slice, slice], colour: int) -> float:
    """The share of ``region``'s pixels that are ``colour``."""
    px = s.pixels()[region]
    return float(np.mean(px == colour))


def _columns_show(s: Session, colours: list[int]) -> bool:
    """Each of len(colours) equal columns of the output is mostly its colour (foot's background)."""
    w, h = SIZE
    col = w // len(colours)
    rows = slice(h // 4, 3 * h // 4)
    return all(
        _share(s, (rows, slice(i * col + 20, (i + 1) * col - 20)), c) > 0.8 for i, c in enumerate(colours)
    )


async def test_a_wm_process_places_two_windows_side_by_side(tmp_path: Path) -> None:
    state = tmp_path / "wm"
    state.mkdir()
    async with running_session(tmp_path, SIZE, window_manager=(*COLUMNS_WM, str(state))) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        await s.spawn(*_foot(RED, "red"), name="red")
        await s.wait_window(lambda w: w.app_id == "red", "the red foot")
        await s.spawn(*_foot(BLUE, "blue"), name="blue")
        left = await s.wait_window(
            lambda w: w.app_id == "red" and w.rect == Rect(0, 0, 512, 768), "red tiled on the left half"
        )
        right = await s.wait_window(
            lambda w: w.app_id == "blue" and w.rect == Rect(512, 0, 512, 768), "blue on the right half"
        )
        assert left.rect.x2 == right.rect.x
        await s.wait_for(lambda: _columns_show(s, [RED, BLUE]), "red | blue in the pixels")
        # The WM focuses the newest window: the keyboard goes to blue.
        await s.wait_window(lambda w: w.app_id == "blue" and w.focused, "blue focused by the WM")
        s.save("side-by-side")


async def test_a_client_that_is_not_the_wm_gets_a_protocol_error(tmp_path: Path) -> None:
    state = tmp_path / "wm"
    state.mkdir()
    async with running_session(tmp_path, SIZE, window_manager=(*COLUMNS_WM, str(state))) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        # An ordinary client is not even told of the global (only the WM's connection is).
        info = await s.spawn("wayland-info", name="wayland-info")
        assert await s.wait_exit(info) == 0, info.output()
        assert "wl_compositor" in info.output() and "wayray_wm_manager_v1" not in info.output()
        # Binding it by the name the WM saw is a protocol error that names it.
        name = (state / "global").read_text()
        hostile = await s.spawn(sys.executable, str(CLIENTS / "misbehave.py"), "bind_window_manager", name)
        assert await s.wait_exit(hostile) == 3
        assert "protocol error" in hostile.output()
        assert "wayray_wm_manager_v1" in hostile.output()
        # The real WM is untouched and still places windows.
        assert s.comp.core.wm_service.active
        await s.spawn(*_foot(RED, "red"), name="red")
        await s.wait_window(lambda w: w.app_id == "red" and w.rect == Rect(0, 0, 1024, 768), "red placed")


async def test_without_a_wm_nobody_may_bind(tmp_path: Path) -> None:
    async with running_session(tmp_path, SIZE) as s:
        # No client is offered the global: one looking for it in the registry finds nothing to bind.
        hostile = await s.spawn(sys.executable, str(CLIENTS / "misbehave.py"), "bind_window_manager")
        assert await s.wait_exit(hostile) == 0
        assert "no error" in hostile.output()
        assert not s.comp.core.wm_service.active


async def test_a_killed_wm_leaves_windows_usable_and_its_restart_manages_them_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wayray.compositor.wm_protocol")
    state = tmp_path / "wm"
    state.mkdir()
    async with running_session(tmp_path, SIZE, window_manager=(*COLUMNS_WM, str(state))) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        await s.spawn(*_foot(RED, "red"), name="red")
        await s.wait_window(lambda w: w.app_id == "red", "the red foot")
        await s.spawn(*_foot(BLUE, "blue"), name="blue")
        await s.wait_for(lambda: _columns_show(s, [RED, BLUE]), "red | blue")
        proc = s.comp.wm_process
        assert proc is not None and proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)
        await s.wait_for(lambda: not s.comp.core.wm_service.active, "the built-in WM to take over")
        # The connection closes before the process is reaped: its death is logged a moment later.
        await s.wait_for(
            lambda: any("killed by signal 9" in r.getMessage() for r in caplog.records),
            "the WM's death logged",
        )
        assert any("built-in floating window manager manages" in r.getMessage() for r in caplog.records)
        # The windows stay where they were, and the session goes on: a new window is placed by the
        # built-in WM (cascaded from the last one it placed, not in a column) and gets the keyboard.
        assert _columns_show(s, [RED, BLUE])
        await s.spawn(*_foot(GREEN, "green"), name="green")
        green = await s.wait_window(lambda w: w.app_id == "green" and w.focused, "green, focused")
        assert green.rect.y > 0 and green.rect.height < SIZE[1], green.rect
        # The restarted WM (started again by the compositor) manages all three, right to left.
        (state / "go").touch()
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the restarted window manager to bind")
        assert proc.starts >= 2
        await s.wait_for(lambda: _columns_show(s, [GREEN, BLUE, RED]), "green | blue | red")


async def test_a_hung_wm_is_dropped_and_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wayray.compositor.wm_protocol")
    monkeypatch.setattr(wm_protocol, "PING_INTERVAL", 0.2)
    monkeypatch.setattr(wm_protocol, "HANG_TIMEOUT", 1.0)
    state = tmp_path / "wm"
    state.mkdir()
    wm = (*COLUMNS_WM, str(state), "--ignore-pings")
    async with running_session(tmp_path, SIZE, window_manager=wm) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        await s.wait_for(
            lambda: any("hung" in r.getMessage() for r in caplog.records), "the hung WM to be dropped"
        )
        assert not s.comp.core.wm_service.active or s.comp.core.wm_service.takeovers >= 1
        proc = s.comp.wm_process
        assert proc is not None
        await s.wait_for(lambda: proc.starts >= 2, "the WM to be started again")
        # Meanwhile the built-in WM serves: a window opens, is centred and focused.
        await s.spawn(*_foot(RED, "red"), name="red")
        await s.wait_window(lambda w: w.app_id == "red", "the red foot")


async def test_server_title_bars_are_kept_in_view_and_a_drag_is_the_wms_click(tmp_path: Path) -> None:
    from wayray.compositor.testing import BTN_LEFT
    from wayray.compositor.titlebar import HEIGHT as TITLE

    state = tmp_path / "wm"
    state.mkdir()
    wm = (*COLUMNS_WM, str(state))
    async with running_session(tmp_path, SIZE, decorations="server", window_manager=wm) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        await s.spawn(*_foot(RED, "red"), name="red")
        await s.wait_window(lambda w: w.app_id == "red", "the red foot")
        await s.spawn(*_foot(BLUE, "blue"), name="blue")
        # The WM learnt the title bar's height and placed each window below its own bar.
        red = await s.wait_window(
            lambda w: w.app_id == "red" and w.rect == Rect(0, TITLE, 512, 768 - TITLE), "red below its bar"
        )
        await s.wait_window(lambda w: w.app_id == "blue" and w.focused, "blue focused")
        # Dragging red's title bar does not move it (no built-in move under a WM): the press is a
        # click the WM answers by focusing it.
        s.comp.pointer_motion(200, TITLE // 2)
        s.comp.pointer_button(BTN_LEFT, True)
        for x in range(210, 400, 20):
            s.comp.pointer_motion(x, 200)
            await asyncio.sleep(0.01)
        s.comp.pointer_button(BTN_LEFT, False)
        await s.wait_window(lambda w: w.app_id == "red" and w.focused, "red focused by the WM")
        assert next(w for w in s.comp.windows() if w.app_id == "red").rect == red.rect


def test_wrsrvd_compositor_runs_the_window_manager_it_is_given(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import script

    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    state = tmp_path / "wm"
    state.mkdir()
    env = {"XDG_RUNTIME_DIR": str(runtime), "PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    wm = f"{sys.executable} {CLIENTS / 'columns_wm.py'} {state}"
    # COMMAND waits until the WM has started (it counts its starts), then ends the compositor.
    wait = f"until test -s {state}/starts; do sleep 0.1; done; exit 5"
    res = subprocess.run(
        [script("wrsrvd"), "compositor", "--no-x11", "--window-manager", wm, "--", "sh", "-c", wait],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 5, res.stderr
    assert (state / "starts").read_text() == "1"
    missing = subprocess.run(
        [script("wrsrvd"), "compositor", "--window-manager", "wr-wm-tilling", "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "wr-wm-tilling': command not found" in missing.stderr, missing.stderr


async def test_a_wm_asking_for_an_absurd_size_is_cut_off_and_the_window_keeps_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    state = tmp_path / "wm"
    state.mkdir()
    async with running_session(tmp_path, SIZE, window_manager=(*COLUMNS_WM, str(state), "--huge")) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        await s.spawn(*_foot(RED, "red"), name="red")
        red = await s.wait_window(lambda w: w.app_id == "red", "the red foot")
        await s.wait_for(lambda: not s.comp.core.wm_service.active, "the WM cut off")
        assert any("geometry 100000x768" in r.getMessage() for r in caplog.records), caplog.text
        await s.settle()
        [now] = [w for w in s.comp.windows() if w.app_id == "red"]
        assert now.rect.width < SIZE[0] and now.rect.width == red.rect.width, now.rect


async def test_a_wm_may_grant_an_applications_move_and_hears_where_it_ended(tmp_path: Path) -> None:
    from wayray.compositor.testing import BTN_LEFT

    state = tmp_path / "wm"
    state.mkdir()
    async with running_session(tmp_path, SIZE, window_manager=(*COLUMNS_WM, str(state))) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "the window manager to bind")
        await s.spawn(*_foot(RED, "red"), name="red")
        await s.wait_window(lambda w: w.app_id == "red", "the red foot")
        await s.spawn(*_foot(BLUE, "blue"), name="blue")
        red = await s.wait_window(lambda w: w.app_id == "red" and w.rect.width == 512, "red tiled")
        await s.settle()
        # A drag of foot's own title bar: foot asks to move, the WM grants it, the pointer moves it.
        x, y = 200, 10
        s.comp.pointer_motion(x, y)
        s.comp.pointer_button(BTN_LEFT, True)
        await s.wait_for(lambda: s.comp.core.seat.grab.value == "move", "the move the WM granted")
        for step in range(1, 11):
            s.comp.pointer_motion(x + 12 * step, y + 7 * step)
            await asyncio.sleep(0.01)
        s.comp.pointer_button(BTN_LEFT, False)
        moved = await s.wait_window(lambda w: w.app_id == "red" and w.rect != red.rect, "red to move")
        assert moved.rect == Rect(red.rect.x + 120, red.rect.y + 70, red.rect.width, red.rect.height)
        positions = state / "positions"
        await s.wait_for(
            lambda: positions.exists() and "red 120 70" in positions.read_text().splitlines(),
            "the WM told where the drag left red",
        )
