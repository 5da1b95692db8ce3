"""session.toml's window_manager through the whole login chain: wrsessd hands it to the user's
session compositor, which starts it as the user on the one connection that may manage windows; the
kiosk shows its layout; a program of the session that tries to manage windows is refused."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.login import PYTHONPATH, LoginRig, environ, login_rig, until
from tests.launcher.harness import SYSTEM_PYTHON, Accounts, throwaway_accounts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: throwaway users, PAM, sessions as other users"
    ),
]

BADGE = "04A2B9C1D8"
CLIENTS = Path(__file__).parents[1] / "compositor" / "clients"
RED, BLUE = (0xC0, 0x00, 0x00), (0x00, 0x00, 0xC0)


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with throwaway_accounts() as acc:
        yield acc


@pytest.fixture
def rig(accounts: Accounts, tmp_path: Path) -> Iterator[LoginRig]:
    with login_rig(accounts, tmp_path) as r:
        yield r


def _share(pixels: np.ndarray, x0: int, x1: int, rgb: tuple[int, int, int]) -> float:
    region = pixels[200:500, x0:x1, :3]
    return float(np.mean(np.all(region == np.array(rgb, dtype=region.dtype), axis=-1)))


def test_session_tomls_window_manager_manages_the_users_windows(rig: LoginRig, accounts: Accounts) -> None:
    home = Path(pwd.getpwnam(accounts.user).pw_dir)
    state = home / "wm-state"
    python = ["/usr/bin/env", f"PYTHONPATH={PYTHONPATH}", SYSTEM_PYTHON]
    wm = [*python, str(CLIENTS / "columns_wm.py"), str(state)]
    hostile = [*python, str(CLIENTS / "misbehave.py"), "bind_window_manager"]
    foot = ["foot", "-o", "pad=0x0", "-o"]
    red = [*foot, "colors.background=c00000", "--app-id", "red", "sh"]
    blue = [*foot, "colors.background=0000c0", "--app-id", "blue", "sh"]
    hostile_out = home / "hostile.txt"
    later_blue = ["/bin/sh", "-c", "sleep 2; exec " + " ".join(blue)]
    # It is not offered the global: it binds the name the WM saw (columns_wm writes it down).
    name = state / "global"
    refused = [
        "/bin/sh",
        "-c",
        f"until test -s {name}; do sleep 0.1; done; "
        + " ".join(hostile)
        + f' "$(cat {name})" > {hostile_out} 2>&1',
    ]
    autostart = ", ".join(json.dumps(a) for a in (red, later_blue, refused))
    session_toml = f"[session]\nwindow_manager = {json.dumps(wm)}\nautostart = [{autostart}]\n"
    try:
        state.mkdir()
        os.chown(state, pwd.getpwnam(accounts.user).pw_uid, -1)
        rig.configure(session_toml=session_toml)
        rig.start()
        kiosk = rig.kiosk("a")
        kiosk.insert(BADGE)
        kiosk.wait_screen("greeter")
        rig.log_in(kiosk, accounts.user, accounts.password)

        def side_by_side() -> bool:
            pixels = kiosk.snapshot(rig.tmp / "wm.png")
            return _share(pixels, 20, 490, RED) > 0.8 and _share(pixels, 534, 1004, BLUE) > 0.8

        until(side_by_side, "red | blue, as the window manager placed them")
        # The WM runs as the user, started once, by the compositor: not one of wrsessd's programs.
        starts = state / "starts"
        assert starts.read_text() == "1" and starts.stat().st_uid == state.stat().st_uid
        # Another program of the same session, same user, cannot manage windows.
        until(lambda: hostile_out.exists() and "protocol error" in hostile_out.read_text(), "the refusal")
        assert "global wayray_wm_manager_v1" in hostile_out.read_text()  # (N) is unavailable
        foot_pid = until(lambda: rig.user_processes().named("foot"), "foot")[0]
        assert "WAYRAY_WINDOW_MANAGER" not in environ(foot_pid)
    finally:
        for p in (state, hostile_out):
            if p.is_dir():
                for f in p.iterdir():
                    f.unlink()
                p.rmdir()
            elif p.exists():
                p.unlink()
