"""Sessions outlive their viewers and wrsrvd itself; the same token finds the same windows again."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.e2e.harness import Harness, differing_pixels, eventually, failure, png_pixels

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_viewer_leaves_session_keeps_running_and_the_same_token_resumes_it(harness: Harness) -> None:
    srv = harness.server(FOOT)
    before = harness.tmp / "before.png"
    marker = harness.home / "marker.txt"
    first = harness.write_script(
        "first.txt", f"settle\ntype echo still here > {marker}\nkey Return\nsettle 700\nsnapshot {before}\n"
    )
    result = harness.run_script(srv, first)
    assert result.returncode == 0, failure(result)
    # The viewer has exited, but wrsrvd notices its connection close in its own time.
    session = eventually(lambda: (s := srv.session())["state"] == "detached" and s, "the session detached")
    assert session["viewer"] is None
    assert _alive(session["pid"])
    # The session's programs keep running without a viewer: a command typed before keeps its effect,
    # and a command that was still running goes on.
    assert marker.read_text() == "still here\n"

    after = harness.tmp / "after.png"
    result = harness.run_client(srv, "--snapshot", str(after), "--settle", "700")
    assert result.returncode == 0, failure(result)
    assert srv.session()["id"] == session["id"]
    # Same windows, same content: the picture the new viewer gets is the one the old viewer had.
    assert differing_pixels(png_pixels(before), png_pixels(after)) == 0

    other = harness.run_client(srv, "--snapshot", str(harness.tmp / "other.png"), token="another-token-9")
    assert other.returncode == 0, failure(other)
    assert len(srv.sessions()) == 2  # another token, another session


def test_wrsrvd_killed_and_started_again_the_session_is_attachable(harness: Harness) -> None:
    srv = harness.server(FOOT)
    before = harness.tmp / "before.png"
    script = harness.write_script(
        "first.txt", f"settle\ntype echo before the restart\nkey Return\nsettle 700\nsnapshot {before}\n"
    )
    result = harness.run_script(srv, script)
    assert result.returncode == 0, failure(result)
    session = srv.session()

    srv.signal(signal.SIGKILL)
    srv.wait()
    assert _alive(session["pid"]), "the session died with wrsrvd"
    again = harness.server(FOOT)
    assert again.fingerprint == srv.fingerprint  # the identity is kept in the state directory
    relinked = again.wait_linked()
    assert relinked["id"] == session["id"] and relinked["pid"] == session["pid"]

    after = harness.tmp / "after.png"
    result = harness.run_client(
        again, "--snapshot", str(after), "--settle", "700", "--stats", str(harness.tmp / "s.json")
    )
    assert result.returncode == 0, failure(result)
    assert differing_pixels(png_pixels(before), png_pixels(after)) == 0
    assert "resumed session" in result.stderr


def test_a_connected_viewer_follows_a_server_restart(harness: Harness) -> None:
    srv = harness.server(FOOT)
    stats = harness.tmp / "stats.json"
    viewer = harness.start_client(srv, "--stats", str(stats))
    eventually(lambda: "started session" in viewer.stderr(), "the viewer attached")
    srv.signal(signal.SIGKILL)
    srv.wait()
    harness.server(FOOT)
    # The viewer notices the server is gone (no answer to its pings), reconnects with backoff and
    # presents its token again: the restarted server finds the session in its registry.
    eventually(lambda: "resumed session" in viewer.stderr(), "the viewer back, reconnected")
    viewer.signal(signal.SIGINT)
    assert viewer.wait() == 0, viewer.stderr()
    assert json.loads(stats.read_text())["connects"] >= 2, viewer.stderr()


def test_the_same_token_elsewhere_moves_the_session_and_the_old_viewer_is_told(harness: Harness) -> None:
    srv = harness.server(FOOT)
    old = harness.start_client(srv)
    eventually(lambda: "started session" in old.stderr(), "the first viewer attached")
    first_viewer = srv.session()["viewer"]
    shot = harness.tmp / "new.png"
    result = harness.run_client(srv, "--snapshot", str(shot))
    assert result.returncode == 0, failure(result)
    # The old viewer was told the session moved, and stops (a kiosk would show its idle screen).
    assert old.wait() == 0, old.stderr()
    assert "moved" in old.stdout()
    assert srv.session()["viewer"] != first_viewer


def test_the_session_ends_when_its_command_exits_and_the_viewer_is_told(harness: Harness) -> None:
    srv = harness.server(["sh", "-c", "sleep 3"])
    result = harness.run_client(srv, timeout=120)
    assert result.returncode == 0, failure(result)
    assert "the session ended" in result.stdout
    eventually(lambda: not srv.sessions(), "the session gone from the registry")
    time.sleep(0)  # the registry keeps ended sessions for the audit trail only


def test_a_compositor_crash_ends_that_session_only(harness: Harness) -> None:
    srv = harness.server(FOOT)
    doomed = harness.start_client(srv, token="doomed-token-1")
    eventually(lambda: "started session" in doomed.stderr(), "the first viewer attached")
    survivor = harness.run_client(srv, "--snapshot", str(harness.tmp / "b.png"), token="survivor-token")
    assert survivor.returncode == 0, failure(survivor)
    sessions = {s["token"]: s for s in srv.sessions()}
    assert len(sessions) == 2
    victim = next(s for s in sessions.values() if s["viewer"] is not None)
    os.kill(victim["pid"], signal.SIGKILL)
    # Its viewer is told the session ended (and stops); the other session is untouched.
    assert doomed.wait() == 0, doomed.stderr()
    assert "stopped unexpectedly" in doomed.stdout() or "exited with status" in doomed.stdout()
    remaining = eventually(
        lambda: [s for s in srv.sessions()] if len(srv.sessions()) == 1 else None, "one left"
    )
    assert remaining[0]["id"] != victim["id"]
    again = harness.run_client(srv, "--snapshot", str(harness.tmp / "c.png"), token="survivor-token")
    assert again.returncode == 0 and "resumed session" in again.stderr, failure(again)
