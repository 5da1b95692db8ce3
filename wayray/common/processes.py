"""Questions about other processes by pid: alive, a zombie, which one it is, its descendants, its uid.

psutil answers them: it reads ``/proc`` on Linux and the process table (``/proc/PID/psinfo``) on
illumos and the BSDs, so the same code finds a session's processes on every platform WayRay runs on.
The one thing read by hand is the start time on Linux (see :func:`start_time`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid runs: it exists and is not a zombie (exited, waiting for its
    parent to collect its status). A process of another user counts as alive.

    The kernel says whether it exists (signal 0), not ``/proc``: a service with ``ProtectProc=
    invisible`` (wrsrvd) sees nothing there of other users' processes, which are alive all the same.
    Whether it is a zombie is then asked where ``/proc`` shows it."""
    if not pid or pid < 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: it exists
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.ZombieProcess:
        return False
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return True  # hidden from this process (or gone this instant: the next look tells)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (False when there is no such process)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.ZombieProcess:
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def start_time(pid: int) -> int | None:
    """When the process started, as a number that, with the pid, identifies it (a later process that
    gets the same pid has another); None when there is no such process.

    On Linux it is the start in clock ticks since boot (``/proc/PID/stat``, field 22), read here
    rather than through psutil: psutil's ``create_time()`` adds the boot time by the wall clock, which
    moves when the clock is set (NTP at boot), and wrsessd compares the number it stored in a session
    record with a fresh one after a restart. Elsewhere it is psutil's start time in hundredths of a
    second (fixed when the process starts)."""
    if sys.platform.startswith("linux"):
        try:
            raw = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
        except OSError:
            return None
        # The command name is in parentheses and may itself contain spaces or parentheses; after it
        # come field 3 (state) onwards, so field 22 (starttime) is the 20th.
        fields = raw[raw.rfind(")") + 2 :].split()
        return int(fields[19]) if len(fields) >= 20 else None
    try:
        return round(psutil.Process(pid).create_time() * 100)
    except psutil.Error:
        return None


def alive(pid: int, started: int | None = None) -> bool:
    """True when ``pid`` runs (and, given ``started`` from :func:`start_time`, is still that process)."""
    if started is not None:
        return start_time(pid) == started and not is_zombie(pid)
    return pid_alive(pid)


def descendants(root: int) -> set[int]:
    """Every process below ``root`` in the process tree (not ``root`` itself), zombies included;
    empty when ``root`` is gone. A program that left the tree (it daemonized and was re-parented to
    init) is not found: where the platform has one, the root makes itself a subreaper to keep them."""
    try:
        return {child.pid for child in psutil.Process(root).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def process_uid(pid: int) -> int | None:
    """The real uid ``pid`` runs as (every user may ask), None when there is no such process."""
    try:
        return int(psutil.Process(pid).uids().real)
    except psutil.Error:
        return None


def process_name(pid: int) -> str:
    """The short name ps shows for ``pid`` ("?" when there is no such process)."""
    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return "?"


def environment_has(pid: int, name: str, value: str) -> bool | None:
    """Whether the environment ``pid`` started with sets ``name`` to ``value``; None where this
    platform cannot tell (psutil reads it on Linux, illumos and the BSDs). A process this user may
    not inspect, or that is gone, is False."""
    try:
        env = psutil.Process(pid).environ()
    except (NotImplementedError, AttributeError):
        return None
    except psutil.Error:
        return False
    return env.get(name) == value


def cgroup_of(pid: int | str = "self") -> str | None:
    """The cgroup systemd tracks ``pid`` by: the unified hierarchy's path (``0::``), or on a legacy or
    hybrid host without controllers there, ``name=systemd``'s. None when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    unified = named = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            unified = path
        elif controllers == "name=systemd":
            named = path
    if named and (unified in (None, "/") or unified == named):
        return named
    return unified or named
