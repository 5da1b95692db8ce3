"""A full state disk (review finding L5): wrsrvd says so in one line instead of a traceback, and a
wrsrvd restarted on a full disk still starts, read-only: its sessions come back to their links, an
operator can list and end them, and once there is room again everything works as before.

The state directory is a small tmpfs the test mounts (root), filled to the last byte."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Harness, WrServer, eventually, failure
from wayray.common.xdg import standalone_state_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs"),
]

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="wr-full-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte; returns the filler (remove it to make room)."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
                    break
    return filler


def on_disk(harness: Harness, disk: Path) -> Path:
    """Keep the harness's standalone state (the default state directory, where its viewers find the
    server's access key) on ``disk``; returns that directory."""
    harness.env["XDG_STATE_HOME"] = str(disk)
    return standalone_state_dir(harness.env)


def server(harness: Harness, state: Path) -> WrServer:
    srv = WrServer(harness, FOOT, port=harness.port, extra=[])
    assert srv.state == state, (srv.state, state)
    harness.servers.append(srv)
    return srv


def test_starting_on_a_full_disk_is_refused_in_one_line(harness: Harness, small_disk: Path) -> None:
    state = on_disk(harness, small_disk)
    fill(small_disk)
    srv = server(harness, state)
    done = subprocess.run(srv.argv(), env=harness.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, failure(done)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("wrsrvd: error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr
    assert str(state) in errors[0]
    assert "wrsrvd: hint: " in done.stderr and "free" in done.stderr


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_restarted_on_a_full_disk_it_serves_its_sessions_read_only(
    harness: Harness, small_disk: Path, how: str
) -> None:
    state = on_disk(harness, small_disk)
    srv = server(harness, state).start()
    first = harness.run_client(srv, "--snapshot", str(harness.tmp / "a.png"), token="full-disk-token")
    assert first.returncode == 0, failure(first)
    session = srv.session()
    filler = fill(small_disk)
    srv.signal(signal.SIGKILL if how == "killed" else signal.SIGTERM)
    srv.wait()

    again = server(harness, state).start()  # it starts (before: a traceback, and no wrsrvd)
    assert "Traceback" not in again.log_text()
    assert "read-only" in again.log_text(), again.log_text()[-3000:]
    relinked = again.wait_linked()  # the session is back on its link
    assert (relinked["id"], relinked["pid"]) == (session["id"], session["pid"])
    # New sessions cannot be recorded: refused with a reason, the server carries on.
    refused = harness.run_client(
        again, "--snapshot", str(harness.tmp / "b.png"), "--no-reconnect", token="new-token"
    )
    assert refused.returncode != 0 and "cannot start a session now" in refused.stderr, failure(refused)
    # An operator can end the session.
    again.admin("kill", session_id=session["id"])
    eventually(lambda: not Path(f"/proc/{session['pid']}").exists(), "the session's compositor to end")
    eventually(lambda: not again.sessions(), "the session gone from the list")

    filler.unlink()  # room again: everything works, and the registry is sound
    new = harness.run_client(again, "--snapshot", str(harness.tmp / "c.png"), token="after-token")
    assert new.returncode == 0, failure(new)
    db = sqlite3.connect(f"file:{state / 'registry.sqlite'}?mode=ro", uri=True)
    try:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    [after] = again.sessions()
    # A restart with room finds the session ended while the disk was full ended (its process is gone).
    again.signal(signal.SIGKILL)
    again.wait()
    third = server(harness, state).start()
    assert [s["id"] for s in third.sessions()] == [after["id"]]


def test_an_access_key_made_on_a_full_disk_is_refused_in_one_line_and_leaves_no_empty_key(
    harness: Harness, small_disk: Path
) -> None:
    """A state directory from before access keys (or an access_key_file newly configured): the key is
    made at the next start. On a full disk that is one line, and no empty key file is left behind
    for the start after to trip over once there is room again."""
    state = on_disk(harness, small_disk)
    first = server(harness, state).start()
    first.stop()
    (state / "access.key").unlink()
    filler = fill(small_disk)
    srv = server(harness, state)
    done = subprocess.run(srv.argv(), env=harness.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, failure(done)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("wrsrvd: error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr
    assert "access key" in errors[0] and "wrsrvd: hint: " in done.stderr and "free" in done.stderr
    assert not (state / "access.key").exists()

    filler.unlink()  # room again: it starts, and its viewers get in with the key it made
    again = server(harness, state).start()
    shot = harness.run_client(again, "--snapshot", str(harness.tmp / "a.png"))
    assert shot.returncode == 0, failure(shot)
