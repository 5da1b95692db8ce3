"""Starting session compositor processes (standalone mode; the launcher issue adds wrsessd's way).

Each session is ``wrsrvd session … -- COMMAND`` in a process session of its own (``setsid``), so a
Ctrl-C at wrsrvd's terminal, or wrsrvd's death, does not reach it: sessions outlive the front door and
register again with the next one. Its link details travel in the environment; the per-session secret
in an inherited pipe (argv is readable by every local user, the environment stays in /proc). Under
the journal the session logs there; otherwise into ``<state>/sessions/<id>.log``.

The process is watched through a pidfd where the platform has one (else a thread waiting for it), not
through asyncio's subprocess machinery, which kills children still running when its loop closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wayray.common.log import under_journal
from wayray.common.notify import child_environment
from wayray.common.secretfd import secret_pipe

log = logging.getLogger("wayray.server")

#: Ending a session's processes: SIGKILL this long after SIGTERM (and SIGCONT).
KILL_GRACE = 5.0


@dataclass(frozen=True)
class SessionSpec:
    session_id: str
    secret: str
    link: Path
    runtime_dir: Path
    command: tuple[str, ...]
    size: tuple[int, int]
    scale: int
    fps: int
    idle_fps: int
    video: bool
    orphan_timeout: float | None
    log_dir: Path | None
    #: The compositor never makes its output larger than this (output.max_pixels).
    max_pixels: int | None = None


def session_argv(spec: SessionSpec, log_file: Path | None = None) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "wayray.server",
        "session",
        "--size",
        f"{spec.size[0]}x{spec.size[1]}",
        "--scale",
        str(spec.scale),
        "--refresh",
        str(spec.fps),
        "--idle-fps",
        str(spec.idle_fps),
        "--orphan-timeout",
        str(spec.orphan_timeout or 0),
    ]
    if not spec.video:
        argv.append("--no-video")
    if spec.max_pixels is not None:
        argv += ["--max-pixels", str(spec.max_pixels)]
    # The session keeper (wayray.session.keeper): the programs that leave the session's process group
    # (nohup, setsid) end with it all the same, and its log has a cap.
    argv.append("--subreaper")
    if log_file is not None:
        argv += ["--log", str(log_file)]
    return [*argv, "--", *spec.command]


def session_environment(spec: SessionSpec, secret_fd: int) -> dict[str, str]:
    """The session process's environment: the link's details, and the number of the inherited pipe
    the secret waits in (never the secret itself: ``/proc/PID/environ`` shows an environment for the
    process's whole life)."""
    env = child_environment()
    env.pop("WAYRAY_LINK_SECRET", None)
    env.update(
        WAYRAY_LINK=str(spec.link),
        WAYRAY_LINK_SESSION=spec.session_id,
        WAYRAY_LINK_SECRET_FD=str(secret_fd),
        WAYRAY_LINK_SERVER_UID=str(os.geteuid()),
        XDG_RUNTIME_DIR=str(spec.runtime_dir),
    )
    for name in ("WAYLAND_DISPLAY", "WAYLAND_SOCKET", "DISPLAY", "WAYRAY_WAYLAND_DISPLAY"):
        env.pop(name, None)  # the session is its own display
    return env


class SessionProcess:
    """A started session compositor: its pid, and a callback once it has exited (status as a shell
    reports it: the exit code, or 128+N for signal N)."""

    def __init__(self, proc: subprocess.Popen[bytes], on_exit: Callable[[int], None]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.returncode: int | None = None
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self.exited = asyncio.Event()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_thread, name=f"wait-{proc.pid}", daemon=True).start()
        else:
            self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._done(self.proc.wait())

    def _wait_thread(self) -> None:
        rc = self.proc.wait()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is interested any more
            self._loop.call_soon_threadsafe(self._done, rc)

    def _done(self, rc: int) -> None:
        if self.returncode is not None:
            return
        self.returncode = rc if rc >= 0 else 128 - rc
        self.exited.set()
        self._on_exit(self.returncode)

    def signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def detach(self) -> None:
        """Stop watching (wrsrvd is exiting; the session lives on)."""
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def start_session(spec: SessionSpec, on_exit: Callable[[int], None]) -> SessionProcess:
    """Start the session process; raises OSError when it cannot be started at all."""
    out: int | None = None
    log_file: Path | None = None
    if spec.log_dir is not None and not under_journal():
        spec.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_file = spec.log_dir / f"{spec.session_id}.log"
        # What the session process says before its keeper takes the log over goes here too.
        out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    secret_fd = secret_pipe(spec.secret)
    try:
        proc = subprocess.Popen(
            session_argv(spec, log_file),
            env=session_environment(spec, secret_fd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=_home(),
            pass_fds=(secret_fd,),
        )
    finally:
        os.close(secret_fd)
        if out is not None:
            os.close(out)
    log.info("started session %s (pid %d): %s", spec.session_id, proc.pid, " ".join(spec.command))
    return SessionProcess(proc, on_exit)


def _home() -> str:
    home = os.environ.get("HOME")
    return home if home and os.path.isdir(home) else "/"


async def make_sure_it_ends(
    process: SessionProcess | None,
    pid: int,
    session_id: str,
    *,
    who: str,
    first_wait: float = 0.0,
    grace: float = KILL_GRACE,
) -> None:
    """End a session's process group (its compositor and the programs in it) for sure: after
    ``first_wait`` (the time it has to exit by itself, having been told to end on its link), SIGTERM
    and SIGCONT at once (a stopped process cannot act on SIGTERM), SIGKILL after ``grace``.

    ``process`` when wrsrvd started it (its exit is watched); else the ``pid`` a restarted wrsrvd found
    in its registry, which is signalled only while it still is the compositor of ``session_id``."""

    def gone() -> bool:
        if process is not None:
            return process.returncode is not None
        return not pid_alive(pid) or not is_session_process(pid, session_id)

    async def wait_gone(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while not gone() and time.monotonic() < end:
            if process is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.exited.wait(), max(0.0, end - time.monotonic()))
            else:
                await asyncio.sleep(0.1)
        return gone()

    if await wait_gone(first_wait):
        return
    log.info("%s: stopping its processes (SIGTERM, SIGCONT)", who)
    signal_group(pid, signal.SIGTERM)
    signal_group(pid, signal.SIGCONT)
    if await wait_gone(grace):
        return
    log.warning("%s did not stop within %g s; killing it (SIGKILL)", who, grace)
    signal_group(pid, signal.SIGKILL)


def signal_group(pid: int, sig: int) -> None:
    """``sig`` to the process group a session's process leads (wrsrvd starts each in a process session
    of its own, with its programs), else to that process alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def is_session_process(pid: int, session_id: str) -> bool:
    """Whether ``pid`` still is the compositor of ``session_id`` (not a process that got its pid since),
    where /proc tells: its environment names the session."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self/environ").exists()  # no such /proc here: trust the pid
    except OSError:
        return False
    return f"WAYRAY_LINK_SESSION={session_id}".encode() in environ.split(b"\0")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (a restarted wrsrvd asking about a session it did not
    start itself)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path(f"/proc/{pid}/status").exists() or _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return "Z" not in line.split()[1]
    except OSError:
        return False
    return True
