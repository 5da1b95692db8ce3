"""Putting a session in a systemd scope of its own, out of wrsessd's cgroup, with its resource limits.

Under systemd, ``systemctl stop/restart wrsessd`` (a ``wradm apply``, a host.toml change, a package
upgrade) kills whatever is left in ``wrsessd.service``'s cgroup. With pam_systemd in the PAM stack,
``pam_open_session`` moves the session worker into logind's ``session-N.scope``; without it (or when
logind made no session) the worker would stay in wrsessd's cgroup and its session would die with the
daemon. So after ``pam_open_session`` the worker looks at its own cgroup: if logind did not move it
into a scope, it asks systemd for a transient one, ``wayray-session-<id>.scope`` in ``wayray.slice``
(``StartTransientUnit`` with ``PIDs=`` its own pid), before it starts any program, so that every
process of the session is in it. The session's resource limits (``MemoryMax=``, ``CPUQuota=``) are
properties of that scope, or set on logind's scope (``SetUnitProperties``, runtime only).

The D-Bus calls go through systemd's own tools — ``busctl`` for ``StartTransientUnit``, ``systemctl
set-property --runtime`` for ``SetUnitProperties`` — rather than a Python D-Bus binding: they come
with the systemd they talk to (the package depends on ``systemd (>= 252)``), the root worker gains no
dependency, and they work wherever systemd is PID 1, which is the only place this module does
anything. Without systemd (illumos, a container without it, these tests' host) nothing happens.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wayray.common.processes import cgroup_of

log = logging.getLogger("wayray.wrsessd.scope")

#: The slice wrsessd's own scopes go to: every WayRay session not in a logind scope, in one place.
SLICE = "wayray.slice"
#: Time for systemd to start a scope and move the worker into it.
START_TIMEOUT_S = 15.0


class ScopeError(Exception):
    """The session could not be put in a scope of its own (``placed`` False), or it is in one but its
    limits could not be set (``placed`` True)."""

    def __init__(self, message: str, *, placed: bool = False) -> None:
        super().__init__(message)
        self.placed = placed


@dataclass(frozen=True)
class Limits:
    """A session's resource limits; None: unlimited."""

    memory_max: int | None = None  # bytes
    cpu_quota: int | None = None  # percent of one CPU (200: two CPUs' worth)

    def __bool__(self) -> bool:
        return self.memory_max is not None or self.cpu_quota is not None

    def assignments(self) -> list[str]:
        """As ``systemctl set-property`` takes them."""
        out = []
        if self.memory_max is not None:
            out.append(f"MemoryMax={self.memory_max}")
        if self.cpu_quota is not None:
            out.append(f"CPUQuota={self.cpu_quota}%")
        return out

    def bus_properties(self) -> list[tuple[str, str, str]]:
        """As ``StartTransientUnit`` takes them: (name, D-Bus signature, value)."""
        out = []
        if self.memory_max is not None:
            out.append(("MemoryMax", "t", str(self.memory_max)))
        if self.cpu_quota is not None:
            # CPUQuota=N% is CPUQuotaPerSecUSec = N% of a second, in microseconds.
            out.append(("CPUQuotaPerSecUSec", "t", str(self.cpu_quota * 10_000)))
        return out

    def describe(self) -> str:
        return ", ".join(self.assignments()) or "none"


def systemd_booted() -> bool:
    """Whether systemd is the service manager here (sd_booted(3)'s test)."""
    return sys.platform.startswith("linux") and Path("/run/systemd/system").is_dir()


def unit_of(cgroup: str | None) -> str | None:
    """The unit a cgroup path belongs to (its last ``.scope`` or ``.service`` component)."""
    if not cgroup:
        return None
    for part in reversed(cgroup.strip("/").split("/")):
        if part.endswith((".scope", ".service")):
            return part
    return None


def scope_name(session_id: str) -> str:
    return f"wayray-session-{session_id}.scope"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin")
    if found is None:
        raise ScopeError(f"{name} is not installed (it comes with systemd)")
    return found


def _run(argv: list[str], what: str) -> None:
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=START_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ScopeError(f"{what}: systemd did not answer in {START_TIMEOUT_S:g} s") from None
    except OSError as err:
        raise ScopeError(f"{what}: cannot run {argv[0]}: {err.strerror}") from None
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise ScopeError(f"{what}: {detail[-1] if detail else f'exit status {res.returncode}'}")


def set_limits(unit: str, limits: Limits) -> None:
    """Set ``limits`` on a running unit (logind's session scope), until it stops."""
    if limits:
        _run(
            [_tool("systemctl"), "set-property", "--runtime", unit, *limits.assignments()],
            f"cannot set the limits of {unit}",
        )


def start_scope(unit: str, pid: int, description: str, limits: Limits) -> None:
    """Ask systemd for the transient scope ``unit`` holding ``pid``; return once ``pid`` is in it."""
    props: list[tuple[str, str, str]] = [
        ("Description", "s", description),
        ("Slice", "s", SLICE),
        # Gone from systemctl's list once it has ended, also when a process of it failed.
        ("CollectMode", "s", "inactive-or-failed"),
        *limits.bus_properties(),
    ]
    argv = [
        _tool("busctl"), "--system", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail",
        str(len(props) + 1), "PIDs", "au", "1", str(pid),
    ]  # fmt: skip
    for name, signature, value in props:
        argv += [name, signature, value]
    argv.append("0")  # no auxiliary units
    _run(argv, f"cannot start {unit}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while unit_of(cgroup_of(pid)) != unit:
        if time.monotonic() > deadline:
            raise ScopeError(
                f"systemd started {unit}, but pid {pid} is still in {cgroup_of(pid)} after "
                f"{START_TIMEOUT_S:g} s"
            )
        time.sleep(0.02)


def place(
    session_id: str, *, before: str | None, description: str, limits: Limits, pid: int | None = None
) -> str | None:
    """Make sure the process ``pid`` (this one) runs in a scope of its own, with ``limits``.

    ``before``: its cgroup before ``pam_open_session``. Returns the scope's name, or None without
    systemd. Raises :class:`ScopeError` when systemd refused."""
    if not systemd_booted():
        return None
    pid = pid or os.getpid()
    now = cgroup_of(pid)
    unit = unit_of(now)
    if now != before and unit is not None and unit.endswith(".scope"):
        # pam_open_session moved us: logind's session scope (pam_systemd), ours alone.
        try:
            set_limits(unit, limits)
        except ScopeError as err:
            raise ScopeError(str(err), placed=True) from None
        return unit
    unit = scope_name(session_id)
    start_scope(unit, pid, description, limits)
    return unit
