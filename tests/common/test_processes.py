"""Questions about processes by pid (psutil): real processes, a real zombie, a real process tree with
a program that left its parent, a process of another user."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.common.conftest import AS_NOBODY
from wayray.common.processes import (
    alive,
    descendants,
    environment_has,
    is_zombie,
    pid_alive,
    process_name,
    process_uid,
    start_time,
)

NOBODY = 65534


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_running_process_is_alive_and_an_exited_one_is_not(sleeper: subprocess.Popen[bytes]) -> None:
    assert pid_alive(sleeper.pid) and alive(sleeper.pid)
    sleeper.kill()
    wait_until(lambda: state(sleeper.pid) == "Z", "the killed process to become a zombie")
    # Exited but not yet reaped: gone for every purpose of ours.
    assert is_zombie(sleeper.pid)
    assert not pid_alive(sleeper.pid) and not alive(sleeper.pid)
    sleeper.wait()
    assert not pid_alive(sleeper.pid) and not is_zombie(sleeper.pid)


def test_no_pid_is_not_alive() -> None:
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-1)


def test_another_users_process_is_alive() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: starts a process as nobody")
    proc = subprocess.Popen(["sleep", "600"], user=NOBODY)
    try:
        assert pid_alive(proc.pid)
        assert process_uid(proc.pid) == NOBODY
    finally:
        proc.kill()
        proc.wait()


def test_the_start_time_tells_a_process_from_a_later_one_with_the_same_pid(
    sleeper: subprocess.Popen[bytes],
) -> None:
    started = start_time(sleeper.pid)
    assert started is not None and started == start_time(sleeper.pid)
    assert alive(sleeper.pid, started)
    assert not alive(sleeper.pid, started - 1)  # another process that had this pid before
    assert start_time(os.getpid()) != started
    sleeper.kill()
    sleeper.wait()
    assert start_time(sleeper.pid) is None and not alive(sleeper.pid, started)


#: A process tree like a session's: the root starts a shell that starts two programs, one of which
#: double-forks ("daemonizes") and so leaves the tree; plus a child that exits unreaped (a zombie).
TREE = r"""
import os, subprocess, sys, time
sh = subprocess.Popen(["sh", "-c", "sleep 600 & sleep 600 & wait"])
zombie = subprocess.Popen(["true"])
middle = os.fork()
if middle == 0:                         # daemonize: fork, and the middle one exits at once
    if os.fork() == 0:
        os.setsid()
        os.write(1, f"daemon {os.getpid()}\n".encode())  # one write: the two lines never mix
        time.sleep(600)
    os._exit(0)
os.waitpid(middle, 0)
os.write(1, f"root {os.getpid()} sh {sh.pid} zombie {zombie.pid}\n".encode())
time.sleep(600)
"""


def test_descendants_are_the_whole_tree_below_a_process_zombies_included() -> None:
    root = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    assert root.stdout is not None
    said: dict[str, int] = {}
    for _ in range(2):  # in either order
        words = root.stdout.readline().split()
        said.update(zip(words[::2], map(int, words[1::2]), strict=True))
    daemon, sh, zombie = said["daemon"], said["sh"], said["zombie"]
    try:
        wait_until(lambda: len(descendants(sh)) == 2, "the shell's two programs")
        wait_until(lambda: state(zombie) == "Z", "the unreaped child to be a zombie")
        below = descendants(root.pid)
        assert below == {sh, zombie, *descendants(sh)}
        assert daemon not in below  # it left the tree (no subreaper here)
        assert root.pid not in below and os.getpid() not in below
    finally:
        for pid in [*descendants(root.pid), daemon]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        root.kill()
        root.wait()
    assert descendants(root.pid) == set()  # gone: nothing below it


def test_name_and_environment_of_a_process(sleeper: subprocess.Popen[bytes]) -> None:
    wait_until(lambda: process_name(sleeper.pid) == "sleep", "the name after exec")
    proc = subprocess.Popen(["sleep", "600"], env={"WAYRAY_LINK_SESSION": "s-42", "PATH": "/usr/bin:/bin"})
    try:
        # Popen returns once the exec began; the new environment shows a moment later.
        wait_until(
            lambda: environment_has(proc.pid, "WAYRAY_LINK_SESSION", "s-42") is True, "the environment"
        )
        assert environment_has(proc.pid, "WAYRAY_LINK_SESSION", "s-4") is False
        assert environment_has(sleeper.pid, "WAYRAY_LINK_SESSION", "s-42") is False
    finally:
        proc.kill()
        proc.wait()
    assert environment_has(proc.pid, "WAYRAY_LINK_SESSION", "s-42") is False  # gone
    assert process_name(proc.pid) == "?" and process_uid(proc.pid) is None


def test_another_users_environment_is_not_theirs_to_read(nobody_can_run_wayray: None) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: asks as nobody")
    code = (
        "import sys\nfrom wayray.common.processes import environment_has\n"
        "print(environment_has(int(sys.argv[1]), 'WAYRAY_LINK_SESSION', 's-42'))"
    )
    proc = subprocess.Popen(["sleep", "600"], env={"WAYRAY_LINK_SESSION": "s-42"})
    try:
        wait_until(
            lambda: environment_has(proc.pid, "WAYRAY_LINK_SESSION", "s-42") is True, "root reading it"
        )
        # nobody may not: /proc/PID/environ is its owner's and root's only.
        done = subprocess.run(
            [sys.executable, "-c", code, str(proc.pid)],
            capture_output=True,
            text=True,
            **AS_NOBODY,
            timeout=60,
        )
        assert done.stdout.strip() == "False", done.stderr
    finally:
        proc.kill()
        proc.wait()


def test_a_process_proc_hides_is_alive_while_the_kernel_has_it() -> None:
    # wrsrvd runs with ProtectProc=invisible (a /proc mounted hidepid=invisible): the compositors of
    # login sessions run as their users, so /proc shows wrsrvd nothing of them. A restarted wrsrvd
    # must still find them alive (the appliance tier's restart test), and one that is gone, gone.
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a /proc of its own")
    code = (
        "import sys\nfrom wayray.common.processes import pid_alive\n"
        "print(pid_alive(int(sys.argv[1])), pid_alive(int(sys.argv[2])))"
    )
    gone = subprocess.Popen(["true"])
    gone.wait()
    with subprocess.Popen(["sleep", "600"]) as proc:
        try:
            done = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount -t proc -o hidepid=invisible proc /proc && exec setpriv --reuid 65534 --regid 65534 '
                 '--clear-groups "$@"', "sh", sys.executable, "-c", code, str(proc.pid), str(gone.pid)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.stdout.split() == ["True", "False"], done.stderr
        finally:
            proc.kill()
