"""wrsessd's daemon: the IPC server that owns the per-login workers and the running sessions.

One asyncio task per connection. Each connection has a role decided from the peer's uid
(SO_PEERCRED): *control* (root, wrsrvd's user: every request) or *greeter* (the greeter user: only
a login with its greeter session's ticket). Each login runs in its own worker process
(:mod:`wayray.launcher.worker`); the daemon relays the PAM conversation between the connection and
the worker, enforces the rate limits and the per-user session limit, and keeps the table of running
sessions, which it rebuilds from the session records after a restart.

Nothing a client sends can stop the daemon: a malformed frame or request gets an ``error`` and the
connection is closed; a worker that dies fails only its own login or session.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import pwd
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wayray.common.errors import WayRayError
from wayray.config import SessionConfig
from wayray.launcher import proctree, protocol, scope
from wayray.launcher.protocol import EndReason, ErrorType, PeerRole, SessionClass
from wayray.launcher.ratelimit import RateLimiter, token_key, user_key
from wayray.launcher.records import SessionRecords
from wayray.launcher.settings import LauncherSettings, SessionPlan, env_refusal, session_to_json
from wayray.launcher.worker import ROOT_REFUSED, WorkerJob

log = logging.getLogger("wayray.wrsessd")

#: Environment a worker inherits from the daemon; everything else (LISTEN_*, NOTIFY_SOCKET) stays out.
_WORKER_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "JOURNAL_STREAM", "WAYRAY_LOG_LEVEL", "WAYRAY_DEBUG")


def new_session_id() -> str:
    return secrets.token_hex(6)


def short(token: str | None) -> str:
    """A token reference shortened for logs (it is already a keyed hash, never the raw token)."""
    return f"{token[:12]}…" if token else "-"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- framing over asyncio streams ------------------------------------------------------------------


class IdleTimeout(Exception):
    """Nothing came on a connection for longer than it may stay silent."""


async def read_frame(
    reader: asyncio.StreamReader,
    max_bytes: int,
    *,
    idle_timeout: float | None = None,
    frame_timeout: float | None = None,
) -> dict[str, Any] | None:
    """One framed JSON object, None at a clean end of stream; IpcProtocolError on anything else.

    ``idle_timeout``: how long to wait for a message to begin (:class:`IdleTimeout`);
    ``frame_timeout``: how long a begun message may take to be complete (a IpcProtocolError)."""
    try:
        first = await asyncio.wait_for(reader.readexactly(1), idle_timeout)
    except asyncio.IncompleteReadError:
        return None
    except TimeoutError:
        raise IdleTimeout() from None

    async def rest() -> dict[str, Any]:
        try:
            header = first + await reader.readexactly(protocol.HEADER_SIZE - 1)
        except asyncio.IncompleteReadError:
            raise protocol.IpcProtocolError("connection closed in the middle of a frame header") from None
        length = protocol.header_length(header)
        if length > max_bytes:
            raise protocol.IpcProtocolError(f"message of {length} bytes exceeds the {max_bytes}-byte limit")
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise protocol.IpcProtocolError("connection closed in the middle of a message") from None
        return protocol.decode_body(body)

    try:
        return await asyncio.wait_for(rest(), frame_timeout)
    except TimeoutError:
        raise protocol.IpcProtocolError(
            f"an unfinished message: the rest of it did not come within {frame_timeout:g} s"
        ) from None


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process on the other end of a Unix socket."""
    if sys.platform.startswith("linux"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return pid, uid
    # illumos has getpeerucred(3C); BSDs have getpeereid(3). Not wired up yet.
    raise OSError("peer credentials are only implemented for Linux")  # pragma: no cover


# --- processes -------------------------------------------------------------------------------------


class ProcessWatch:
    """Completes ``exited`` when a process ends; reaps it when it is our child. Uses a pidfd."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.popen = popen
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._done()
            return
        except (AttributeError, OSError):  # pragma: no cover - no pidfd (old kernel, illumos)
            self._poll_task = loop.create_task(self._poll())
            return
        loop.add_reader(self._fd, self._done)

    def _done(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self.popen is not None:
            self.popen.wait()  # reap; the process has exited, so this does not block
        if not self.exited.done():
            self.exited.set_result(None)

    async def _poll(self) -> None:  # pragma: no cover - fallback without pidfd
        while proctree.alive(self.pid) and (self.popen is None or self.popen.poll() is None):
            await asyncio.sleep(0.5)
        self._done()


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
    async def spawn(cls, job: WorkerJob, *, verbose: bool) -> WorkerLink:
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
        await link.send({"type": "begin", "job": job.to_json()})
        return link

    async def send(self, obj: dict[str, Any]) -> bool:
        if self.writer is None or self.writer.is_closing():
            return False
        try:
            self.writer.write(protocol.encode(obj))
            await self.writer.drain()
            return True
        except (ConnectionError, OSError):
            return False

    async def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        if self.reader is None:
            return None
        try:
            return await asyncio.wait_for(read_frame(self.reader, protocol.MAX_MESSAGE_BYTES), timeout)
        except (protocol.IpcProtocolError, ConnectionError):
            return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.reader = None

    async def abort(self) -> None:
        """End a worker that has not started a session: cancel, then kill if it lingers."""
        await self.send({"type": "cancel"})
        self.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.watch.exited), 5.0)
        except TimeoutError:
            kill_group(self.pid)  # stuck in PAM: it and what a module started (pam_exec) go
            await self.watch.exited


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


# --- state -----------------------------------------------------------------------------------------


@dataclass(eq=False)
class LiveSession:
    info: protocol.SessionInfo
    link: WorkerLink | None
    watch: ProcessWatch
    worker_start_time: int | None
    ticket_sha256: str | None = None
    #: Greeters: environment for the user session their login starts (create_greeter_session).
    session_env: tuple[str, ...] = ()
    #: Greeters: the most user sessions its login may leave the user with (create_greeter_session).
    max_user_sessions: int | None = None
    #: Greeters: memory and CPU ceilings of the user session their login starts (create_greeter_session).
    login_memory_max: int | None = None
    login_cpu_quota: int | None = None
    ending_reason: EndReason | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def session_id(self) -> str:
        return self.info.session_id


class LoginKind(enum.Enum):
    USER = "user"
    UNLOCK = "unlock"


@dataclass(eq=False)
class Login:
    session_id: str
    kind: LoginKind
    link: WorkerLink
    token: str | None
    token_kind: str | None
    rhost: str | None
    requested_user: str | None
    greeter: LiveSession | None
    unlock_target: LiveSession | None
    deadline: float
    awaiting: protocol.AuthMessageType | None = None
    #: The user PAM named last, whose lockout has been checked (the requested user at first).
    checked_user: str | None = None
    user: str | None = None
    authenticated: bool = False
    expired: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class PeerConnection:
    role: PeerRole
    pid: int
    uid: int
    writer: asyncio.StreamWriter
    login: Login | None = None
    subscribed: bool = False
    events: asyncio.Queue[protocol.Message] = field(default_factory=lambda: asyncio.Queue(10_000))

    async def send(self, msg: protocol.Message) -> None:
        self.writer.write(msg.encode())
        await self.writer.drain()


class RequestError(Exception):
    def __init__(self, error_type: ErrorType, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.response = protocol.Error(
            error_type=error_type, description=description, retry_after=retry_after
        )


# --- the daemon ------------------------------------------------------------------------------------


class Launcher:
    def __init__(
        self,
        settings: LauncherSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        config_root: Path | None = None,
    ) -> None:
        """``config_root``: where the configuration is (``/``, or ``--root``): session.toml is read
        again for every login there, so that a change applies to the next session without a restart.
        None: ``settings.session_defaults`` as given."""
        self.settings = settings
        self.clock = clock
        self.config_root = config_root
        self._session_defaults = settings.session_defaults
        self.limiter = RateLimiter(settings.rate_limit)
        self.records = SessionRecords(settings.state_dir)
        self.sessions: dict[str, LiveSession] = {}
        self.pending_logins = 0
        self.connections: set[PeerConnection] = set()
        #: Open connections per uid, for the per-uid cap (control uids are not counted).
        self.open_by_uid: dict[int, int] = {}
        #: uid -> (when its last refusal was logged, refusals since), so a flood is one line a minute.
        self._cap_refusals: dict[int, tuple[float, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.AbstractServer | None = None
        self.verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
        #: Called whenever the set of sessions changes (the CLI updates sd_notify STATUS).
        self.on_change: Callable[[], None] | None = None
        self.control_uids = {0}
        for name in settings.control_users:
            try:
                self.control_uids.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                log.warning("control user %r does not exist; ignoring it", name)
        try:
            self.greeter_uid: int | None = pwd.getpwnam(settings.greeter_user).pw_uid
        except KeyError:
            self.greeter_uid = None
            log.warning("greeter user %r does not exist: greeter sessions will fail", settings.greeter_user)
        if self.greeter_uid == 0:
            raise WayRayError(
                f"the greeter user {settings.greeter_user!r} has uid 0",
                hint="greeter sessions must run as an unprivileged account",
            )

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self, listener: socket.socket) -> None:
        self.records.ensure()
        self._adopt()
        listener.setblocking(False)
        self._server = await asyncio.start_unix_server(
            self._serve_connection, sock=listener, limit=protocol.MAX_REQUEST_BYTES + 16
        )

    def doomed_sessions(self) -> list[LiveSession]:
        """Sessions that would not outlive this daemon: under systemd, those whose worker is still in
        wrsessd's own cgroup (systemd refused them a scope), which stopping the service kills."""
        if not scope.systemd_booted():
            return []
        mine = scope.cgroup_of()
        return [
            s
            for s in self.sessions.values()
            if s.ending_reason is None and scope.cgroup_of(s.info.worker_pid) == mine
        ]

    async def close(self) -> None:
        """Stop serving; cancel logins in progress; leave running sessions running — except those in
        wrsessd's own cgroup, which the service manager is about to kill: they are ended properly."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.login is not None:
                await self._abort_login(conn)
            conn.writer.close()
        doomed = self.doomed_sessions()
        survivors = len(self.sessions) - len(doomed)
        if os.environ.get("SMF_FMRI") and self.sessions:  # pragma: no cover - illumos
            log.warning(
                "stopping; %d running session(s) are in wrsessd's process contract: SMF ends them with "
                "it (no contract per session yet, docs/launcher.md §7)",
                len(self.sessions),
            )
        else:
            log.info(
                "stopping; %d running session(s) keep running%s",
                survivors,
                " (each in a scope of its own)" if survivors and scope.systemd_booted() else "",
            )
        if doomed:
            log.warning(
                "%d session(s) are in wrsessd's cgroup (%s), which the service manager kills with it: "
                "ending them properly now, closing their PAM sessions",
                len(doomed),
                ", ".join(f"{s.session_id} of {s.info.user}" for s in doomed),
            )
            await asyncio.gather(*(self._end(s, EndReason.SHUTDOWN) for s in doomed))
        for task in list(self._tasks):
            task.cancel()
        for s in self.sessions.values():
            if s.link is not None:
                s.link.close()

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _adopt(self) -> None:
        """Take over the sessions a previous wrsessd left running (from their records)."""
        for stored in self.records.load_all():
            info = stored.info
            if not proctree.alive(info.worker_pid, stored.worker_start_time):
                log.warning(
                    "session %s of %s: its worker (pid %d) is gone; its PAM session was not closed",
                    info.session_id,
                    info.user,
                    info.worker_pid,
                )
                self.records.remove(info.session_id)
                continue
            live = LiveSession(
                info=replace(info, adopted=True),
                link=None,
                watch=ProcessWatch(info.worker_pid),
                worker_start_time=stored.worker_start_time,
                ticket_sha256=stored.ticket_sha256,
                session_env=stored.session_env,
                max_user_sessions=stored.max_user_sessions,
                login_memory_max=stored.login_memory_max,
                login_cpu_quota=stored.login_cpu_quota,
            )
            self._register(live)
            log.info(
                "re-adopted session %s of %s (worker pid %d)", info.session_id, info.user, info.worker_pid
            )

    def _register(self, live: LiveSession) -> None:
        self.sessions[live.session_id] = live
        self._spawn_task(self._watch_session(live))
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def _watch_session(self, live: LiveSession) -> None:
        reason: EndReason | None = None
        if live.link is not None:
            while (msg := await live.link.recv()) is not None:
                if msg.get("type") == "ended":
                    with contextlib.suppress(ValueError):
                        reason = EndReason(str(msg.get("reason")))
            live.link.close()
        await live.watch.exited
        if reason is None:
            if live.ending_reason is not None:
                reason = live.ending_reason
            elif live.info.adopted:
                reason = EndReason.COMPOSITOR_EXITED
            else:
                reason = EndReason.FAILED
                log.error(
                    "session %s of %s: its worker died; its PAM session may not have been closed",
                    live.session_id,
                    live.info.user,
                )
        if reason in (EndReason.FAILED,):
            self.records.remove(live.session_id)
        self.sessions.pop(live.session_id, None)
        live.ended.set()
        self._changed()
        log.info("session %s of %s ended (%s)", live.session_id, live.info.user, reason.value)
        self._broadcast(
            protocol.SessionEvent(event=protocol.SessionEventKind.ENDED, session=live.info, reason=reason)
        )

    def _broadcast(self, event: protocol.Message) -> None:
        for conn in list(self.connections):
            if conn.subscribed:
                try:
                    conn.events.put_nowait(event)
                except asyncio.QueueFull:
                    log.warning("subscriber pid %d is not reading its events; dropping it", conn.pid)
                    conn.writer.close()

    # --- connections ------------------------------------------------------------------------------

    def _role(self, uid: int) -> PeerRole | None:
        if uid in self.control_uids:
            return PeerRole.CONTROL
        if self.greeter_uid is not None and uid == self.greeter_uid:
            return PeerRole.GREETER
        return None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            pid, uid = peer_uid(sock)
        except OSError as err:
            log.warning("cannot identify a connection's peer: %s", err)
            writer.close()
            return
        role = self._role(uid)
        if role is None:
            log.warning("refused a connection from uid %d (pid %d): not a control or greeter user", uid, pid)
            writer.write(
                protocol.Error(
                    error_type=ErrorType.FORBIDDEN, description=f"uid {uid} may not use the session launcher"
                ).encode()
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        # Root and the control users (wrsrvd's account) are not capped: they are trusted with every
        # request already (they can end every session), and wrsrvd opens a connection per request, so a
        # burst of kiosks arriving at once (after a power cut) legitimately needs many. Everyone else
        # (the greeter user, whose login screens handle what people type) is, so that no such uid can
        # use up wrsessd's descriptors and lock the others out.
        capped = role is not PeerRole.CONTROL
        if capped:
            limit = self.connection_limit(uid)
            held = self.open_by_uid.get(uid, 0)
            if held >= limit:
                await self._refuse_over_cap(writer, pid, uid, held, limit)
                return
            self.open_by_uid[uid] = held + 1
        conn = PeerConnection(role=role, pid=pid, uid=uid, writer=writer)
        self.connections.add(conn)
        try:
            await self._serve_requests(conn, reader)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug: this connection ends, the daemon and everyone else carry on
            log.exception("internal error serving pid %d (uid %d); closing its connection", pid, uid)
            with contextlib.suppress(Exception):
                await conn.send(
                    protocol.Error(error_type=ErrorType.ERROR, description="internal error in wrsessd")
                )
        finally:
            self.connections.discard(conn)
            if capped:
                left = self.open_by_uid.get(uid, 1) - 1
                if left > 0:
                    self.open_by_uid[uid] = left
                else:
                    self.open_by_uid.pop(uid, None)
            if conn.login is not None:
                await self._abort_login(conn)
            writer.close()

    def connection_limit(self, uid: int) -> int:
        """How many connections ``uid`` (not a control uid) may hold open at once."""
        limit = self.settings.max_connections_per_uid
        if uid == self.greeter_uid:
            # Every login screen keeps a connection open; greeter sessions are created by control
            # requests only, so a greeter cannot raise its own allowance.
            limit += sum(1 for s in self.sessions.values() if s.info.session_class is SessionClass.GREETER)
        return limit

    async def _refuse_over_cap(
        self, writer: asyncio.StreamWriter, pid: int, uid: int, held: int, limit: int
    ) -> None:
        now = self.clock()
        last, since = self._cap_refusals.get(uid, (float("-inf"), 0))
        if now - last >= 60.0:
            log.warning(
                "refused a connection from uid %d (pid %d): it already holds %d connection(s), the most "
                "allowed (max_connections_per_uid)%s",
                uid,
                pid,
                held,
                f"; {since} more refused in the last minute" if since else "",
            )
            self._cap_refusals[uid] = (now, 0)
        else:
            self._cap_refusals[uid] = (last, since + 1)
        writer.write(
            protocol.Error(
                error_type=ErrorType.LIMIT,
                description=f"uid {uid} already has {held} connections to the session launcher open "
                f"(the limit is {limit}); close one first",
            ).encode()
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def _idle_allowance(self, conn: PeerConnection) -> float:
        """How long ``conn`` may stay silent now. Between requests: ``idle_timeout_s``. While its login
        is in its conversation (a person reading a prompt, typing a password slowly), the login's own
        deadline is what ends it, so the connection may wait that long, and then some."""
        s = self.settings
        login = conn.login
        if login is not None and not login.expired:
            return max(0.0, login.deadline - self.clock()) + s.idle_timeout_s
        return s.idle_timeout_s

    async def _serve_requests(self, conn: PeerConnection, reader: asyncio.StreamReader) -> None:
        while True:
            allowance = self._idle_allowance(conn)
            try:
                obj = await read_frame(
                    reader,
                    protocol.MAX_REQUEST_BYTES,
                    idle_timeout=allowance,
                    frame_timeout=self.settings.frame_timeout_s,
                )
                if obj is None:
                    return
                request = protocol.parse_request(obj)
            except IdleTimeout:
                # Closed without a word: an answer nobody asked for would be read as the answer to the
                # client's next request. Clients connect again when they need to (wrlogin does).
                log.debug(
                    "closing connection from pid %d (uid %d): nothing came for %g s",
                    conn.pid,
                    conn.uid,
                    allowance,
                )
                return
            except protocol.IpcProtocolError as err:
                log.info("closing connection from pid %d (uid %d): %s", conn.pid, conn.uid, err)
                await conn.send(protocol.Error(error_type=ErrorType.BAD_REQUEST, description=str(err)))
                return
            if conn.role not in request.roles:
                response: protocol.Message = protocol.Error(
                    error_type=ErrorType.FORBIDDEN,
                    description=f"{request.type} is not allowed for a {conn.role.value} connection",
                )
            else:
                try:
                    response = await self._dispatch(conn, request)
                except RequestError as err:
                    response = err.response
            await conn.send(response)
            if conn.subscribed:
                await self._stream_events(conn, reader)
                return

    async def _dispatch(self, conn: PeerConnection, req: protocol.Message) -> protocol.Message:
        match req:
            case protocol.CreateSession():
                return await self._create_session(conn, req)
            case protocol.PostAuthMessageResponse():
                return await self._post_response(conn, req)
            case protocol.StartSession():
                return await self._start_session(conn, req)
            case protocol.CancelSession():
                if conn.login is not None:
                    await self._abort_login(conn)
                return protocol.Success()
            case protocol.CreateGreeterSession():
                return await self._create_greeter(req)
            case protocol.ListSessions():
                return self._session_list()
            case protocol.KillSession():
                return await self._kill(req)
            case protocol.Subscribe():
                conn.subscribed = True
                return self._session_list()
        raise RequestError(ErrorType.BAD_REQUEST, f"{req.type} is not handled")  # pragma: no cover

    def _session_list(self) -> protocol.SessionList:
        infos = sorted((s.info for s in self.sessions.values()), key=lambda i: i.started_at)
        return protocol.SessionList(sessions=tuple(infos))

    async def _stream_events(self, conn: PeerConnection, reader: asyncio.StreamReader) -> None:
        async def watch_reader() -> None:
            # A subscriber sends nothing more; data or end of stream both end the subscription.
            await reader.read(1)

        reader_task = asyncio.ensure_future(watch_reader())
        try:
            while True:
                get = asyncio.ensure_future(conn.events.get())
                done, _ = await asyncio.wait({get, reader_task}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    return
                await conn.send(get.result())
        finally:
            reader_task.cancel()

    # --- logins -----------------------------------------------------------------------------------

    def _job(
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
    ) -> WorkerJob:
        s = self.settings
        return WorkerJob(
            session_id=session_id,
            session_class=session_class.value,
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
            components=tuple((c.name, c.argv) for c in plan.components),
            read_user_session_file=s.read_user_session_file and session_class is SessionClass.USER,
            user_session_file="wayray/session.toml",
            runtime_dir_base=str(s.runtime_dir_base),
            state_dir=str(s.state_dir),
            default_path=s.default_path,
            umask=s.session_umask,
            compositor_start_timeout_s=s.compositor_start_timeout_s,
            stop_timeout_s=s.stop_timeout_s,
            unlock_session=unlock_session,
            session_defaults=session_to_json(self.session_defaults())
            if session_class is SessionClass.USER
            else None,
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

    def _greeter_for_ticket(self, ticket: str) -> LiveSession:
        digest = _sha256(ticket)
        for s in self.sessions.values():
            if (
                s.info.session_class is SessionClass.GREETER
                and s.ticket_sha256 is not None
                and secrets.compare_digest(s.ticket_sha256, digest)
                and s.ending_reason is None
            ):
                return s
        raise RequestError(ErrorType.FORBIDDEN, "unknown or already used login ticket")

    def _user_session(self, session_id: str) -> LiveSession:
        target = self.sessions.get(session_id)
        if target is None or target.info.session_class is not SessionClass.USER:
            raise RequestError(ErrorType.NOT_FOUND, f"no user session {session_id}")
        return target

    async def _create_session(self, conn: PeerConnection, req: protocol.CreateSession) -> protocol.Message:
        if conn.login is not None:
            raise RequestError(
                ErrorType.BAD_REQUEST,
                "a login is already in progress on this connection; cancel_session first",
            )
        greeter: LiveSession | None = None
        unlock_id: str | None
        if conn.role is PeerRole.GREETER:
            if req.ticket is None or req.token or req.token_kind or req.rhost or req.unlock_session:
                raise RequestError(
                    ErrorType.BAD_REQUEST,
                    "a greeter logs in with its ticket (and optionally a user name) only",
                )
            greeter = self._greeter_for_ticket(req.ticket)
            token, token_kind, rhost = greeter.info.token, greeter.info.token_kind, greeter.info.rhost
            unlock_id = greeter.info.unlock_session
        else:
            if req.ticket is not None:
                greeter = self._greeter_for_ticket(req.ticket)
                token, token_kind, rhost = greeter.info.token, greeter.info.token_kind, greeter.info.rhost
                unlock_id = greeter.info.unlock_session
            else:
                if not req.token or not req.token_kind:
                    raise RequestError(
                        ErrorType.BAD_REQUEST, "create_session needs token and token_kind (or ticket)"
                    )
                token, token_kind, rhost, unlock_id = (
                    req.token,
                    req.token_kind,
                    req.rhost,
                    req.unlock_session,
                )
        if greeter is not None and any(
            c.login is not None and c.login.greeter is greeter and not c.login.expired
            for c in self.connections
        ):
            # One login per ticket at a time: parallel ones would each get their password guess in
            # before the rate limit saw the first failure.
            raise RequestError(ErrorType.BAD_REQUEST, "a login with this ticket is already in progress")
        username = req.username
        target: LiveSession | None = None
        if unlock_id is not None:
            target = self._user_session(unlock_id)
            if username is not None and username != target.info.user:
                raise RequestError(
                    ErrorType.BAD_REQUEST,
                    f"this login unlocks {target.info.user}'s session; log in as {target.info.user}",
                )
            username = target.info.user

        if username is not None and target is None and is_root(username):
            log.warning(
                "login for %s with token %s from %s refused: root", username, short(token), rhost or "-"
            )
            raise RequestError(ErrorType.ACCOUNT_ERROR, ROOT_REFUSED)
        now = self.clock()
        wait = self.limiter.retry_after([*token_key(token), *user_key(username)], now)
        if wait is not None:
            log.warning(
                "login for %s with token %s from %s refused: rate limited for %.0f s",
                username or "(unnamed)",
                short(token),
                rhost or "-",
                wait,
            )
            raise RequestError(ErrorType.RATE_LIMITED, too_many(wait), retry_after=round(wait, 1))
        if self.pending_logins >= self.settings.max_pending_logins:
            raise RequestError(ErrorType.LIMIT, "too many logins in progress; try again in a moment")

        session_id = new_session_id()
        job = self._job(
            session_id,
            session_class=SessionClass.USER,
            service=self.settings.pam_service,
            user=username,
            authenticate=True,
            open_session=target is None,
            plan=self.settings.user_session,
            token=token,
            token_kind=token_kind,
            rhost=rhost,
            unlock_session=unlock_id,
        )
        self.pending_logins += 1
        try:
            link = await WorkerLink.spawn(job, verbose=self.verbose)
        except OSError as err:
            self.pending_logins -= 1
            log.error("cannot start a session worker: %s", err)
            raise RequestError(ErrorType.ERROR, "the session launcher cannot start a login worker") from err
        login = Login(
            session_id=session_id,
            kind=LoginKind.UNLOCK if target is not None else LoginKind.USER,
            link=link,
            token=token,
            token_kind=token_kind,
            rhost=rhost,
            requested_user=username,
            greeter=greeter,
            unlock_target=target,
            deadline=now + self.settings.login_timeout_s,
            checked_user=username,
        )
        login.timer = asyncio.get_running_loop().call_later(
            self.settings.login_timeout_s, lambda: self._spawn_task(self._expire_login(conn, login))
        )
        conn.login = login
        log.info(
            "login %s started for %s with %s token %s from %s%s",
            session_id,
            username or "(PAM asks)",
            token_kind or "-",
            short(token),
            rhost or "-",
            f" (unlocking {target.session_id})" if target else "",
        )
        return await self._advance(conn, login)

    async def _expire_login(self, conn: PeerConnection, login: Login) -> None:
        if conn.login is login:
            log.info("login %s timed out after %g s", login.session_id, self.settings.login_timeout_s)
            await self._abort_login(conn)
            login.expired = True
            conn.login = login  # kept so the next request on this connection learns why

    async def _abort_login(self, conn: PeerConnection) -> None:
        login = conn.login
        conn.login = None
        if login is None or login.expired:
            return
        if login.timer is not None:
            login.timer.cancel()
        self.pending_logins -= 1
        login.expired = True
        await login.link.abort()

    def _check_live(self, conn: PeerConnection) -> Login:
        login = conn.login
        if login is None:
            raise RequestError(ErrorType.BAD_REQUEST, "no login in progress on this connection")
        if login.expired:
            conn.login = None
            raise RequestError(
                ErrorType.ERROR,
                f"the login timed out after {self.settings.login_timeout_s:g} s; start again",
            )
        return login

    async def _advance(self, conn: PeerConnection, login: Login) -> protocol.Message:
        """Run the worker until it needs an answer or has decided, and say what to send the client."""
        remaining = max(0.1, login.deadline - self.clock())
        budget = min(remaining, self.settings.pam_timeout_s)
        try:
            msg = await login.link.recv(timeout=budget)
        except TimeoutError:
            if budget < remaining:
                # Nothing from PAM for pam_timeout_s although nobody is typing: a module hangs (a
                # directory server that does not answer). The worker cannot be cancelled from inside
                # a PAM call, so it is killed.
                log.error(
                    "login %s: the PAM stack (service %s) did not answer in %g s; a module is stuck? "
                    "Killing its worker (pid %d)",
                    login.session_id,
                    self.settings.pam_service,
                    budget,
                    login.link.pid,
                )
                await self._abort_login(conn)
                raise RequestError(
                    ErrorType.ERROR,
                    f"The login service did not answer in {budget:g} s; please try again, and ask an "
                    "administrator to check the logs if it keeps happening.",
                ) from None
            msg = None
        if msg is None:
            await self._abort_login(conn)
            raise RequestError(ErrorType.ERROR, "the login did not finish (worker timed out or exited)")
        kind = msg.get("type")
        named = msg.get("user") if isinstance(msg.get("user"), str) else None
        if kind == "prompt" and named and named != login.checked_user:
            # PAM has just named the user (it asked "login:"): check that user now, before the next
            # question — the password — reaches anyone, so the answer never depends on the password.
            login.checked_user = named
            if login.kind is LoginKind.USER and is_root(named):
                log.warning("login %s refused before the password: root", login.session_id)
                await self._abort_login(conn)
                raise RequestError(ErrorType.ACCOUNT_ERROR, ROOT_REFUSED)
            wait = self.limiter.retry_after(user_key(named), self.clock())
            if wait is not None:
                log.warning(
                    "login %s for %s with token %s from %s refused before the password: "
                    "rate limited for %.0f s",
                    login.session_id,
                    named,
                    short(login.token),
                    login.rhost or "-",
                    wait,
                )
                await self._abort_login(conn)
                raise RequestError(ErrorType.RATE_LIMITED, too_many(wait), retry_after=round(wait, 1))
        if kind == "prompt":
            style = protocol.AuthMessageType(msg["style"])
            login.awaiting = style
            return protocol.AuthMessage(
                auth_message_type=style, auth_message=str(msg.get("text", ""))[:4096]
            )
        if kind == "auth_ok":
            user = str(msg["user"])
            now = self.clock()
            wait = self.limiter.retry_after(user_key(user), now)
            if wait is not None:
                # A stack that named the user only with its verdict (no question after the name): the
                # answer, and what it does to the block, must not depend on the password, so a right
                # one counts as a failure here exactly as a wrong one does below.
                self.limiter.failed([*token_key(login.token), *user_key(user)], now)
                log.warning("login %s for %s refused: rate limited for %.0f s", login.session_id, user, wait)
                await self._abort_login(conn)
                raise RequestError(ErrorType.RATE_LIMITED, too_many(wait), retry_after=round(wait, 1))
            if login.unlock_target is not None and user != login.unlock_target.info.user:
                await self._abort_login(conn)
                raise RequestError(ErrorType.AUTH_ERROR, "this login must be made by the session's owner")
            self.limiter.succeeded([*token_key(login.token), *user_key(user)])
            login.user = user
            login.authenticated = True
            login.awaiting = None
            log.info("login %s: %s authenticated", login.session_id, user)
            return protocol.Success()
        if kind == "auth_failed":
            error_type = ErrorType(msg.get("error_type", "error"))
            named = msg.get("user") or login.requested_user
            who = named if isinstance(named, str) else None
            now = self.clock()
            blocked = self.limiter.retry_after(user_key(who), now) if who else None
            if error_type is ErrorType.AUTH_ERROR:
                self.limiter.failed([*token_key(login.token), *user_key(who)], now)
            if blocked is not None and error_type in (ErrorType.AUTH_ERROR, ErrorType.ACCOUNT_ERROR):
                # The same answer as a right password of a blocked user gets (above).
                log.warning(
                    "login %s for %s refused: rate limited for %.0f s", login.session_id, who, blocked
                )
                await self._abort_login(conn)
                raise RequestError(ErrorType.RATE_LIMITED, too_many(blocked), retry_after=round(blocked, 1))
            log.warning(
                "login %s for %s with token %s from %s failed: %s",
                login.session_id,
                who or "(unnamed)",
                short(login.token),
                login.rhost or "-",
                msg.get("status", error_type.value),
            )
            await self._abort_login(conn)
            raise RequestError(error_type, str(msg.get("message", "login failed")))
        await self._abort_login(conn)
        raise RequestError(ErrorType.ERROR, f"unexpected message {kind!r} from the login worker")

    async def _post_response(
        self, conn: PeerConnection, req: protocol.PostAuthMessageResponse
    ) -> protocol.Message:
        login = self._check_live(conn)
        if login.awaiting is None:
            raise RequestError(ErrorType.BAD_REQUEST, "no auth_message is waiting for an answer")
        if login.awaiting.is_prompt and req.response is None:
            raise RequestError(
                ErrorType.BAD_REQUEST, f"a {login.awaiting.value} prompt needs a string response"
            )
        login.awaiting = None
        await login.link.send({"type": "answer", "response": req.response})
        return await self._advance(conn, login)

    async def _start_session(self, conn: PeerConnection, req: protocol.StartSession) -> protocol.Message:
        login = self._check_live(conn)
        if not login.authenticated or login.user is None:
            raise RequestError(ErrorType.BAD_REQUEST, "start_session needs a successful login first")
        if conn.role is PeerRole.GREETER and (
            req.env or req.cmd or req.memory_max is not None or req.cpu_quota is not None
        ):
            # The user's session is the user's: a greeter choosing its PATH, XDG_CONFIG_HOME (where
            # the user's session.toml is read) or command would run programs of its choice as the user.
            raise RequestError(
                ErrorType.FORBIDDEN,
                "a greeter cannot choose the environment, command or limits of a user's session",
            )
        if req.cmd and not self.settings.allow_custom_command:
            raise RequestError(
                ErrorType.FORBIDDEN, "custom session commands are disabled (allow_custom_command)"
            )
        for entry in req.env or ():
            if (why := env_refusal(entry)) is not None:
                raise RequestError(ErrorType.BAD_REQUEST, why)
        user = login.user
        if login.kind is LoginKind.UNLOCK:
            target = login.unlock_target
            assert target is not None
            if login.timer is not None:
                login.timer.cancel()
            await login.link.send({"type": "finish"})
            login.link.close()
            self.pending_logins -= 1
            conn.login = None
            if login.greeter is not None:
                self._consume_ticket(login.greeter)
                self._linger(login.greeter)
            log.info("session %s of %s unlocked", target.session_id, user)
            self._broadcast(
                protocol.SessionEvent(
                    event=protocol.SessionEventKind.UNLOCKED,
                    session=target.info,
                    greeter_session=login.greeter.session_id if login.greeter else None,
                )
            )
            return protocol.SessionStarted(session=target.info, resumed=True)
        limits = [self.settings.max_sessions_per_user]
        if login.greeter is not None:
            limits.append(login.greeter.max_user_sessions)
        limit = min((n for n in limits if n is not None), default=None)
        if limit is not None:
            count = sum(
                1
                for s in self.sessions.values()
                if s.info.session_class is SessionClass.USER
                and s.info.user == user
                and s.ending_reason is None
            )
            if count >= limit:
                await self._abort_login(conn)
                raise RequestError(
                    ErrorType.LIMIT,
                    f"{user} already has {count} session{'s' if count != 1 else ''} (the limit is {limit}); "
                    "end one first",
                )
        if login.timer is not None:
            login.timer.cancel()
        greeter_id = login.greeter.session_id if login.greeter else None
        env = merge_env(req.env or (), login.greeter.session_env if login.greeter else ())
        if login.greeter is not None:
            memory_max, cpu_quota = login.greeter.login_memory_max, login.greeter.login_cpu_quota
        else:
            memory_max, cpu_quota = req.memory_max, req.cpu_quota
        await login.link.send(
            {
                "type": "start",
                "env": env,
                "cmd": list(req.cmd) if req.cmd else None,
                "replaces": greeter_id,
                "memory_max": memory_max,
                "cpu_quota": cpu_quota,
            }
        )
        try:
            live = await self._await_started(login.link, login.session_id)
        finally:
            # Started or not, this login is over (a failed start has already ended its worker).
            conn.login = None
            login.expired = True
            self.pending_logins -= 1
        if login.greeter is not None:
            self._consume_ticket(login.greeter)
            self._linger(login.greeter)
        self._register(live)
        self._broadcast(
            protocol.SessionEvent(
                event=protocol.SessionEventKind.STARTED, session=live.info, greeter_session=greeter_id
            )
        )
        return protocol.SessionStarted(session=live.info)

    async def _await_started(
        self, link: WorkerLink, session_id: str, ticket: str | None = None
    ) -> LiveSession:
        timeout = self.settings.compositor_start_timeout_s + self.settings.stop_timeout_s + 30
        try:
            msg = await link.recv(timeout=timeout)
        except TimeoutError:
            # It may have opened the PAM session and started programs: SIGTERM makes it stop at its next
            # safe point and tear down what it set up (SIGKILL would leave both behind). Its watch reaps it.
            log.error(
                "session %s: the session worker did not start it in %g s; stopping it", session_id, timeout
            )
            link.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(link.pid, signal.SIGTERM)
            self._kill_if_stuck(link.pid, link.watch, session_id)
            raise RequestError(
                ErrorType.ERROR, f"session {session_id}: the session did not start in {timeout:g} s"
            ) from None
        if msg is not None and msg.get("type") == "started":
            info = protocol.Nested(protocol.SessionInfo).check(msg["session"])
            assert isinstance(info, protocol.SessionInfo)
            return LiveSession(
                info=info,
                link=link,
                watch=link.watch,
                worker_start_time=proctree.start_time(link.pid),
                ticket_sha256=_sha256(ticket) if ticket else None,
            )
        await link.abort()
        if msg is not None and msg.get("type") == "start_failed":
            raise RequestError(ErrorType.ERROR, f"the session could not start: {msg.get('message')}")
        raise RequestError(
            ErrorType.ERROR, f"session {session_id}: the session worker failed while starting"
        )

    def _consume_ticket(self, greeter: LiveSession) -> None:
        """A ticket logs in once, also across a wrsessd restart (so its record forgets it too)."""
        greeter.ticket_sha256 = None
        greeter.session_env = ()
        self.records.forget_ticket(greeter.session_id)

    def _linger(self, greeter: LiveSession) -> None:
        """End a greeter whose job is done, unless wrsrvd does it sooner (after switching the kiosk)."""

        def end() -> None:
            if greeter.session_id in self.sessions and greeter.ending_reason is None:
                self._spawn_task(self._end(greeter, EndReason.REPLACED))

        asyncio.get_running_loop().call_later(self.settings.greeter_linger_s, end)

    # --- greeter sessions ----------------------------------------------------------------------

    async def _create_greeter(self, req: protocol.CreateGreeterSession) -> protocol.Message:
        s = self.settings
        if self.greeter_uid is None:
            raise RequestError(ErrorType.ERROR, f"the greeter user {s.greeter_user!r} does not exist")
        unlock_user: str | None = None
        if req.unlock_session is not None:
            unlock_user = self._user_session(req.unlock_session).info.user
        for entry in req.env or ():
            if (why := env_refusal(entry)) is not None:
                raise RequestError(ErrorType.BAD_REQUEST, why)
        for entry in req.session_env or ():
            if (why := env_refusal(entry)) is not None:
                raise RequestError(ErrorType.BAD_REQUEST, f"session_env: {why}")
        if req.session_env and req.unlock_session is not None:
            raise RequestError(
                ErrorType.BAD_REQUEST, "an unlock greeter starts no session: session_env makes no sense"
            )
        if self.pending_logins >= s.max_pending_logins:
            raise RequestError(ErrorType.LIMIT, "too many sessions starting; try again in a moment")
        session_id = new_session_id()
        ticket = secrets.token_urlsafe(32)
        job = self._job(
            session_id,
            session_class=SessionClass.GREETER,
            service=s.greeter_pam_service,
            user=s.greeter_user,
            authenticate=False,
            open_session=True,
            plan=s.greeter_session,
            token=req.token,
            token_kind=req.token_kind,
            rhost=req.rhost,
            unlock_session=req.unlock_session,
        )
        self.pending_logins += 1
        try:
            link = await WorkerLink.spawn(job, verbose=self.verbose)
            msg = await link.recv(timeout=60)
            if msg is None or msg.get("type") != "auth_ok":
                await link.abort()
                if msg is not None and msg.get("type") == "prompt":
                    raise RequestError(
                        ErrorType.ERROR,
                        f"the greeter PAM service {s.greeter_pam_service!r} asked a question; "
                        "a greeter service must not authenticate (use pam_permit/pam_rootok for auth)",
                    )
                detail = msg.get("message") if msg else "the worker exited"
                raise RequestError(ErrorType.ERROR, f"the greeter session was refused: {detail}")
            greeter_env = {"WAYRAY_SESSD_SOCK": str(s.socket), "WAYRAY_LOGIN_TICKET": ticket}
            if unlock_user is not None:
                greeter_env["WAYRAY_UNLOCK_USER"] = unlock_user  # the greeter shows whose session
            await link.send(
                {
                    "type": "start",
                    "env": list(req.env or ()),
                    "greeter_env": greeter_env,
                    "memory_max": req.memory_max,
                    "cpu_quota": req.cpu_quota,
                }
            )
            live = await self._await_started(link, session_id, ticket)
        finally:
            self.pending_logins -= 1
        if (
            req.session_env
            or req.max_user_sessions is not None
            or req.memory_max is not None
            or req.cpu_quota is not None
        ):
            live.session_env = tuple(req.session_env or ())
            live.max_user_sessions = req.max_user_sessions
            live.login_memory_max, live.login_cpu_quota = req.memory_max, req.cpu_quota
            self.records.set_greeter_login(
                live.session_id, live.session_env, live.max_user_sessions, req.memory_max, req.cpu_quota
            )
        self._register(live)
        log.info(
            "greeter session %s started for %s token %s from %s%s",
            session_id,
            req.token_kind,
            short(req.token),
            req.rhost or "-",
            f" (unlocks {req.unlock_session})" if req.unlock_session else "",
        )
        self._broadcast(protocol.SessionEvent(event=protocol.SessionEventKind.STARTED, session=live.info))
        return protocol.SessionStarted(session=live.info)

    # --- ending sessions --------------------------------------------------------------------------

    async def _end(self, live: LiveSession, reason: EndReason) -> bool:
        if live.ending_reason is None:
            live.ending_reason = reason
            log.info("ending session %s of %s (%s)", live.session_id, live.info.user, reason.value)
            sent = False
            if live.link is not None:
                sent = await live.link.send({"type": "stop", "reason": reason.value})
            if not sent and proctree.alive(live.info.worker_pid, live.worker_start_time):
                # Re-adopted (no socketpair): SIGTERM makes the worker tear the session down.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(live.info.worker_pid, signal.SIGTERM)
        timeout = self.settings.stop_timeout_s + 15
        try:
            await asyncio.wait_for(live.ended.wait(), timeout)
            return True
        except TimeoutError:
            pass
        if not proctree.alive(live.info.worker_pid, live.worker_start_time):
            return False
        # Every program of the session had stop_timeout_s to go, then SIGKILL: a worker still here
        # is stuck in PAM (pam_close_session waiting on a hung service) and would linger for ever.
        log.error(
            "session %s of %s: its worker (pid %d) did not finish ending in %g s; stuck in a PAM "
            "call? Killing it; its PAM session may be left open",
            live.session_id,
            live.info.user,
            live.info.worker_pid,
            timeout,
        )
        kill_group(live.info.worker_pid)
        self.records.remove(live.session_id)
        try:
            await asyncio.wait_for(live.ended.wait(), 15)
            return True
        except TimeoutError:
            return False

    def _kill_if_stuck(self, pid: int, watch: ProcessWatch, session_id: str) -> None:
        """A worker told to stop (SIGTERM) that is still there after it had time to tear down is stuck
        in a PAM call (pam_open_session waiting on a hung service): kill it, rather than let it linger."""
        grace = self.settings.stop_timeout_s + 15

        async def later() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(watch.exited), grace)
            except TimeoutError:
                log.error(
                    "session %s: its worker (pid %d) did not stop %g s after SIGTERM; stuck in a PAM "
                    "call? Killing it; its PAM session may be left open",
                    session_id,
                    pid,
                    grace,
                )
                kill_group(pid)
                self.records.remove(session_id)

        self._spawn_task(later())

    async def _kill(self, req: protocol.KillSession) -> protocol.Message:
        live = self.sessions.get(req.session_id)
        if live is None:
            raise RequestError(ErrorType.NOT_FOUND, f"no session {req.session_id}")
        if await self._end(live, req.reason or EndReason.OPERATOR):
            return protocol.Success()
        raise RequestError(ErrorType.ERROR, f"session {req.session_id} did not end in time; see the logs")


def merge_env(requested: tuple[str, ...] | list[str], fixed: tuple[str, ...]) -> list[str]:
    """``requested`` entries, then ``fixed`` ones, which replace requested entries of the same name."""
    names = {e.partition("=")[0] for e in fixed}
    return [e for e in requested if e.partition("=")[0] not in names] + list(fixed)


def is_root(user: str) -> bool:
    """Whether the account ``user`` has uid 0 (root, or another name for it). Unknown: False."""
    try:
        return pwd.getpwnam(user).pw_uid == 0
    except KeyError:
        return False


def too_many(wait: float) -> str:
    return f"Too many failed attempts; try again in {max(1, round(wait))} s."
