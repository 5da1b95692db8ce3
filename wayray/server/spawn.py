"""Starting session compositor processes (standalone mode; the launcher issue adds wrsessd's way).

Each session is ``wrsrvd session … -- COMMAND`` in a process session of its own (``setsid``), so a
Ctrl-C at wrsrvd's terminal, or wrsrvd's death, does not reach it: sessions outlive the front door and
register again with the next one. Its link details travel in the environment; the per-session secret
in an inherited pipe (argv is readable by every local user, the environment stays in /proc). Under
the journal the session logs there; otherwise into ``<state>/sessions/<id>.log``.

The process is watched by ``wayray.common.procwatch`` (a pidfd where the platform has one), not
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wayray.common.log import under_journal
from wayray.common.notify import child_environment
from wayray.common.processes import environment_has, pid_alive
from wayray.common.procwatch import ProcessWatch
from wayray.common.secretfd import secret_pipe
from wayray.server import sessionparent
from wayray.server.sessionparent import MaybeForked, NotForked, SessionParent

log = logging.getLogger("wayray.server")

#: Ending a session's processes: SIGKILL this long after SIGTERM (and SIGCONT).
KILL_GRACE = 5.0
#: How long the exit of a session forked by the session parent waits for the parent to say its status.
STATUS_WAIT = 1.0


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
    #: policy.audio and policy.audio_bitrate when the session starts ("off": no sound server).
    audio: str = "off"
    audio_bitrate: int = 96
    #: An X display served by Xwayland (policy.x11).
    x11: bool = True
    #: encoder.bitrate, encoder.zstd_level, encoder.adaptive, encoder.video_scaling.
    video_bitrate: int = 8_000_000
    zstd_level: int = 5
    adaptive: bool = True
    video_scaling: str = "auto"


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
    if not spec.x11:
        argv.append("--no-x11")
    if spec.max_pixels is not None:
        argv += ["--max-pixels", str(spec.max_pixels)]
    argv += ["--audio", spec.audio, "--audio-bitrate", str(spec.audio_bitrate)]
    argv += ["--bitrate", str(spec.video_bitrate), "--zstd-level", str(spec.zstd_level)]
    if not spec.adaptive:
        argv.append("--no-adapt")
    argv += ["--video-scaling", spec.video_scaling]
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


class SessionProcess(ProcessWatch):
    """A started session compositor: its pid, and a callback once it has exited (status as a shell
    reports it: the exit code, or 128+N for signal N; None for one forked by the session parent,
    whose status only the parent learns)."""

    def __init__(
        self, proc: subprocess.Popen[bytes] | None, on_exit: Callable[[int | None], None], pid: int = 0
    ) -> None:
        super().__init__(proc.pid if proc is not None else pid, proc, on_exit=on_exit)
        self.proc = proc

    def _exited(self) -> None:
        if self.proc is not None:
            super()._exited()
            return
        # Forked by the session parent: it reaps the process and says its status a moment later.
        self._close_pidfd()
        asyncio.get_running_loop().create_task(self._status_from_parent(), name=f"status-{self.pid}")

    async def _status_from_parent(self) -> None:
        end = time.monotonic() + STATUS_WAIT
        status = None
        while time.monotonic() < end:
            parent = session_parent
            status = parent.status_of(self.pid) if parent is not None else None
            if status is not None or parent is None or parent.sock is None:
                break
            await asyncio.sleep(0.02)
        self._done(status)

    def detach(self) -> None:
        """Stop watching (wrsrvd is exiting; the session lives on)."""
        self.close()


#: The session parent (wayray.server.sessionparent), when wrsrvd runs one.
session_parent: SessionParent | None = None


def start_session_parent() -> None:
    """Start the session parent, which new sessions are forked from once it is ready (standalone)."""
    global session_parent
    if session_parent is None and sessionparent.wanted():
        session_parent = SessionParent()
        session_parent.start()


def stop_session_parent() -> None:
    global session_parent
    if session_parent is not None:
        session_parent.close()
        session_parent = None


def start_session(spec: SessionSpec, on_exit: Callable[[int | None], None]) -> SessionProcess:
    """Start the session process, forked from the session parent when it is ready, else by exec;
    raises OSError when it cannot be started at all."""
    out: int | None = None
    log_file: Path | None = None
    if spec.log_dir is not None and not under_journal():
        spec.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_file = spec.log_dir / f"{spec.session_id}.log"
        # What the session process says before its keeper takes the log over goes here too.
        out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    secret_fd = secret_pipe(spec.secret)
    parent = session_parent
    if parent is not None and parent.usable():
        try:
            argv, env = session_argv(spec, log_file), session_environment(spec, secret_fd)
            fds = [secret_fd] if out is None else [secret_fd, out]
            pid = parent.spawn(argv, env, _home(), fds)
        except MaybeForked:
            os.close(secret_fd)
            if out is not None:
                os.close(out)
            raise
        except NotForked as err:
            log.warning(
                "the session parent could not start session %s (%s); starting it by exec "
                "(wrsrvd starts another parent)",
                spec.session_id,
                err,
            )
            parent.close()  # started again for a later session
        else:
            os.close(secret_fd)
            if out is not None:
                os.close(out)
            log.info(
                "started session %s (pid %d, forked from the session parent): %s",
                spec.session_id,
                pid,
                " ".join(spec.command),
            )
            return SessionProcess(None, on_exit, pid)
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
            return not process.running
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
    where the platform tells: its environment names the session."""
    found = environment_has(pid, "WAYRAY_LINK_SESSION", session_id)
    return True if found is None else found  # cannot tell here: trust the pid
