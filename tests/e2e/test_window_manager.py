"""The session's window manager through the product: a session process given one (as wrsessd gives
session.toml's window_manager, in WAYRAY_WINDOW_MANAGER) starts it, and a viewer over real QUIC sees
the windows where it put them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import Harness, eventually, failure, png_pixels

pytestmark = pytest.mark.slow

COLUMNS_WM = Path(__file__).parents[1] / "compositor" / "clients" / "columns_wm.py"
RED, BLUE = (0xC0, 0x00, 0x00), (0x00, 0x00, 0xC0)


def _share(pixels: np.ndarray, x0: int, x1: int, rgb: tuple[int, int, int]) -> float:
    region = pixels[200:500, x0:x1, :3]
    return float(np.mean(np.all(region == np.array(rgb, dtype=region.dtype), axis=-1)))


def test_a_session_started_with_a_window_manager_shows_its_layout_to_the_viewer(harness: Harness) -> None:
    state = harness.home / "wm"
    state.mkdir()
    harness.env["WAYRAY_WINDOW_MANAGER"] = json.dumps([sys.executable, str(COLUMNS_WM), str(state)])
    foot = "foot -o pad=0x0 -o colors.background={} --app-id {} sh"
    env_file = harness.home / "session-env.txt"
    red, blue = foot.format("c00000", "red"), foot.format("0000c0", "blue")
    srv = harness.server(["sh", "-c", f"env > {env_file}; {red} & sleep 1; exec {blue}"])
    del harness.env["WAYRAY_WINDOW_MANAGER"]  # the viewer has no business with it
    shot = harness.tmp / "viewer.png"
    script = harness.write_script("look.txt", f"settle 3000\nsnapshot {shot}\n")
    result = harness.run_client(srv, "--script", str(script), "--size", "1024x768")
    assert result.returncode == 0, failure(result)
    pixels = png_pixels(shot)
    assert _share(pixels, 20, 490, RED) > 0.8 and _share(pixels, 534, 1004, BLUE) > 0.8, "red | blue"
    # The server's own picture of the session is the same layout, and the WM was started once.
    session = eventually(lambda: srv.session(), "the session")
    ours = srv.screenshot(session["id"])
    assert _share(ours, 20, 490, RED) > 0.8 and _share(ours, 534, 1004, BLUE) > 0.8
    assert (state / "starts").read_text() == "1"
    # The variable is the compositor's: the session's programs do not inherit it.
    assert "WAYRAY_WINDOW_MANAGER" not in env_file.read_text()
