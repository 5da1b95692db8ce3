"""X11 programs in a session: the X display reserved and exported, Xwayland started by the first X
client (not before), its crash costing only X clients, and X11 off meaning no display at all
(docs/xwayland.md §2). Real Xwayland, real X programs (xterm, xmessage)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import BACKGROUND_RGB, running_session

pytestmark = pytest.mark.skipif(
    shutil.which("Xwayland") is None or shutil.which("xterm") is None,
    reason="needs Xwayland and xterm (apt: xwayland xterm x11-apps)",
)

FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
XTERM = ("xterm", "-fa", "monospace", "-fs", "11", "-bg", "white", "-fg", "black")


def _lock_pid(display: str) -> int:
    return int(Path(f"/tmp/.X{display[1:]}-lock").read_text().strip())


async def test_an_x_client_starts_xwayland_on_demand_and_its_window_is_drawn(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        display = s.comp.x_display
        assert display is not None and display.startswith(":")
        number = display[1:]
        assert Path(f"/tmp/.X11-unix/X{number}").is_socket()
        assert _lock_pid(display) == os.getpid()
        assert s.comp.client_env()["DISPLAY"] == display
        xw = s.comp.core.xwayland
        assert xw is not None
        assert not xw.running and xw.starts == 0, "Xwayland ran before any X client connected"

        await s.spawn(*XTERM, "-T", "hello-x", "-e", "sh", "-c", "echo WAYRAY-X11; sleep 600")
        win = await s.wait_window(lambda w: w.title == "hello-x", "the xterm window")
        assert xw.running and xw.starts == 1
        assert win.pid == s.clients[-1].pid, "the window's pid is xterm's (_NET_WM_PID)"
        await s.settle()
        px = s.pixels()
        r = win.rect
        inside = px[r.y : r.y + r.height, r.x : r.x + r.width]
        assert inside.size and np.count_nonzero(inside == 0xFFFFFF) > inside.size // 2, (
            "xterm's white background is not where its window is"
        )
        assert np.count_nonzero(inside == 0x000000) > 50, "no black text drawn in xterm"
        assert np.count_nonzero(px == BACKGROUND_RGB) > 0
        s.save("xterm")


async def test_an_xwayland_crash_costs_only_x_clients_and_the_next_starts_another(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        foot = await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "the foot window")
        await s.spawn(*XTERM, "-T", "first-x", "-e", "sh", "-c", "sleep 600")
        await s.wait_window(lambda w: w.title == "first-x", "the first xterm")
        xw = s.comp.core.xwayland
        assert xw is not None and xw.pid is not None
        first_pid = xw.pid
        display = s.comp.x_display

        xw.kill(signal.SIGKILL)
        await s.wait_for(
            lambda: not any(w.title == "first-x" for w in s.comp.windows()), "the X window gone"
        )
        await s.wait_for(lambda: not xw.running, "Xwayland seen gone")
        assert foot.proc.returncode is None, "foot (a Wayland client) died with Xwayland"
        assert any(w.app_id == "foot" for w in s.comp.windows()), "foot's window went with Xwayland"
        assert s.comp.x_display == display and Path(f"/tmp/.X11-unix/X{display[1:]}").is_socket()

        await s.spawn(*XTERM, "-T", "second-x", "-e", "sh", "-c", "sleep 600")
        await s.wait_window(lambda w: w.title == "second-x", "an xterm after the crash")
        assert xw.running and xw.pid != first_pid and xw.starts == 2


async def test_x11_off_means_no_display_no_socket_no_xwayland(tmp_path: Path) -> None:
    before = set(Path("/tmp").glob(".X*-lock"))
    async with running_session(tmp_path, x11=False) as s:
        assert s.comp.x_display is None
        assert "DISPLAY" not in s.comp.client_env(base={"DISPLAY": ":99"})
        mine = [
            p
            for p in set(Path("/tmp").glob(".X*-lock")) - before
            if _lock_pid(f":{p.name[2:-5]}") == os.getpid()
        ]
        assert mine == [], f"a display was reserved with X11 off: {mine}"
        client = await s.spawn("xterm", "-e", "true")
        assert await s.wait_exit(client) != 0, "an X client found a display with X11 off"
        assert s.comp.core.xwayland is None


async def test_the_display_is_released_when_the_session_ends(tmp_path: Path) -> None:
    async with running_session(tmp_path, x11=True) as s:
        display = s.comp.x_display
        assert display is not None
    assert not Path(f"/tmp/.X{display[1:]}-lock").exists()
    assert not Path(f"/tmp/.X11-unix/X{display[1:]}").exists()


async def test_the_display_is_written_next_to_a_named_socket_for_wrsessd(tmp_path: Path) -> None:
    """wrsessd starts the session's programs once the compositor's socket exists and gives them the
    DISPLAY it finds next to it (wayray.launcher.spawn.read_x_display)."""
    from wayray.launcher.spawn import read_x_display

    async with running_session(tmp_path, x11=True, socket_name="wayray-xw") as s:
        sock = s.comp.socket_path
        assert read_x_display(sock, os.getuid()) == s.comp.x_display
        assert read_x_display(sock, os.getuid() + 1) is None, "another user's file was believed"
    assert not Path(f"{sock}.x11").exists(), "the display file outlived the session"
    (tmp_path / "off").mkdir()
    async with running_session(tmp_path / "off", x11=False, socket_name="wayray-xw") as s:
        assert read_x_display(s.comp.socket_path, os.getuid()) is None
    junk = tmp_path / "junk"
    Path(f"{junk}.x11").write_text(":0; rm -rf /\n")
    assert read_x_display(junk, os.getuid()) is None


async def test_an_xwayland_that_cannot_start_is_retried_with_backoff_not_in_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "Xwayland").write_text("#!/bin/sh\necho 'broken Xwayland' >&2\nexit 1\n")
    (fake / "Xwayland").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    async with running_session(tmp_path, x11=True) as s:
        xw = s.comp.core.xwayland
        assert xw is not None and xw.binary == str(fake / "Xwayland")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await s.spawn("xterm", "-e", "true")  # waits in the socket's backlog while starts fail
        await s.wait_for(lambda: xw.starts >= 4, "three restarts")
        # Each failed start waits at least half the backoff's step (0.5 s doubling) before the next.
        assert loop.time() - start >= 0.25 * (1 + 2 + 4), f"{xw.starts} starts: restarted in a loop"
        foot = await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "a Wayland window meanwhile")
        assert foot.proc.returncode is None


def test_wrsrvd_compositor_runs_an_x_program_and_no_x11_means_none(tmp_path: Path) -> None:
    from tests.conftest import script

    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    probe = 'xwininfo -root -children | grep -q "child" && test -n "$DISPLAY" && exit 7'
    on = subprocess.run([script("wrsrvd"), "compositor", "--", "sh", "-c", probe],
                        env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert on.returncode == 7, on.stderr
    no_display = 'test -z "$DISPLAY"'
    off = subprocess.run([script("wrsrvd"), "compositor", "--no-x11", "--", "sh", "-c", no_display],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert off.returncode == 0, off.stderr
    assert list(runtime.iterdir()) == [], "the socket or the display file was left behind"


@pytest.mark.skipif(
    shutil.which("runuser") is None or shutil.which("xdpyinfo") is None, reason="runuser, xdpyinfo"
)
async def test_another_local_user_cannot_connect_to_the_sessions_x_display(tmp_path: Path) -> None:
    """Xwayland is started without a cookie; its access control admits connections from its own uid
    only (the peer's credentials on the socket), so another user of the server, who can reach the
    abstract socket, cannot open the display and read the session's keys. This guards that default
    (an `-ac` or a host list would end it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a program as nobody")
    async with running_session(tmp_path, x11=True) as s:
        display = s.comp.x_display
        assert display is not None
        own = await s.spawn("xdpyinfo", name="xdpyinfo-own")
        assert await s.wait_exit(own) == 0, own.output()
        stranger = await s.spawn("runuser", "-u", "nobody", "--", "xdpyinfo", "-display", display,
                                 name="xdpyinfo-nobody")  # fmt: skip
        assert await s.wait_exit(stranger) != 0, "another user reached the session's X display"
        assert "Authorization required" in stranger.output()


def test_a_socket_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    """The owner of /tmp/.X11-unix may delete any socket in it, sticky bit or not: one made by another
    user could swap the session's X socket for a listener of theirs and read what X programs type.
    systemd makes it as root at boot (tmpfiles.d/x11.conf); anything else owned by someone else is
    refused, and the session runs without X11."""
    from wayray.compositor.xdisplay import XDisplay, XDisplayError

    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    theirs = tmp_path / "X11-unix"
    theirs.mkdir(mode=0o1777)
    os.chown(theirs, 65534, 65534)  # nobody
    with pytest.raises(XDisplayError, match="owned by uid 65534"):
        XDisplay.reserve(lock_dir=str(tmp_path), socket_dir=str(theirs))
    assert list(tmp_path.glob(".X*-lock")) == [] and list(theirs.iterdir()) == []
    ours = tmp_path / "ours"
    ours.mkdir()
    display = XDisplay.reserve(lock_dir=str(tmp_path), socket_dir=str(ours))
    try:
        assert (ours / f"X{display.number}").is_socket()
    finally:
        display.close()
