"""X11 programs in a real session (wrsrvd, its session process, Xwayland on demand), seen, typed into
and copied from through a headless wrclient over real QUIC on loopback (docs/xwayland.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import script
from tests.e2e.harness import (
    Harness,
    WrServer,
    differing_pixels,
    eventually,
    failure,
    free_udp_port,
    kill_sessions,
    png_pixels,
)
from tests.server.test_instance import _status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("Xwayland") is None or shutil.which("xterm") is None or shutil.which("xclip") is None,
        reason="needs Xwayland, xterm and xclip (apt: xwayland xterm xclip)",
    ),
]

XTERM = ["xterm", "-T", "x-in-wayray", "-bg", "white", "-fg", "black", "-e", "sh"]


def _start_and_wait_for_xterm(harness: Harness, srv: WrServer) -> None:
    """A first viewer starts the session; its xterm shows once Xwayland has started on demand."""
    result = harness.run_client(srv, "--script", str(harness.write_script("start.txt", "settle\n")))
    assert result.returncode == 0, failure(result)
    eventually(
        lambda: np.all(srv.screenshot(srv.session()["id"]) == 255, axis=-1).sum() > 100_000,
        "the xterm drawn in the session",
    )


def test_an_xterm_session_is_typed_into_and_seen_exactly_by_the_viewer(harness: Harness) -> None:
    srv = harness.server(XTERM)
    _start_and_wait_for_xterm(harness, srv)
    out = harness.home / "typed.txt"
    shot = harness.tmp / "viewer.png"
    script = harness.write_script(
        "type.txt",
        f"""settle
type echo typed into X through WayRay $DISPLAY > {out}
key Return
settle 700
snapshot {shot}
""",
    )
    result = harness.run_client(srv, "--script", str(script))
    assert result.returncode == 0, failure(result)
    eventually(lambda: out.exists() and out.read_text(), "xterm's shell running the typed command")
    words = out.read_text().split()
    assert words[:5] == ["typed", "into", "X", "through", "WayRay"]
    assert words[5].startswith(":"), "the session's program had no DISPLAY"
    session = eventually(lambda: (s := srv.session())["state"] == "detached" and s, "the session detached")
    viewer = png_pixels(shot)
    assert differing_pixels(viewer, srv.screenshot(session["id"])) == 0
    white = np.all(viewer == 255, axis=-1)
    assert white.sum() > 100_000, "no white xterm in the viewer's picture"
    # Hot-desk: the badge (token) at the next kiosk brings the session with its X window as it was.
    again = harness.tmp / "next-kiosk.png"
    moved = harness.write_script("again.txt", f"settle\nsnapshot {again}\n")
    result = harness.run_client(srv, "--script", str(moved))
    assert result.returncode == 0, failure(result)
    assert srv.session()["id"] == session["id"]
    assert differing_pixels(png_pixels(again), viewer) == 0, "the X window changed between the kiosks"


def test_the_viewers_clipboard_reaches_x_programs_and_theirs_the_viewer(harness: Harness) -> None:
    srv = harness.server(XTERM)
    _start_and_wait_for_xterm(harness, srv)
    pasted = harness.home / "pasted.txt"
    script = harness.write_script(
        "clip.txt",
        f"""settle
# an X program copies: the viewer's clipboard gets the text
type printf from-x | xclip -selection clipboard
key Return
expect-clipboard from-x
# the viewer copies: X programs can paste it
copy from the viewer
wait 200
type xclip -o -selection clipboard > {pasted}
key Return
settle
""",
    )
    result = harness.run_client(srv, "--script", str(script))
    assert result.returncode == 0, failure(result)
    eventually(lambda: pasted.exists() and pasted.read_text(), "xclip's output in the session")
    assert pasted.read_text() == "from the viewer"


@pytest.mark.parametrize("x11", [False, True])
def test_policy_x11_off_gives_the_sessions_programs_no_display(tmp_path: Path, x11: bool) -> None:
    """A configured instance (servers.toml, policies.toml with `x11 = false`): its session's program
    finds no DISPLAY and no X socket of its compositor; the same instance with the default has one."""
    h = Harness(tmp_path)
    root, run = h.tmp / "root", h.short / "run"
    port, key = free_udp_port(), h.tmp / "state" / "demo" / "access.key"
    seen = h.tmp / "display.txt"
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "host.toml").write_text(f'[host]\nstate_dir = "{h.tmp / "state"}"\nruntime_dir = "{run}"\n')
    command = ["sh", "-c", f'echo "[$DISPLAY]" > {seen}; exec sleep 600']
    (etc / "servers.toml").write_text(
        f'[server.demo]\nlisten = ["127.0.0.1"]\nport = {port}\nsessions = "command"\n'
        f"session_command = {json.dumps(command)}\n"  # JSON strings are TOML basic strings
        + f'[server.demo.admission]\naccess_key_file = "{key}"\n'
    )
    (etc / "policies.toml").write_text(f"[policy.default]\nx11 = {str(x11).lower()}\n")
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "demo", "--root", str(root)], env=h.env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(h.tmp / "wrsrvd.log").open("wb"),
        start_new_session=True,
    )  # fmt: skip
    try:
        fingerprint = _status(proc, run / "demo" / "admin.sock")["fingerprint"]
        viewer = subprocess.run(
            [script("wrclient"), f"127.0.0.1:{port}", "--fingerprint", fingerprint, "--headless",
             "--token", "x11-policy-token", "--no-reconnect", "--access-key-file", str(key),
             "--script", str(h.write_script("s.txt", "settle\n"))],
            env=h.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert viewer.returncode == 0, failure(viewer)
        eventually(lambda: seen.exists() and seen.read_text().strip(), "the session's program ran")
        display = seen.read_text().strip()
        if x11:
            assert display.startswith("[:") and display.endswith("]"), display
        else:
            assert display == "[]", f"X11 is off by policy but the program saw DISPLAY {display}"
            assert "X display" not in (h.tmp / "wrsrvd.log").read_text(errors="replace")
    finally:
        proc.terminate()
        proc.wait(30)
        kill_sessions(run / "demo" / "link.sock")
        h.cleanup()
