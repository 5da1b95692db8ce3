"""Finding and ending every process of a session.

A session's processes are all descendants of its session worker. The worker makes itself a *child
subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so a program that double-forks to daemonize is
re-parented to the worker instead of to init and stays in the tree. Ending a session is then: signal
every descendant, wait, SIGKILL the stragglers, until none is left. Walking the tree, and telling
whether a process runs, is ``wayray.common.processes`` (psutil), re-exported here.

On illumos psutil walks the tree as well, so a session's processes are found and ended there too,
except a program that daemonizes: illumos has no subreaper, so it is re-parented to init and leaves
the tree. The way to keep those is a process contract per session (``ct_tmpl_activate`` before fork,
then ``sigsend`` to the contract), not implemented yet.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

from wayray.common.libc import libc as c_library
from wayray.common.processes import alive, descendants, is_zombie, start_time

__all__ = [
    "alive",
    "become_subreaper",
    "descendants",
    "detach_mounts_below",
    "is_zombie",
    "reap_children",
    "set_process_name",
    "signal_all",
    "start_time",
]

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NAME = 15
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8


def _prctl(option: int, arg: int | bytes) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = c_library()
    return int(libc.prctl(option, arg, 0, 0, 0)) == 0


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process. False where unsupported."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def detach_mounts_below(root: Path) -> int:
    """Lazily unmount (``MNT_DETACH``) every mount at or below ``root``, deepest first, without
    talking to their file systems (a FUSE server that never answers cannot hold this up). Linux only;
    returns how many were detached."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return 0
    top = os.fsencode(root)
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        # Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
        point = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), os.fsencode(fields[4]))
        if point == top or point.startswith(top + b"/"):
            points.append(point)
    libc = c_library()
    detached = 0
    for point in sorted(set(points), key=len, reverse=True):
        if libc.umount2(point, _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:
            detached += 1
    return detached


def set_process_name(name: str) -> None:
    """Set the short name ps and top show (15 bytes at most on Linux)."""
    _prctl(_PR_SET_NAME, name.encode()[:15])


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as err:  # pragma: no cover - EPERM cannot happen as root
            if err.errno != errno.ESRCH:
                raise


def reap_children() -> list[tuple[int, int]]:
    """Collect every exited child without blocking: [(pid, wait status)]."""
    out = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        out.append((pid, status))
    return out
