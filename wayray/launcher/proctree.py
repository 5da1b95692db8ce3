"""Finding and ending every process of a session.

A session's processes are all descendants of its session worker. The worker makes itself a *child
subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so a program that double-forks to daemonize is
re-parented to the worker instead of to init and stays in the tree. Ending a session is then: signal
every descendant, wait, SIGKILL the stragglers, until none is left. Walking the tree reads /proc.

illumos has neither /proc/<pid>/stat nor subreapers; there the equivalent is a process contract per
session (``ct_tmpl_activate`` before fork, then ``sigsend`` to the contract), not implemented yet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NAME = 15
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8


def _prctl(option: int, arg: int | bytes) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
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
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    detached = 0
    for point in sorted(set(points), key=len, reverse=True):
        if libc.umount2(point, _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:
            detached += 1
    return detached


def set_process_name(name: str) -> None:
    """Set the short name ps and top show (15 bytes at most on Linux)."""
    _prctl(_PR_SET_NAME, name.encode()[:15])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest  # rest[0] is field 3 (state), rest[1] field 4 (ppid), rest[19] field 22 (starttime)


def parent_map() -> dict[int, int]:
    """pid → ppid for every process visible in /proc."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and len(fields) > 1:
            out[int(entry.name)] = int(fields[1])
    return out


def descendants(root: int) -> set[int]:
    """Every live descendant of ``root`` (not ``root`` itself); zombies included."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it identifies a process."""
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20:
        return None
    return int(fields[19])


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] == "Z"  # type: ignore[index]


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


def alive(pid: int, started: int | None = None) -> bool:
    """True when ``pid`` runs (and, given ``started``, is still the same process)."""
    if started is not None:
        return start_time(pid) == started and not is_zombie(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)
