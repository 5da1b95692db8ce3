"""wrsessd's side of its session workers: starting one with its job, talking to it in the messages of
:mod:`wayray.launcher.worker_protocol`, watching it exit, and ending it when it must go."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from wayray.common.procwatch import ProcessWatch
from wayray.config import SessionConfig
from wayray.launcher import proctree, protocol
from wayray.launcher import worker_protocol as wp
from wayray.launcher.protocol import SessionClass
from wayray.launcher.settings import LauncherSettings, SessionPlan, session_to_json

log = logging.getLogger("wayray.wrsessd")

#: Environment a worker inherits from the daemon; everything else (LISTEN_*, NOTIFY_SOCKET) stays out.
_WORKER_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "JOURNAL_STREAM", "WAYRAY_LOG_LEVEL", "WAYRAY_DEBUG")


class WorkerLink:
    """The daemon's end of one session worker."""

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader | None,
        writer: asyncio.StreamWriter | None,
        watch: ProcessWatch,
    ) -> None:
        self.pid = pid
        self.reader = reader
        self.writer = writer
        self.watch = watch

    @classmethod
    async def spawn(cls, job: wp.WorkerJob, *, verbose: bool) -> WorkerLink:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-I", "-m", "wayray.launcher.worker", "--fd", str(theirs.fileno())]
        if verbose:
            argv.append("-v")
        env = {k: os.environ[k] for k in _WORKER_ENV if k in os.environ}
        try:
            proc = subprocess.Popen(
                argv,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # its own session: no terminal signals, leader for the session
                stdin=subprocess.DEVNULL,
                env=env,
                cwd="/",
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=protocol.MAX_MESSAGE_BYTES)
        link = cls(proc.pid, reader, writer, ProcessWatch(proc.pid, proc))
        await link.send(wp.Begin(job=job))
        return link

    async def send(self, msg: wp.Message) -> bool:
        if self.writer is None or self.writer.is_closing():
            return False
        try:
            self.writer.write(msg.encode())
            await self.writer.drain()
            return True
        except (ConnectionError, OSError):
            return False

    async def recv(self, timeout: float | None = None) -> wp.Message | None:
        """The worker's next message; None when it is gone or broke the channel. TimeoutError after
        ``timeout`` seconds."""
        if self.reader is None:
            return None
        try:
            obj = await asyncio.wait_for(
                protocol.read_message(self.reader, protocol.MAX_MESSAGE_BYTES), timeout
            )
        except (protocol.IpcProtocolError, ConnectionError):
            return None
        if obj is None:
            return None
        try:
            return wp.parse(obj, wp.FROM_WORKER)
        except protocol.IpcProtocolError as err:
            log.warning("session worker pid %d sent a bad message: %s", self.pid, err)
            return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.reader = None

    async def abort(self) -> None:
        """End a worker that has not started a session: cancel, then kill if it lingers."""
        await self.send(wp.Cancel())
        self.close()
        try:
            await asyncio.wait_for(self.watch.exited.wait(), 5.0)
        except TimeoutError:
            kill_group(self.pid)  # stuck in PAM: it and what a module started (pam_exec) go
            await self.watch.exited.wait()


def kill_group(pid: int) -> None:
    """SIGKILL a worker and what runs under it: the programs a PAM module started (pam_exec gives
    them a process session of their own) and a failed or ended session's leftovers."""
    for _ in range(10):  # processes forking while we kill: again until none is left
        pids = proctree.descendants(pid)
        if not pids:
            break
        proctree.signal_all(pids, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Jobs:
    """Makes the job a worker gets from wrsessd's settings and, for user sessions, session.toml as it
    is now (read again for every login, so that a change applies to the next session)."""

    def __init__(self, settings: LauncherSettings, config_root: Path | None) -> None:
        """``config_root``: where the configuration is (``/``, or ``--root``); None:
        ``settings.session_defaults`` as given."""
        self.settings = settings
        self.config_root = config_root
        self._session_defaults = settings.session_defaults

    def job(
        self,
        session_id: str,
        *,
        session_class: SessionClass,
        service: str | None,
        user: str | None,
        authenticate: bool,
        open_session: bool,
        plan: SessionPlan,
        token: str | None,
        token_kind: str | None,
        rhost: str | None,
        unlock_session: str | None = None,
    ) -> wp.WorkerJob:
        s = self.settings
        user_session = session_class is SessionClass.USER
        return wp.WorkerJob(
            session_id=session_id,
            session_class=session_class,
            service=service,
            user=user,
            authenticate=authenticate,
            open_session=open_session,
            rhost=rhost,
            pam_tty=s.pam_tty,
            token=token,
            token_kind=token_kind,
            allow_password_change=s.allow_password_change,
            compositor=plan.compositor,
            components=tuple(wp.JobComponent(name=c.name, argv=c.argv) for c in plan.components),
            read_user_session_file=s.read_user_session_file and user_session,
            user_session_file="wayray/session.toml",
            runtime_dir_base=str(s.runtime_dir_base),
            state_dir=str(s.state_dir),
            default_path=s.default_path,
            umask=s.session_umask,
            compositor_start_timeout_s=s.compositor_start_timeout_s,
            stop_timeout_s=s.stop_timeout_s,
            unlock_session=unlock_session,
            session_defaults=session_to_json(self.session_defaults()) if user_session else None,
        )

    def session_defaults(self) -> SessionConfig:
        """session.toml as it is now (the last good one when it has errors now)."""
        if self.config_root is None:
            return self._session_defaults
        from wayray.config import load_report

        result = load_report(self.config_root)
        problems = [d for d in result.errors if d.key.split(".", 1)[0] == "session"]
        if problems:
            log.error(
                "session.toml: %s%s; new sessions keep the settings read before",
                problems[0].format(),
                f" (and {len(problems) - 1} more)" if len(problems) > 1 else "",
            )
        else:
            self._session_defaults = result.config.session
        return self._session_defaults
