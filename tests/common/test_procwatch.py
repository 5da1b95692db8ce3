"""The one process watcher (wrsrvd's session compositors, wrsessd's workers): real children and an
adopted process that is not ours, through a pidfd and through the fallbacks a platform without one
takes (a waiting thread for a child, polling for an adopted process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from wayray.common import procwatch
from wayray.common.processes import is_zombie, pid_alive
from wayray.common.procwatch import ProcessWatch

WAIT = 60.0  # never reached on a healthy machine: the tests wait for events, not for time


@pytest.fixture(params=["pidfd", "no pidfd"])
def platform(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs as on Linux and as where there is no pidfd (illumos, kernels before 5.3)."""
    if request.param == "no pidfd":

        def no_pidfd(pid: int, flags: int = 0) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
        monkeypatch.setattr(procwatch, "POLL_INTERVAL", 0.05)
    yield request.param


def test_a_child_is_seen_to_exit_with_its_status_and_reaped(platform: str) -> None:
    async def main() -> tuple[int | None, list[int | None], bool]:
        proc = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(0.2); sys.exit(3)"])
        seen: list[int | None] = []
        watch = ProcessWatch(proc.pid, proc, on_exit=seen.append)
        assert watch.running and watch.returncode is None
        await asyncio.wait_for(watch.exited.wait(), WAIT)
        return watch.returncode, seen, watch.running

    returncode, seen, running = asyncio.run(main())
    assert returncode == 3 and seen == [3] and not running


def test_a_child_ended_by_a_signal_reports_128_plus_the_signal(platform: str) -> None:
    async def main() -> tuple[int | None, int]:
        proc = subprocess.Popen(["sleep", "600"])
        watch = ProcessWatch(proc.pid, proc)
        watch.signal(signal.SIGTERM)
        await asyncio.wait_for(watch.exited.wait(), WAIT)
        return watch.returncode, proc.pid

    returncode, pid = asyncio.run(main())
    assert returncode == 128 + signal.SIGTERM
    assert not is_zombie(pid) and not pid_alive(pid)  # reaped, not left a zombie


def test_a_child_that_exited_before_it_was_watched(platform: str) -> None:
    async def main() -> int | None:
        proc = subprocess.Popen(["true"])
        proc.wait()  # reaped already: its pid is gone
        seen: list[int | None] = []
        watch = ProcessWatch(proc.pid, proc, on_exit=seen.append)
        await asyncio.wait_for(watch.exited.wait(), WAIT)
        assert seen == [watch.returncode]
        return watch.returncode

    assert asyncio.run(main()) == 0


def test_an_adopted_process_is_seen_to_exit(platform: str) -> None:
    # A process this one did not start (a daemon restarted finds its sessions' processes): its
    # parent is a shell that waits for it, so only its end can be seen here, not its status.
    parent = subprocess.Popen(["sh", "-c", "sleep 600 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())

    async def main() -> tuple[int | None, list[int | None]]:
        seen: list[int | None] = []
        watch = ProcessWatch(pid, on_exit=seen.append)
        await asyncio.sleep(0)
        assert watch.running
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(watch.exited.wait(), WAIT)
        return watch.returncode, seen

    try:
        assert asyncio.run(main()) == (None, [None])
    finally:
        parent.kill()
        parent.wait()


def test_closing_the_watch_leaves_the_process_running(platform: str) -> None:
    proc = subprocess.Popen(["sleep", "600"])

    async def main() -> bool:
        watch = ProcessWatch(proc.pid, proc)
        watch.close()  # the daemon is exiting; the session lives on
        return watch.running

    try:
        assert asyncio.run(main())
        assert proc.poll() is None and pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_a_signal_is_not_sent_once_the_process_is_seen_gone(platform: str) -> None:
    # Its pid may belong to another process by then.
    async def main() -> None:
        proc = subprocess.Popen(["true"])
        watch = ProcessWatch(proc.pid, proc)
        await asyncio.wait_for(watch.exited.wait(), WAIT)
        other = subprocess.Popen(["sleep", "600"])
        watch.pid = other.pid  # as if the pid had been reused
        watch.signal(signal.SIGKILL)
        assert other.poll() is None
        other.kill()
        other.wait()

    asyncio.run(main())
