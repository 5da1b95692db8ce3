"""wrsrvd, the front door: QUIC viewers in, session compositors behind, the registry in between.

One :class:`FrontDoor` per server instance. It listens for viewers (``wayray.transport``), finds or
starts the session a viewer's token names (``wayray.server.registry``), and relays between the
viewer's connection and that session's compositor over the compositor's link (``wayray.link``):
finished wire frames from the compositor go to the viewer untouched (``send_encoded``), the viewer's
input, acknowledgements and requests go to the compositor. Nothing here decodes a pixel.

Sessions outlive viewers (a session without a viewer is *detached* and keeps running) and outlive
wrsrvd itself: their compositors are separate processes that reconnect to the next wrsrvd, which
finds them in its SQLite registry. A compositor that crashes ends its own session only. Every
viewer-side failure closes that viewer's connection with a reason; every link-side failure closes
that link with a reason; nothing a peer sends ends the daemon.

Standalone mode (and ``sessions = "command"``) starts each session's compositor itself (``wrsrvd
session … -- COMMAND`` as the server's user). Login mode (``sessions = "login"``) has the session
launcher, wrsessd, start them (``wayray.server.launcher``): a token without a session gets a *greeter
session* (our compositor with wrlogin in it, as the greeter user); when its login starts the user's
session, wrsrvd switches the viewer to the user's compositor on the same connection (keyframe first)
and ends the greeter. A session that needs its owner's password again (``reauth_on_reattach``) is
shown only after an *unlock greeter* succeeded. Sessions end through wrsessd, so PAM sessions close.

The front door is built from parts, each given the shared :class:`~wayray.server.table.SessionTable`
and the few other parts it calls: ``viewers`` (a viewer from its Hello to its end), ``attach`` (showing
a session on a viewer), ``links`` (compositors on the link socket), ``watch`` (the keep-alive, lost
links, compositors that do not come back), ``ending``, ``logins`` (login mode), ``gate`` (access key,
admission, a new session's size) and ``admin_requests``. This module starts and stops them, takes a
reload, and runs the policy timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import wayray
from wayray.common.errors import WayRayError
from wayray.common.files import refuse_directories_others_change, write_atomic
from wayray.common.notify import Notifier
from wayray.common.processes import pid_alive
from wayray.common.system import boot_time
from wayray.common.unixsock import bind_private_socket
from wayray.launcher import protocol as lp
from wayray.link import CloseCode
from wayray.server import access, spawn
from wayray.server import admin_protocol as ap
from wayray.server.admin import AdminServer
from wayray.server.admin_protocol import AdminError
from wayray.server.admin_requests import AdminRequests
from wayray.server.admission import Kind, estimate, source_of
from wayray.server.attach import Attacher
from wayray.server.ending import END_WAIT, Ending
from wayray.server.gate import Gate
from wayray.server.housekeeping import keep_house
from wayray.server.launcher import LauncherBridge
from wayray.server.links import LinkSide
from wayray.server.live import ServedSession
from wayray.server.logins import Logins
from wayray.server.model import EndReason, SessionState
from wayray.server.pooling import PoolMembership
from wayray.server.registry import Registry, RegistryError
from wayray.server.settings import FrontDoorSettings, Mode, WebSettings
from wayray.server.table import DRAINING_FILE, SessionTable
from wayray.server.tokens import TokenHasher
from wayray.server.usb import UsbSide
from wayray.server.viewers import ViewerSide
from wayray.server.watch import CompositorWatch
from wayray.transport import ServerIdentity, ServerSettings, TransportError, WireServer
from wayray.wire import ErrorCode

log = logging.getLogger("wayray.server")

Reloader = Callable[[], Awaitable[ap.Reloaded | ap.ReloadRefused]]


class FrontDoor:
    """A serving wrsrvd: made by :meth:`start`, ended by :meth:`stop`."""

    #: Settings a reload cannot change: they are bound at start (sockets, identity, the launcher).
    RESTART_ONLY = (
        "listen",
        "port",
        "state_dir",
        "runtime_dir",
        "admin_socket",
        "tls_cert",
        "tls_key",
        "client_ca",
        "access_key_file",
        "launcher_socket",
        "web",
        # The pool it joins, how its members are trusted, what they share: read at start.
        "pool",
        "pool_fingerprints",
        "pool_ca",
        "pool_key_file",
        "pool_previous_key_file",
        "pool_port",
        "pool_directory",
        "pool_etcd_ca",
        "pool_etcd_cert",
        "pool_etcd_key",
        "pool_weight",
    )

    def __init__(
        self,
        table: SessionTable,
        *,
        lock_fd: int,
        identity: ServerIdentity,
        hasher: TokenHasher,
        access_key: str | None,
        reloader: Reloader | None,
        config_digests: dict[str, str] | None,
    ) -> None:
        """Use :meth:`start`, which opens what this is given and then serves."""
        settings = table.settings
        self.table = table
        self.notifier = table.notifier
        self.identity = identity
        #: The access key viewers must present (``settings.access_key_file``), None: none.
        self.access_key = access_key
        #: Instance mode: what the running configuration is, for `wradm apply` (``status``'s
        #: ``config``): the digests of the settings that need a restart and of those a reload takes.
        #: wrsrvd's command line, which reloads the configuration, keeps it current.
        self.config_digests = config_digests
        self.port = settings.port
        self.servers: list[WireServer] = []
        #: The browser kiosk (``wayray.web.door.WebDoor``) when the settings enable it.
        self.web: Any = None
        #: The addresses it listens on (a default one that cannot be bound is left out).
        self.listening: list[str] = []
        self._lock_fd = lock_fd
        self._link_server: asyncio.AbstractServer | None = None  # listening from _serve() on
        #: Login mode: wrsessd. Its events go to the login part (see _launcher_event).
        self.bridge: LauncherBridge | None = None
        if settings.login:
            assert settings.launcher_socket is not None
            self.bridge = LauncherBridge(
                settings.launcher_socket, on_event=self._launcher_event, on_snapshot=self._launcher_snapshot
            )
        self.ending = Ending(table, self.bridge)
        self.watch = CompositorWatch(table, self.ending)
        self.gate = Gate(table, access_key)
        self.usb = UsbSide(table)
        self.attacher = Attacher(table, self.watch, self.usb)
        self.logins = (
            Logins(table, self.bridge, self.gate, self.attacher, self.ending)
            if self.bridge is not None
            else None
        )
        self.viewer_side = ViewerSide(
            table, hasher, self.gate, self.attacher, self.watch, self.ending, self.logins, usb=self.usb
        )
        self.link_side = LinkSide(table, self.watch, self.ending, self.logins)
        self.admin = AdminRequests(
            table,
            self.ending,
            status=self._status,
            reloader=reloader,
            drain=self.set_draining,
            pool=self._pool_members,
        )
        self._admin_server = AdminServer(settings.admin_socket, self.admin.answer)
        #: Its pool membership (``settings.pool``), from _serve() on; None: no pool.
        self.pool: PoolMembership | None = None

    @property
    def settings(self) -> FrontDoorSettings:
        return self.table.settings

    # --- start and stop ----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: FrontDoorSettings,
        *,
        notifier: Notifier | None = None,
        reloader: Reloader | None = None,
        config_digests: dict[str, str] | None = None,
    ) -> FrontDoor:
        """Open what the server keeps (its directories, lock, identity, keys and registry), then serve:
        the link and admin sockets, the launcher (login mode), the viewers' ports. A start that fails
        undoes what it did and raises (a WayRayError says why).

        ``reloader`` (instance mode) reloads the configuration for an admin "reload" request;
        ``config_digests`` is what ``status`` says of the running configuration."""
        notifier = notifier or Notifier(None)
        try:
            door = cls._open(settings, notifier, reloader, config_digests)
        except BaseException:
            notifier.stopping("stopping; sessions keep running")
            raise
        try:
            await door._serve()
        except BaseException:
            await door._stop(
                end_sessions=False
            )  # a failed start says why (wrsrvd: error: ...), not "stopped"
            raise
        return door

    @classmethod
    def _open(
        cls,
        settings: FrontDoorSettings,
        notifier: Notifier,
        reloader: Reloader | None,
        config_digests: dict[str, str] | None,
    ) -> FrontDoor:
        _private_dir(settings.state_dir, "state directory")
        _private_dir(settings.runtime_dir, "runtime directory")
        with contextlib.ExitStack() as undo:
            lock_fd = _lock(settings.lock_file)
            undo.callback(os.close, lock_fd)
            try:
                identity = ServerIdentity.load_or_create_files(
                    settings.tls_cert, settings.tls_key, name=settings.name
                )
                hasher = TokenHasher.load_or_create(settings.token_key, settings.previous_token_keys)
            except OSError as err:
                raise WayRayError(
                    f"{settings.state_dir}: cannot write the server's identity and token key: "
                    f"{err.strerror or err}",
                    hint=_room_hint(settings.state_dir, err),
                ) from None
            access_key = None
            if settings.access_key_file is not None:
                access_key = access.load_or_create(settings.access_key_file)
            now = time.time()
            registry = Registry.open(settings.registry_path, policy=settings.policy, now=now)
            undo.callback(registry.close)
            if registry.unwritable is not None:
                log.warning(
                    "%s; wrsrvd runs read-only: its sessions come back to their links and can be listed "
                    "and ended, but no session can start and no viewer attach until the state directory "
                    "%s has room again (a full disk? see df %s)",
                    registry.unwritable,
                    settings.state_dir,
                    settings.state_dir,
                )
            door = cls(
                SessionTable(settings, registry, notifier),
                lock_fd=lock_fd,
                identity=identity,
                hasher=hasher,
                access_key=access_key,
                reloader=reloader,
                config_digests=config_digests,
            )
            door._restore(now)
            undo.pop_all()
        return door

    async def _serve(self) -> None:
        settings = self.settings
        if settings.mode is Mode.INSTANCE and not settings.login:
            _private_dir(settings.session_runtime_dir, "sessions' runtime directory")
        if self.bridge is not None:
            # Compositors run as the greeter user and as each logged-in user: the link socket is
            # open to every local user, who must still present the session's secret from their own
            # uid (see LinkSide). The directory lets them through to it, but not list it.
            os.chmod(settings.runtime_dir, 0o711)
            link_sock = bind_private_socket(settings.link_socket, mode=0o666)
            self.bridge.start()
        else:
            link_sock = bind_private_socket(settings.link_socket)
        self._link_server = await asyncio.start_unix_server(
            self.link_side.on_link, sock=link_sock, limit=256 * 1024
        )
        await self._admin_server.start()
        if not settings.login:
            # New sessions are forked from a process that has imported the compositor (issue 15).
            spawn.start_session_parent()
        await self._listen()
        if settings.pool:
            self.pool = await PoolMembership.start(
                self.table, identity=self.identity, port=self.port, listening=self.listening
            )
            self.viewer_side.route = self.pool.route
            self.viewer_side.yielded = self.pool.yielded
        self.table.spawn(self._policy_timer(), "policy-timer")
        self.table.spawn(keep_house(self.table), "housekeeping")
        self.notifier.ready(self.status_line())
        watchdog = self.notifier.start_watchdog()
        if watchdog is not None:
            self.table.tasks.add(watchdog)
        log.info(
            "wrsrvd %s (%s) serving on UDP port %d, identity %s; %d session(s) restored; %s",
            settings.name,
            settings.mode,
            self.port,
            self.identity.fingerprint,
            len(self.table.live),
            self._who_may_connect(),
        )

    def _who_may_connect(self) -> str:
        settings = self.settings
        how = []
        if self.access_key is not None:
            how.append(f"the access key in {settings.access_key_file}")
        if settings.client_ca is not None:
            how.append(f"a client certificate from {settings.client_ca}")
        if settings.login:
            how.append("a login")
        if how:
            return "sessions need " + " and ".join(how)
        return "sessions need no authentication (loopback only)"

    async def _listen(self) -> None:
        settings = self.settings
        port = settings.port
        for host in settings.listen:
            server_settings = ServerSettings(
                identity=self.identity,
                host=host,
                port=port,
                wire=settings.wire,
                client_ca=settings.client_ca,
                server_name="wrsrvd",
                server_version=wayray.__version__,
            )
            try:
                server = await WireServer.start(server_settings, self.viewer_side.handle)
            except TransportError:
                if host == "::1" and len(settings.listen) > 1:
                    log.warning("cannot listen on [::1] (no IPv6 here?); listening on the other addresses")
                    continue
                if host != "::" or len(settings.listen) != 1:
                    raise
                # A host without IPv6: the default "every address" falls back to every IPv4 one.
                log.warning("cannot listen on [::] (no IPv6 here?); listening on 0.0.0.0 instead")
                server_settings = dataclasses.replace(server_settings, host="0.0.0.0")
                server = await WireServer.start(server_settings, self.viewer_side.handle)
            self.servers.append(server)
            self.listening.append(server_settings.host)
            port = server.port
        self.port = port
        if settings.web.enabled:
            await self._listen_web(settings.web, server_settings)

    async def _listen_web(self, web: WebSettings, server_settings: ServerSettings) -> None:
        """The browser kiosk on the same addresses: its WebTransport sessions are viewers like QUIC
        ones, handed to the same ViewerSide (docs/web-kiosk.md)."""
        from wayray.web.door import WebDoor, WebDoorConfig

        settings = self.settings
        if not settings.login and self.access_key is None:
            # wradm check says so first; this holds whatever the settings came from.
            raise WayRayError(
                "the browser kiosk needs an access key when sessions start without a login: browsers "
                "present no client certificate",
                hint="set admission.access_key_file, or web.enabled = false",
            )
        site = web.cert is not None and web.key is not None
        config = WebDoorConfig(
            port=web.port,
            page_cert=web.cert if site and web.cert is not None else settings.tls_cert,
            page_key=web.key if site and web.key is not None else settings.tls_key,
            site=site,
        )
        self.web = await WebDoor.start(
            config,
            name=settings.name,
            hosts=self.listening,
            server=server_settings,
            handler=self.viewer_side.handle,
        )

    async def stop(self, *, end_sessions: bool = False) -> None:
        """Stop serving. Sessions keep running (they reconnect to the next wrsrvd) unless
        ``end_sessions`` (standalone Ctrl-C): then each is ended and waited for briefly."""
        if self.table.stopping:
            return
        await self._stop(end_sessions=end_sessions)
        log.info("wrsrvd %s stopped", self.settings.name)

    async def _stop(self, *, end_sessions: bool) -> None:
        table = self.table
        table.stopping = True
        self.notifier.stopping("ending sessions" if end_sessions else "stopping; sessions keep running")
        if end_sessions:
            await self._end_all_sessions()
        if self.pool is not None:  # first: kiosks stop choosing this member
            self.viewer_side.route = None
            await self.pool.stop()
            self.pool = None
        for server in self.servers:
            await server.close(ErrorCode.SERVER_SHUTDOWN, "the server is stopping; try again in a moment")
        self.servers.clear()
        if self.web is not None:
            await self.web.close(ErrorCode.SERVER_SHUTDOWN, "the server is stopping; try again in a moment")
            self.web = None
        for session in table.live.values():
            if session.link is not None:
                session.link.close(CloseCode.SHUTDOWN, "wrsrvd is stopping")
            if session.process is not None:
                session.process.detach()
        spawn.stop_session_parent()
        if self._link_server is not None:
            self._link_server.close()
            self._link_server = None
            self.settings.link_socket.unlink(missing_ok=True)
        await self._admin_server.close()
        if self.bridge is not None:
            await self.bridge.close()
        for task in list(table.tasks):
            task.cancel()
        if table.tasks:
            await asyncio.wait(list(table.tasks), timeout=2)
        table.closed = True
        table.registry.close()
        os.close(self._lock_fd)

    async def _end_all_sessions(self) -> None:
        """Standalone Ctrl-C: end every session, and wait for them briefly."""
        waits = []
        for session in list(self.table.live.values()):
            if session.process is not None:
                waits.append(session.process.exited.wait())
            self.ending.end_session(session, EndReason.OPERATOR, "the server was stopped")
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), END_WAIT)

    def reload(self, settings: FrontDoorSettings) -> list[str]:
        """Take what can change without a restart (policy, limits, what new sessions run); returns
        the settings that changed but need a restart (they keep their running values)."""
        old = self.settings
        keep = self.RESTART_ONLY
        changed = [name for name in keep if getattr(old, name) != getattr(settings, name)]
        if changed:
            log.warning("restart wrsrvd to apply the changes to: %s", ", ".join(changed))
        # The command line's --usb-sockets is no configuration: it stays as wrsrvd was started.
        new = dataclasses.replace(
            settings, usb_sockets=old.usb_sockets, **{name: getattr(old, name) for name in keep}
        )
        self.table.settings = new
        self.table.registry.policy = new.policy
        self.gate.admission.limits = new.admission
        self.table.timer_wake.set()
        self.usb.reloaded()
        log.info("configuration reloaded")
        return changed

    # --- status ------------------------------------------------------------------------------------

    def status_line(self) -> str:
        return self.table.status_line()

    def _status(self) -> ap.StatusAnswer:
        """The admin socket's ``status`` answer."""
        settings = self.settings
        table = self.table
        return ap.StatusAnswer(
            name=settings.name,
            mode=str(settings.mode),
            sessions_start=ap.SessionsStart.LOGIN if settings.login else ap.SessionsStart.COMMAND,
            launcher=None
            if self.bridge is None
            else ap.LauncherLink(socket=str(self.bridge.path), connected=self.bridge.subscribed.is_set()),
            version=wayray.__version__,
            pid=os.getpid(),
            listen=tuple(self.listening or settings.listen),
            port=self.port,
            fingerprint=self.identity.fingerprint,
            sessions=len(table.live),
            by_state=self.admin.by_state(),
            viewers=self.admin.viewer_count(),
            access_key=self.access_key is not None,
            # What a viewer must present: the key's file and the client CA (paths, no secret).
            access_key_file=None if self.access_key is None else str(settings.access_key_file),
            client_ca=None if settings.client_ca is None else str(settings.client_ca),
            not_responding=tuple(
                sorted(session.id for session in table.live.values() if not session.responding)
            ),
            unlocking=len(table.unlocking),
            max_sessions=settings.max_sessions,
            draining=table.draining,
            pool=None
            if self.pool is None
            else ap.PoolStatus(
                name=settings.pool,
                member=self.pool.advertiser.member_id,
                announced_as=self.pool.advertiser.instance_name,
                announcements=self.pool.advertiser.updates + 1,
                shares_directory=self.pool.shared is not None,
                key_refused=self.pool.key_refusal(),
                refused_members=tuple(f"{name} ({mid})" for mid, name, _ in self.pool.refused_members()),
            ),
            policy=ap.Policy(
                detached_timeout_s=settings.policy.detached_timeout_s,
                idle_timeout_s=settings.policy.idle_timeout_s,
                reauth_on_reattach=settings.policy.reauth_on_reattach,
            ),
            config=None
            if self.config_digests is None
            else ap.Configuration(digests=ap.Digests(**self.config_digests)),
        )

    def set_draining(self, draining: bool) -> bool:
        """Drain (no new session starts here; kept across restarts) or take new sessions again."""
        table = self.table
        marker = self.settings.state_dir / DRAINING_FILE
        if draining:
            write_atomic(marker, b"drained by an operator (wradm server drain)\n")
        else:
            marker.unlink(missing_ok=True)
        if table.draining != draining:
            table.draining = draining
            log.info(
                "%s: %s",
                self.settings.name,
                "drained: it keeps its sessions and takes no new ones"
                if draining
                else "undrained: it takes new sessions again",
            )
            table.changed()
        return draining

    async def _pool_members(self, sessions: bool) -> ap.PoolAnswer:
        if self.pool is None:
            raise AdminError(f"{self.settings.name} is in no pool (servers.toml's pool)")
        return self.pool.members_answer(await self.pool.sessions_answer() if sessions else None)

    # --- wrsessd's word, for the login part --------------------------------------------------------

    def _launcher_event(self, event: lp.SessionEvent) -> None:
        if self.logins is not None:  # always: the bridge and the login part exist together
            self.logins.launcher_event(event)

    def _launcher_snapshot(self, sessions: tuple[lp.SessionInfo, ...]) -> None:
        if self.logins is not None:
            self.logins.launcher_snapshot(sessions)

    # --- restoring after a restart -----------------------------------------------------------------

    def _restore(self, now: float) -> None:
        table = self.table
        grace = time.monotonic() + self.settings.relink_grace
        for record in table.registry.live_sessions():
            pid = record.endpoint.compositor_pid
            if pid is not None and not pid_alive(pid):
                # One made before this boot ended with the machine (wrsrvd was stopped before it).
                booted = boot_time()
                rebooted = booted is not None and record.created_at < booted
                reason = EndReason.SHUTDOWN if rebooted else EndReason.COMPOSITOR_LOST
                why = "the machine restarted since" if rebooted else "ending it"
                log.info("session %s: its compositor (pid %d) is gone; %s", record.id, pid, why)
                try:
                    table.registry.end(record.id, reason, now)
                except RegistryError as err:  # a full disk: the next start with room records it
                    log.warning("session %s: %s", record.id, err)
                continue
            kind = Kind.LOGIN_SCREEN if record.state is SessionState.GREETER else Kind.SESSION
            table.live[record.id] = ServedSession(
                record.id,
                pid=pid,
                relink_by=grace,
                launcher_session=record.endpoint.launcher_session,
                uid=record.endpoint.uid,
                source=source_of(record.last_viewer.rpartition("#")[0]) if record.last_viewer else "",
                kind=kind,
                memory=estimate(kind, 0, 0),  # its output is known once it is back on its link
            )

    # --- the policy timer --------------------------------------------------------------------------

    async def _policy_timer(self) -> None:
        """Carry out the session policy (detached and idle timeouts) and the relink grace."""
        table = self.table
        while True:
            now = time.time()
            for action in table.registry.due_actions(now):
                session = table.live.get(action.session_id)
                if session is not None:
                    self.ending.end_session(session, action.reason, f"the policy ended it ({action.reason})")
                    continue
                try:  # recorded but not running here: only the record is left to end
                    table.registry.end(action.session_id, action.reason, now)
                except RegistryError as err:
                    log.warning("session %s: %s", action.session_id, err)
            mono = time.monotonic()
            for session in list(table.live.values()):
                if (
                    session.relink_by is not None
                    and not session.linked.is_set()
                    and mono > session.relink_by
                ):
                    self.watch.relink_overdue(session)
            deadlines = [d - time.time() for d in [table.registry.next_deadline()] if d is not None]
            deadlines += [
                session.relink_by - mono for session in table.live.values() if session.relink_by is not None
            ]
            wait = max(0.05, min([60.0, *deadlines]))
            table.timer_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(table.timer_wake.wait(), wait)


# --- helpers -----------------------------------------------------------------------------------------


def _private_dir(path: Path, what: str) -> None:
    """Make ``path`` (0700) if needed; refuse one that others could change or that is not ours, and
    one below a directory others could change (they could swap it for their own: docs/link.md §1).
    ``what``: "state directory", "runtime directory"..."""
    refuse_directories_others_change(
        path,
        f"the {what} {path}",
        hint=f"use a {what} whose parent directories belong to root or to you and are not writable by "
        "others (sticky ones such as /tmp are fine)",
    )
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise WayRayError(f"{path}: cannot make the {what}: {err.strerror}") from None
    st = path.stat()
    if st.st_uid != os.geteuid():
        raise WayRayError(f"{path} belongs to uid {st.st_uid}, not to this server's user ({os.geteuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WayRayError(
            f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"run: chmod 700 {path}",
        )


def _lock(path: Path) -> int:
    """Hold the state directory (one wrsrvd per directory). The lock is the flock; the pid written in
    the file is only for the message another wrsrvd gives, so a full disk does not stop a start."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise WayRayError(
            f"{path}: cannot open wrsrvd's lock file: {err.strerror or err}",
            hint=_room_hint(path.parent, err),
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise WayRayError(
            f"another wrsrvd{f' (pid {other})' if other else ''} uses the state directory {path.parent}",
            hint="stop it first, or give this one its own --state-dir and --runtime-dir",
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as err:
        log.warning(
            "%s: cannot write wrsrvd's pid into its lock file (%s); locked all the same", path, err.strerror
        )
    return fd


def _room_hint(directory: Path, err: OSError) -> str | None:
    """What to do about a write that failed in ``directory``, when it is about room."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on the file system of {directory} (df -h {directory}), then start wrsrvd again"
    return None
