"""wrsessd's daemon: the IPC server that owns the per-login workers and the running sessions.

One asyncio task per connection. Each connection has a role decided from the peer's uid
(SO_PEERCRED): *control* (root, wrsrvd's user: every request) or *greeter* (the greeter user: only
a login with its greeter session's ticket). Each login runs in its own worker process
(:mod:`wayray.launcher.worker`); the daemon relays the PAM conversation between the connection and
the worker, enforces the rate limits and the per-user session limit, and keeps the table of running
sessions, which it rebuilds from the session records after a restart.

This module serves the connections; the parts it is made of are their own modules: the logins
(:mod:`.logins`), the greeter sessions (:mod:`.greeters`), the table of running sessions
(:mod:`.sessions`), the workers (:mod:`.workers`) and the data they share (:mod:`.state`).

Nothing a client sends can stop the daemon: a malformed frame or request gets an ``error`` and the
connection is closed; a worker that dies fails only its own login or session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.launcher import protocol, scope
from wayray.launcher.greeters import Greeters
from wayray.launcher.logins import Logins
from wayray.launcher.protocol import EndReason, ErrorType, PeerRole
from wayray.launcher.records import SessionRecords
from wayray.launcher.sessions import SessionTable
from wayray.launcher.settings import LauncherSettings
from wayray.launcher.state import LiveSession, PeerConnection, RequestError, Tasks
from wayray.launcher.workers import Jobs

log = logging.getLogger("wayray.wrsessd")


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process on the other end of a Unix socket."""
    if sys.platform.startswith("linux"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return pid, uid
    # illumos has getpeerucred(3C); BSDs have getpeereid(3). Not wired up yet.
    raise OSError("peer credentials are only implemented for Linux")  # pragma: no cover


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
        self.records = SessionRecords(settings.state_dir)
        self.tasks = Tasks()
        self.table = SessionTable(settings, self.records, self.tasks, self._broadcast)
        self.connections: set[PeerConnection] = set()
        #: Open connections per uid, for the per-uid cap (control uids are not counted).
        self.open_by_uid: dict[int, int] = {}
        #: uid -> (when its last refusal was logged, refusals since), so a flood is one line a minute.
        self._cap_refusals: dict[int, tuple[float, int]] = {}
        self._server: asyncio.AbstractServer | None = None
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
        verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
        jobs = Jobs(settings, config_root)
        self.logins = Logins(settings, self.table, jobs, self.tasks, clock=clock, verbose=verbose)
        self.greeters = Greeters(self.logins, self.greeter_uid)

    @property
    def sessions(self) -> dict[str, LiveSession]:
        return self.table.sessions

    @property
    def on_change(self) -> Callable[[], None] | None:
        """Called whenever the set of sessions changes (the CLI updates sd_notify STATUS)."""
        return self.table.on_change

    @on_change.setter
    def on_change(self, callback: Callable[[], None] | None) -> None:
        self.table.on_change = callback

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self, listener: socket.socket) -> None:
        self.records.ensure()
        self.table.adopt()
        listener.setblocking(False)
        self._server = await asyncio.start_unix_server(
            self._serve_connection, sock=listener, limit=protocol.MAX_REQUEST_BYTES + 16
        )

    async def close(self) -> None:
        """Stop serving; cancel logins in progress; leave running sessions running — except those in
        wrsessd's own cgroup, which the service manager is about to kill: they are ended properly."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.login is not None:
                await self.logins.abort(conn)
            conn.writer.close()
        doomed = self.table.doomed()
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
            await asyncio.gather(*(self.table.end(s, EndReason.SHUTDOWN) for s in doomed))
        self.tasks.cancel_all()
        for s in self.sessions.values():
            if s.link is not None:
                s.link.close()

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
                await self.logins.abort(conn)
            writer.close()

    def connection_limit(self, uid: int) -> int:
        """How many connections ``uid`` (not a control uid) may hold open at once."""
        limit = self.settings.max_connections_per_uid
        if uid == self.greeter_uid:
            # Every login screen keeps a connection open; greeter sessions are created by control
            # requests only, so a greeter cannot raise its own allowance.
            limit += self.table.greeters()
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
                obj = await protocol.read_message(
                    reader,
                    protocol.MAX_REQUEST_BYTES,
                    idle_timeout=allowance,
                    frame_timeout=self.settings.frame_timeout_s,
                )
                if obj is None:
                    return
                request = protocol.parse_request(obj)
            except protocol.IdleTimeout:
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
                return await self.logins.create_session(conn, req)
            case protocol.PostAuthMessageResponse():
                return await self.logins.post_response(conn, req)
            case protocol.StartSession():
                return await self.logins.start_session(conn, req)
            case protocol.CancelSession():
                if conn.login is not None:
                    await self.logins.abort(conn)
                return protocol.Success()
            case protocol.CreateGreeterSession():
                return await self.greeters.create(req)
            case protocol.ListSessions():
                return self.table.listing()
            case protocol.KillSession():
                return await self._kill(req)
            case protocol.Subscribe():
                conn.subscribed = True
                return self.table.listing()
        raise RequestError(ErrorType.BAD_REQUEST, f"{req.type} is not handled")  # pragma: no cover

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

    # --- ending sessions ----------------------------------------------------------------------------

    async def _kill(self, req: protocol.KillSession) -> protocol.Message:
        live = self.sessions.get(req.session_id)
        if live is None:
            raise RequestError(ErrorType.NOT_FOUND, f"no session {req.session_id}")
        if await self.table.end(live, req.reason or EndReason.OPERATOR):
            return protocol.Success()
        raise RequestError(ErrorType.ERROR, f"session {req.session_id} did not end in time; see the logs")
