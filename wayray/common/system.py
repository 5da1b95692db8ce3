"""What the machine is doing: whether it is shutting down, when it booted.

A session that ends because the machine shuts down or restarts is recorded as ended by the shutdown,
not as a crash or a user quitting: these tell the two apart."""

from __future__ import annotations

import functools
import logging
import signal
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

#: Once the machine is seen shutting down, it stays so (it does not come back from it without a boot).
_stopping = False


def system_stopping() -> bool:
    """Whether the machine is shutting down or restarting: systemd's state is ``stopping``. False
    where systemd is not the init system (illumos, containers without it, a developer's machine
    without systemd) or when it cannot be asked within 3 s."""
    global _stopping
    if _stopping:
        return True
    if not Path("/run/systemd/system").is_dir():
        return False
    try:
        # SIGTERM ignored: a shutdown stops wrsrvd's unit at the same time as the sessions, and
        # systemd signals every process of the unit, this question included. Ignored from before the
        # exec (a shell's trap came too late when the signal came at once); until then the child has
        # the parent's handler, which only notes the signal.
        done = subprocess.run(
            ["systemctl", "is-system-running"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=3.0,
            check=False,
            preexec_fn=_ignore_sigterm,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("cannot ask systemd whether the system is stopping: %s", err)
        return False
    state = done.stdout.strip()
    if not state:
        why = done.stderr.strip()[:200] or f"systemctl exited with status {done.returncode} and said nothing"
        log.warning("cannot ask systemd whether the system is stopping: %s", why)
    _stopping = state == "stopping"
    return _stopping


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@functools.cache
def boot_time() -> float | None:
    """When this machine, or this container, booted (seconds since the epoch): when its systemd
    started, which systemd says over D-Bus to anyone (the kernel's boot time and boot id are the
    host's in a container, and in a sandboxed service even under systemd-nspawn). None without
    systemd, or when it cannot be asked."""
    if not Path("/run/systemd/system").is_dir():
        return None
    argv = ["busctl", "get-property", "org.freedesktop.systemd1", "/org/freedesktop/systemd1"]
    try:
        done = subprocess.run(
            [*argv, "org.freedesktop.systemd1.Manager", "UserspaceTimestamp"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=3.0,
            check=False,
        )
        kind, value = done.stdout.split()  # "t 1765011234567890": microseconds
        if kind != "t" or int(value) <= 0:
            raise ValueError(done.stdout.strip() or done.stderr.strip()[:200])
    except (OSError, subprocess.TimeoutExpired, ValueError) as err:
        log.warning("cannot ask systemd when the system booted: %s", err)
        return None
    return int(value) / 1e6
