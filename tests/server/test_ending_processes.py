"""Ending a session's processes for sure (standalone wrsrvd): real process groups, stopped with
SIGSTOP, one that ignores SIGTERM, and a pid that is no longer the session's."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from wayray.server.spawn import SessionProcess, is_session_process, make_sure_it_ends

#: A session process and a child in its process group, like a compositor and its command.
GROUP = "import os, signal, subprocess, sys, time\n" + (
    "if sys.argv[1] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _start(kind: str, session_id: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", GROUP, kind],
        env={**os.environ, "WAYRAY_LINK_SESSION": session_id},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    return proc, child


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def _stop(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped: the signal takes effect when the process next runs,
    so right after kill() it may still show as running."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"pid {pid} did not stop"
        time.sleep(0.01)


def _end(proc: subprocess.Popen[str], **kw: float) -> int:
    async def main() -> int:
        exits: list[int] = []
        watched = SessionProcess(proc, exits.append)  # type: ignore[arg-type]
        await make_sure_it_ends(watched, proc.pid, "s1", who="session s1", **kw)
        return proc.wait(10)

    return asyncio.run(main())


def _reap(*procs: subprocess.Popen[str]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def test_a_stopped_session_and_its_programs_end_with_sigterm_and_sigcont() -> None:
    proc, child = _start("plain", "s1")
    try:
        os.killpg(proc.pid, signal.SIGSTOP)
        status = _end(proc, first_wait=0.0, grace=30.0)
        assert status == -signal.SIGTERM  # ended by SIGTERM, well before the grace ran out
        deadline = time.monotonic() + 30
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "the program in the session's process group is still there"
    finally:
        _reap(proc)


def test_one_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    proc, child = _start("stubborn", "s1")
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        assert _end(proc, first_wait=0.0, grace=0.5) == -signal.SIGKILL
    finally:
        _reap(proc)
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_pid_that_is_not_the_sessions_compositor_is_left_alone() -> None:
    proc, _child = _start("plain", "another-session")
    try:
        assert is_session_process(proc.pid, "another-session")
        assert not is_session_process(proc.pid, "s1")

        _stop(proc.pid)  # a stopped process keeps what it is sent pending: visible

        async def main() -> None:
            await make_sure_it_ends(None, proc.pid, "s1", who="session s1", first_wait=0.0, grace=0.2)

        asyncio.run(main())
        status = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        )
        assert status["State"].startswith("T")  # no SIGCONT
        assert int(status["ShdPnd"], 16) == 0 and int(status["SigPnd"], 16) == 0  # no SIGTERM either
    finally:
        _reap(proc)
