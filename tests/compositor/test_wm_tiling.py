"""wr-wm-tiling, the installed entry point, as the session's window manager: real foot windows tiled
master/stack, workspaces switched by its key bindings (keys typed into the session as a viewer's
are), its configuration file read with file:line:col errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.compositor.harness import BACKGROUND_RGB, Session, running_session
from tests.compositor.test_wm_protocol import BLUE, GREEN, RED, _foot
from wayray.compositor.geometry import Rect
from wayray.wm.tiling_config import ConfigError, load_config

WR_WM_TILING = str(Path(sys.executable).parent / "wr-wm-tiling")
SIZE = (1024, 768)
KEY_LEFTMETA, KEY_LEFTSHIFT, KEY_ENTER, KEY_1, KEY_2, KEY_J = 125, 42, 28, 2, 3, 36
KEY_LEFTALT, KEY_TAB = 56, 15
YELLOW = 0xC0C000


def _chord(s: Session, *codes: int) -> None:
    for c in codes:
        s.comp.key(c, True)
    for c in reversed(codes):
        s.comp.key(c, False)


def _mostly(s: Session, rect: Rect, colour: int) -> bool:
    px = s.pixels()[rect.y + 10 : rect.y2 - 10, rect.x + 10 : rect.x2 - 10]
    return px.size > 0 and float(np.mean(px == colour)) > 0.8


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "wm-tiling.toml"
    terminal = " ".join(_foot(YELLOW, "yellow"))
    cfg.write_text(f'master_ratio = 0.5\nterminal = "{terminal}"\n\n[keys]\n"Super+Shift+Return" = ""\n')
    return cfg


async def test_three_foot_windows_tile_and_workspaces_switch_by_keys(tmp_path: Path) -> None:
    wm = (WR_WM_TILING, "--config", str(_config(tmp_path)))
    async with running_session(tmp_path, SIZE, window_manager=wm) as s:
        await s.wait_for(lambda: s.comp.core.wm_service.active, "wr-wm-tiling to bind")
        for colour, name in ((RED, "red"), (BLUE, "blue"), (GREEN, "green")):
            await s.spawn(*_foot(colour, name), name=name)
            await s.wait_window(lambda w, name=name: w.app_id == name, name)
        master, top, bottom = Rect(0, 0, 512, 768), Rect(512, 0, 512, 384), Rect(512, 384, 512, 384)
        for name, rect in (("red", master), ("blue", top), ("green", bottom)):
            await s.wait_window(lambda w, n=name, r=rect: w.app_id == n and w.rect == r, f"{name} at {rect}")
        await s.wait_for(
            lambda: _mostly(s, master, RED) and _mostly(s, top, BLUE) and _mostly(s, bottom, GREEN),
            "red | blue over green in the pixels",
        )
        await s.wait_window(lambda w: w.app_id == "green" and w.focused, "the newest window focused")
        s.save("tiled")

        # Super+j moves the focus (the key goes to the WM, not to foot).
        _chord(s, KEY_LEFTMETA, KEY_J)
        await s.wait_window(lambda w: w.app_id == "red" and w.focused, "focus_next wraps to the master")
        # The built-in Alt+Tab (no WM binding) goes back to green, and the WM hears of it: its next
        # Super+j starts from green (and wraps to red), not from red.
        _chord(s, KEY_LEFTALT, KEY_TAB)
        await s.wait_window(lambda w: w.app_id == "green" and w.focused, "Alt+Tab back to green")
        _chord(s, KEY_LEFTMETA, KEY_J)
        await s.wait_window(lambda w: w.app_id == "red" and w.focused, "focus_next from green: red")

        # Super+2: workspace 2 is empty, nothing of workspace 1 is drawn.
        _chord(s, KEY_LEFTMETA, KEY_2)
        await s.wait_for(lambda: not any(w.shown for w in s.comp.windows()), "workspace 1's windows hidden")
        await s.wait_for(lambda: float(np.mean(s.pixels() == BACKGROUND_RGB)) > 0.99, "an empty workspace")
        # Super+Return starts the configured terminal there, alone: the whole area.
        _chord(s, KEY_LEFTMETA, KEY_ENTER)
        await s.wait_window(
            lambda w: w.app_id == "yellow" and w.shown and w.rect == Rect(0, 0, 1024, 768), "the terminal"
        )
        await s.wait_for(lambda: _mostly(s, Rect(0, 0, 1024, 768), YELLOW), "the terminal in the pixels")

        # Super+1: back to the three, as they were; the yellow one is hidden.
        _chord(s, KEY_LEFTMETA, KEY_1)
        await s.wait_for(
            lambda: _mostly(s, master, RED) and _mostly(s, top, BLUE) and _mostly(s, bottom, GREEN),
            "workspace 1 again",
        )
        assert [w.app_id for w in s.comp.windows() if not w.shown] == ["yellow"]
        await s.wait_window(lambda w: w.app_id == "red" and w.focused, "workspace 1's focus kept")

        # Super+Shift+2 sends the focused window to workspace 2: the other two share the space.
        _chord(s, KEY_LEFTMETA, KEY_LEFTSHIFT, KEY_2)
        await s.wait_window(lambda w: w.app_id == "blue" and w.rect == Rect(0, 0, 512, 768), "blue master")
        await s.wait_window(lambda w: w.app_id == "red" and not w.shown, "red on workspace 2")
        # Killing the WM: every window, from every workspace, is back under the built-in WM.
        proc = s.comp.wm_process
        assert proc is not None and proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)
        await s.wait_for(lambda: not s.comp.core.wm_service.active, "the built-in WM to take over")
        assert all(w.shown for w in s.comp.windows())
        # ... and the restarted WM tiles all four on workspace 1.
        await s.wait_for(lambda: s.comp.core.wm_service.active, "wr-wm-tiling started again", timeout=90)
        await s.wait_for(
            lambda: sum(1 for w in s.comp.windows() if w.shown and w.rect.x == 512) == 3,
            "four windows tiled: one master, three stacked",
        )


def test_a_bad_configuration_names_file_line_and_column(tmp_path: Path) -> None:
    cfg = tmp_path / "wm-tiling.toml"
    cfg.write_text('gap = 4\n[keys]\n"Super+x" = "workspace 12"\n')
    try:
        load_config(cfg)
    except ConfigError as err:
        assert err.message.startswith(f"{cfg}:3:2: Super+x = 'workspace 12'"), err.message
    else:
        raise AssertionError("no error")
    cfg.write_text("gap = 4\nmaster_ratio = = 2\n")
    res = subprocess.run([WR_WM_TILING, "--check", "--config", str(cfg)], capture_output=True, text=True)
    assert res.returncode != 0 and f"{cfg}:2:" in res.stderr, res.stderr
    cfg.write_text('[keys]\n"Hyper+x" = "close"\n')
    res = subprocess.run([WR_WM_TILING, "--check", "--config", str(cfg)], capture_output=True, text=True)
    assert res.returncode != 0 and "'Hyper' is not a modifier" in res.stderr, res.stderr
    cfg.write_text('terminal = "xterm"\n[keys]\n"Super+t" = "terminal"\n')
    res = subprocess.run([WR_WM_TILING, "--check", "--config", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_started_outside_a_session_it_says_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_SOCKET", "WAYLAND_DISPLAY")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    res = subprocess.run([WR_WM_TILING], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0 and "started by a WayRay session" in res.stderr, res.stderr
