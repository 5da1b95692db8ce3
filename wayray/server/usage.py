"""What a session costs its server, for ``wradm sessions``: CPU time and memory.

A session in a cgroup of its own (login mode: logind's ``session-N.scope`` or wrsessd's
``wayray-session-<id>.scope``) is measured by its cgroup, which counts every process it ever had:
``cpu.stat``'s ``usage_usec`` and ``memory.current`` (on a hybrid host, the unified hierarchy's
``cpu.stat`` and the v1 memory controller's ``memory.usage_in_bytes``). A session that shares wrsrvd's cgroup
(``sessions = "command"``, standalone) is measured by its processes: its keeper (the compositor's
parent, a subreaper that every program of the session stays below) and everything below it, CPU
time of the live ones and of the children they reaped, and memory as the sum of their proportional
set sizes (PSS: a page shared by n processes counts 1/n to each, so sessions forked from the same
parent are not each charged the parent's pages). Reading every process's smaps costs a little, so
wrsrvd does it only when asked, off its event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from wayray.common.processes import cgroup_of

#: The unified cgroup hierarchy's mount point.
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_s: float
    #: None where the memory controller does not count it (a legacy hierarchy without it).
    memory_bytes: int | None
    #: "cgroup" (its own cgroup's counters) or "processes" (its process tree, as this moment has it).
    measured_by: str


def session_usage(pid: int | None, unit: str | None = None, uid: int | None = None) -> Usage | None:
    """What the session whose compositor is ``pid`` has used (None: no such process, or nothing
    readable). ``unit``: the systemd scope wrsessd put it in (with the session's ``uid``), found in the
    cgroup tree by name: wrsrvd's ``ProtectProc=invisible`` hides other users' processes, and with
    them where their cgroup is."""
    if unit:
        for path in _unit_paths(unit, uid):
            by_unit = _cgroup_usage(path)
            if by_unit is not None:
                return by_unit
    if pid is None or pid <= 1:
        return None
    group = cgroup_of(pid)
    if group and group != cgroup_of("self"):
        by_group = _cgroup_usage(group)
        if by_group is not None:
            return by_group
    return _tree_usage(pid)


def _unit_paths(unit: str, uid: int | None) -> list[str]:
    """Where a session's scope may be: wrsessd's in wayray.slice, logind's in the user's slice."""
    if "/" in unit or unit.startswith("."):
        return []
    paths = [f"wayray.slice/{unit}"]
    if uid is not None:
        paths.append(f"user.slice/user-{uid}.slice/{unit}")
    return paths


def _cgroup_usage(group: str) -> Usage | None:
    """A cgroup's counters: on the unified hierarchy (cgroup v2) ``cpu.stat`` and ``memory.current``;
    on a hybrid or legacy host, ``cpu.stat`` of the unified one (it is always there) or
    ``cpuacct.usage``, and the memory controller's ``memory.usage_in_bytes``. None when no CPU
    figure can be read (no such cgroup)."""
    group = group.strip("/")
    cpu = _read_cpu_stat(CGROUP_ROOT / group) or _read_cpu_stat(CGROUP_ROOT / "unified" / group)
    if cpu is None:
        ns = _read_int(CGROUP_ROOT / "cpuacct" / group / "cpuacct.usage")
        cpu = None if ns is None else ns / 1e9
    if cpu is None:
        return None
    memory = _read_int(CGROUP_ROOT / group / "memory.current")
    if memory is None:
        memory = _read_int(CGROUP_ROOT / "memory" / group / "memory.usage_in_bytes")
    return Usage(cpu, memory, "cgroup")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _read_cpu_stat(path: Path) -> float | None:
    try:
        lines = (path / "cpu.stat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1e6
    return None


def _tree_usage(pid: int) -> Usage | None:
    try:
        compositor = psutil.Process(pid)
        parent = compositor.parent()
    except psutil.Error:
        return None
    # The keeper, when there is one: the compositor's parent, unless that is wrsrvd itself or init.
    root = parent if parent is not None and parent.pid not in (1, os.getpid()) else compositor
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        processes = [compositor]
    cpu, memory = 0.0, 0
    for proc in processes:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                memory += proc.memory_full_info().pss
        except psutil.Error:
            continue  # gone meanwhile, or not ours to read
    return Usage(cpu, memory, "processes")
