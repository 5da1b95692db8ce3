"""Scheduling for what carries sound in real time, as sound servers do it (docs/audio.md §7).

Sound has deadlines that pictures do not: a sink that finds no sample when it needs one plays a gap,
however briefly the process that should have given it was held up. So the threads and processes that
move samples in the session (its ``parec`` and its microphone feed; its PulseAudio asks for itself)
ask for a fixed-priority round-robin class (``SCHED_RR``) at a priority below the sound server's
(PulseAudio takes 5), where the system allows it: root, ``CAP_SYS_NICE``, or an ``RLIMIT_RTPRIO`` the
operator granted (systemd ``LimitRTPRIO=``, limits.d ``rtprio``). Like rtkit and PulseAudio, the
process is first given an ``RLIMIT_RTTIME``: a realtime thread that runs 200 ms without sleeping (a
bug, a loop) is killed instead of taking a core. Where realtime is not allowed, a raised nice value
(PulseAudio's ``high-priority``: -11) if ``RLIMIT_NICE`` allows it; else the thread runs as before,
and the log says once how to grant it. Each of these threads sleeps almost all the time: together they
use about 1 % of a core per stream (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import threading
from pathlib import Path

log = logging.getLogger("wayray.audio")

#: SCHED_RR priority of our sound threads: below the sound server's own (PulseAudio's default is 5),
#: which feeds the hardware, above every ordinary process.
RT_PRIORITY = 4
#: CPU time (µs) a realtime thread may take without blocking before the kernel kills the process
#: (PulseAudio's rlimit-rttime, rtkit's ceiling).
RTTIME_US = 200_000
#: The RLIMIT_RTPRIO to grant: ours (4) and the sound server's (PulseAudio's 5).
GRANT = 5
#: The nice value when realtime is not allowed (PulseAudio's high-priority).
NICE = -11

REALTIME = "realtime"
RAISED = "raised"
NORMAL = "normal"

_told: set[str] = set()
_lock = threading.Lock()


def name_thread(name: str) -> None:
    """The calling thread's name as ps, top -H and /proc show it (Linux; at most 15 characters)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name[:15])


def raise_priority(pid: int = 0, *, what: str) -> str:
    """Give ``pid`` (a process we started; 0: the calling thread) the sound's scheduling: "realtime"
    (SCHED_RR), "raised" (nice -11) or "normal" (not allowed here: said once in the log)."""
    target = pid or threading.get_native_id()
    if _realtime(pid, target):
        return REALTIME
    try:
        if os.getpriority(os.PRIO_PROCESS, target) > NICE:
            os.setpriority(os.PRIO_PROCESS, target, NICE)
        got = RAISED
    except OSError:
        got = NORMAL
    _tell(what, got)
    return got


def _realtime(pid: int, target: int) -> bool:
    if not hasattr(os, "sched_setscheduler"):  # not Linux (illumos: the FX/RT classes, not done yet)
        return False
    try:
        _limit_rttime(pid)
        os.sched_setscheduler(target, os.SCHED_RR | getattr(os, "SCHED_RESET_ON_FORK", 0),
                              os.sched_param(RT_PRIORITY))  # fmt: skip
    except OSError:
        return False
    return True


def _limit_rttime(pid: int) -> None:
    """RLIMIT_RTTIME on ``pid``'s process (0: ours), never raised above what it was."""
    limit = getattr(resource, "RLIMIT_RTTIME", None)
    if limit is None:
        return
    soft, hard = resource.prlimit(pid or os.getpid(), limit)
    infinity = resource.RLIM_INFINITY
    want = RTTIME_US if hard == infinity else min(RTTIME_US, hard)
    if soft == infinity or soft > want or hard == infinity:
        resource.prlimit(pid or os.getpid(), limit, (want, want if hard == infinity else hard))


def _tell(what: str, got: str) -> None:
    with _lock:
        if what in _told:
            return
        _told.add(what)
    how = "a raised nice value (-11)" if got == RAISED else "ordinary priority"
    log.warning(
        "%s runs at %s, not realtime: a busy machine can starve it and the sound breaks up. Allow "
        "realtime scheduling for this user (systemd: LimitRTPRIO=%d in the unit; or rtprio %d in "
        "/etc/security/limits.d/)",
        what, how, GRANT, GRANT,
    )  # fmt: skip


def allowed(priority: int = RT_PRIORITY) -> bool:
    """Whether this process may take SCHED_RR at ``priority`` for itself or its children (root, or an
    RLIMIT_RTPRIO that reaches it): what the session's PulseAudio is asked for only then, since it
    fills the session's log with errors where it is not allowed (it tries rtkit over a system bus)."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    if os.geteuid() == 0:
        return True
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return soft == resource.RLIM_INFINITY or soft >= priority


def nice_allowed(nice: int = NICE) -> bool:
    """Whether this process may lower its nice value to ``nice`` (root, or RLIMIT_NICE)."""
    if os.geteuid() == 0:
        return True
    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return soft == resource.RLIM_INFINITY or 20 - soft <= nice
