"""A standalone session's processes and output are kept together: programs a session started that
left its process tree (``nohup``, ``setsid``) end with it, whether an operator ends it or its
compositor crashes (review finding L6), and its log has a size cap with one previous file kept
(review finding M5). Each with both keepers: the compiled program and the Python one it falls back
to (``keeper_kind``). Real wrsrvd, real foot and shell, real headless wrclient."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import Harness, WrServer, assert_keeper_is, eventually, failure
from wayray.common.xdg import standalone_state_dir

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]
#: The session log's cap (wayray.session.keeper.LOG_MAX_BYTES), as an operator reads it in the docs.
LOG_CAP = 4 * 1024 * 1024


def sleepers(marks: list[str]) -> dict[str, int]:
    """pid of each ``sleep MARK`` running now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) >= 2 and argv[0].endswith(b"sleep") and argv[1].decode(errors="replace") in marks:
                found[argv[1].decode()] = int(entry.name)
    return found


def escape(harness: Harness, srv: WrServer, token: str) -> dict[str, int]:
    """In the session's terminal, start two programs that leave the session's process tree the ways
    people do: ``nohup … &`` (ignores the terminal's hangup) and ``setsid …`` (a session of its own)."""
    marks = [str(700_000 + secrets.randbelow(99_999)) for _ in range(2)]
    script = harness.write_script(
        f"escape-{token}.txt",
        f"settle\ntype nohup sleep {marks[0]} >/dev/null 2>&1 &\nkey Return\n"
        f"type setsid sleep {marks[1]} >/dev/null 2>&1 &\nkey Return\nsettle 500\n",
    )
    result = harness.run_script(srv, script, token=token)
    assert result.returncode == 0, failure(result)
    return eventually(lambda: s if len(s := sleepers(marks)) == 2 else None, "both programs running")


@pytest.mark.parametrize("how", ["wradm session kill", "compositor crash"])
def test_programs_that_left_the_sessions_process_tree_end_with_the_session(
    harness: Harness, how: str, keeper_kind: str
) -> None:
    srv = harness.server(FOOT)
    escaped = escape(harness, srv, "keeper-token")
    try:
        session = srv.session()
        assert_keeper_is(psutil.Process(session["pid"]).ppid(), keeper_kind)
        if how == "wradm session kill":
            srv.admin("kill", session_id=session["id"])
        else:
            os.kill(session["pid"], signal.SIGKILL)
        eventually(lambda: not sleepers(list(escaped)), f"the escaped programs to end after the {how}", 60)
    finally:
        for pid in sleepers(list(escaped)).values():
            os.kill(pid, signal.SIGKILL)
    eventually(lambda: not srv.sessions(), "the session to be over")
    # Nothing of the session is left (its processes may still be on their way out when the server
    # has already forgotten it: wait for that, within the deadline, rather than look once).
    eventually(lambda: not harness.session_processes(), "the session's processes to be gone")
    # wrsrvd and new sessions are unaffected.
    again = harness.run_client(srv, "--snapshot", str(harness.tmp / "new.png"), token="another-token")
    assert again.returncode == 0, failure(again)


def test_a_session_log_is_capped_and_the_previous_one_kept(harness: Harness, keeper_kind: str) -> None:
    """A session whose programs write without end (here 20 MB at once) cannot fill the server's disk:
    the log is cut at its cap into ``<id>.log.old``; the newest output is in ``<id>.log``."""
    marker = f"END-OF-FLOOD-{secrets.token_hex(4)}"
    flood = f"head -c 20000000 /dev/zero | tr '\\0' x | fold -w 100; echo {marker}; exec foot -W 80x24 sh"
    srv = harness.server(["sh", "-c", flood])
    result = harness.run_client(srv, "--snapshot", str(harness.tmp / "s.png"))
    assert result.returncode == 0, failure(result)
    session = srv.session()
    assert_keeper_is(psutil.Process(session["pid"]).ppid(), keeper_kind)
    log = srv.state / "sessions" / f"{session['id']}.log"

    def current_log() -> str:
        """The current log's text; empty in the instant a cut has renamed it and not yet opened the
        next one (the flood is still being cut while this is asked)."""
        try:
            return log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    eventually(lambda: marker in current_log(), "the marker in the current log")
    assert sorted(p.name for p in log.parent.iterdir()) == sorted([log.name, f"{log.name}.old"])
    assert log.stat().st_size <= LOG_CAP
    assert Path(f"{log}.old").stat().st_size <= LOG_CAP
    # The compositor's own lines go the same way. Its lines from the start may have been cut away by
    # the flood (20 MB is five caps), so a second viewer makes it log now, after the flood.
    again = harness.run_client(srv, "--snapshot", str(harness.tmp / "again.png"))
    assert again.returncode == 0, failure(again)
    eventually(lambda: "wrsrvd-session" in current_log(), "the compositor's lines in the log")
    assert log.stat().st_size <= LOG_CAP
    assert srv.session()["linked"]  # and the session is fine


def test_a_compositor_killed_while_wrsrvd_is_down_is_ended_at_the_restart_and_the_other_relinks(
    harness: Harness, keeper_kind: str
) -> None:
    """The review's fault run, with the keeper between wrsrvd and each compositor: kill -9 wrsrvd,
    kill -9 one session's compositor meanwhile; the restarted wrsrvd ends that session (nothing of it
    is left running) and the other relinks with the same compositor."""
    srv = harness.server(FOOT)
    escaped = escape(harness, srv, "doomed-token")
    try:
        ready = harness.run_client(srv, "--snapshot", str(harness.tmp / "b.png"), token="survivor-token")
        assert ready.returncode == 0, failure(ready)
        doomed, survivor = srv.sessions()  # oldest first: the one with the escaped programs
        assert_keeper_is(psutil.Process(doomed["pid"]).ppid(), keeper_kind)
        srv.signal(signal.SIGKILL)
        srv.wait()
        os.kill(doomed["pid"], signal.SIGKILL)
        eventually(lambda: not sleepers(list(escaped)), "the doomed session's programs to end", 60)
        again = harness.server(FOOT)
        assert f"session {doomed['id']}: its compositor (pid {doomed['pid']}) is gone; ending it" in (
            again.log_text()
        )
        relinked = again.wait_linked()
        assert (relinked["id"], relinked["pid"]) == (survivor["id"], survivor["pid"])
        assert [s["id"] for s in again.sessions()] == [survivor["id"]]
    finally:
        for pid in sleepers(list(escaped)).values():
            os.kill(pid, signal.SIGKILL)


def test_a_server_removes_the_logs_of_sessions_ended_beyond_its_history(harness: Harness) -> None:
    """A server that runs for years does not keep every session's log: at its start (and hourly) the
    log files of sessions that are not live and were not written for `history` (30 days by default)
    are removed, and the log says how many; newer ones stay."""
    state = standalone_state_dir(harness.env)
    logs = state / "sessions"
    logs.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    logs.chmod(0o700)
    now = time.time()
    old = [logs / "0123456789abcdef.log", logs / "0123456789abcdef.log.old"]
    recent = logs / "fedcba9876543210.log"
    for path, age_days in [(old[0], 40), (old[1], 41), (recent, 2)]:
        path.write_text("a session's output\n")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    srv = harness.server(FOOT)
    eventually(lambda: not any(p.exists() for p in old), "the ended session's old logs to be removed")
    assert recent.exists()
    said = "forgot what is older than 30 days: 0 ended sessions' records (and their audit events), 2 session"
    # Said once the files are gone: wait for the line too (r27 read the log in between).
    eventually(lambda: said in srv.log_text(), "the log to say what was forgotten")
