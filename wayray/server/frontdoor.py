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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import functools
import hmac
import itertools
import logging
import os
import secrets
import signal
import stat
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import wayray
from wayray.common.errors import WayRayError
from wayray.common.files import refuse_directories_others_change
from wayray.common.notify import Notifier
from wayray.common.system import boot_time, system_stopping
from wayray.common.unixsock import bind_private_socket
from wayray.launcher import protocol as lp
from wayray.link import (
    LINK_VERSION,
    Attach,
    Attached,
    Close,
    CloseCode,
    Detach,
    End,
    Ended,
    LinkError,
    LinkRole,
    OutputChanged,
    Pong,
    Register,
    Screenshot,
    ScreenshotFailed,
    ScreenshotResult,
    ToSession,
    ToViewer,
    Welcome,
)
from wayray.link.keepalive import Change, LinkKeepAlive
from wayray.link.protocol import MAX_REGISTER_BODY, MIN_LINK_VERSION, PING_LINK_VERSION
from wayray.link.stream import LinkOverflow, LinkStream
from wayray.server import access
from wayray.server.admin import AdminError, AdminServer
from wayray.server.admission import (
    GREETER_MAX_PIXELS,
    Admission,
    Holding,
    Kind,
    estimate,
    fit_output,
    source_of,
)
from wayray.server.launcher import LauncherBridge
from wayray.server.live import LiveSession, SessionNotResponding, Viewer, sha256_hex
from wayray.server.logins import LAUNCHER_REASONS, LoginMode
from wayray.server.model import Endpoint, EndReason, Session, SessionState, kiosk_of
from wayray.server.registry import Outcome, Registry, RegistryError
from wayray.server.settings import FrontDoorSettings, Mode
from wayray.server.spawn import SessionSpec, is_session_process, make_sure_it_ends, pid_alive, start_session
from wayray.server.tokens import TokenHasher, TokenKind
from wayray.transport import (
    ConnectionClosedError,
    ServerConnection,
    ServerIdentity,
    ServerSettings,
    TransportError,
    WireServer,
)
from wayray.wire import (
    SCALE_ONE,
    Channel,
    ClipboardText,
    ErrorCode,
    Key,
    KeyframeReason,
    KeyframeRequest,
    KeymapUpdate,
    PointerAxis,
    PointerButton,
    PointerMotion,
    ResizeRequest,
    SessionEvent,
    SessionEventKind,
    WireUsageError,
    encode_message,
    spec_of,
)
from wayray.wire import TokenKind as WireTokenKind
from wayray.wire.framing import parse_header
from wayray.wire.protocol import HELLO_CREDENTIALS

log = logging.getLogger("wayray.server")
#: Ends nobody asked for: at a shutdown they are the shutdown's doing, and recorded as such.
UNPLANNED_ENDS = frozenset({EndReason.COMMAND_EXITED, EndReason.COMPOSITOR_LOST, EndReason.LAUNCHER_ENDED})

#: How the wire's token kinds map to the registry's (and the policy's ``tokens``). A software token
#: (given on a command line or in a file) follows whoever presents it, as a badge does, so it counts
#: as a badge: a policy that accepts only terminals refuses it.
TOKEN_KINDS = {
    WireTokenKind.BADGE: TokenKind.BADGE,
    WireTokenKind.TERMINAL: TokenKind.TERMINAL,
    WireTokenKind.SOFTWARE: TokenKind.BADGE,
}
ATTACH_TIMEOUT = 15.0
#: Link connections one uid may hold open before registering. The link socket is open to every local
#: user in login mode; each such connection costs a descriptor for up to 10 s (more while a login
#: event is awaited), and wrsrvd has about a thousand of them for everything it does.
MAX_UNREGISTERED_LINKS = 8
SCREENSHOT_TIMEOUT = 20.0
END_WAIT = 8.0
#: How much may wait on a session's link (unread by its compositor) for a viewer's message to be
#: relayed; a viewer that would go past it is closed (see FrontDoor._relay). 512 KiB is some 24,000
#: keys (a person types 20 a second; a compositor takes 50,000 a second once it runs again); the big,
#: rare messages (clipboard text up to 1 MiB, keymaps) may find more. Either stays far below the
#: link's own limit (WRITE_LIMIT, 32 MiB), which is left to wrsrvd's messages (keep-alive, End).
VIEWER_BACKLOG = 512 * 1024
BIG_VIEWER_BACKLOG = 4 * 1024 * 1024
_BIG_FROM_VIEWERS = (ClipboardText, KeymapUpdate)
#: After a link drops without Ended: how long to wait for the compositor process to be seen gone.
LINK_LOSS_GRACE = 1.0
#: Switching a viewer to another compositor: how long it may take to acknowledge the frames it has.
DRAIN_TIMEOUT = 5.0
_CLIPBOARD_TYPE = spec_of(ClipboardText(selection=0, text="")).number  # type: ignore[arg-type]
_INPUT = (Key, PointerMotion, PointerButton, PointerAxis)
#: Input not relayed to a compositor that does not respond: it comes at a rate that would pile up in
#: the link's buffer, and is stale when the compositor wakes. Keys and buttons still go (a release
#: must follow its press), at a person's pace.
_DROPPED_WHILE_HUNG = (PointerMotion, PointerAxis)
_NOT_RESPONDING_REFUSAL = "the session is not responding; waiting for it (trying again)"
#: The wire version that knows SessionEvent NOT_RESPONDING and RESPONDING.
_NOT_RESPONDING_EVENTS = (1, 1)
#: Refusals (no access key, a source over its limits) are logged once per source this often; the
#: ones in between are counted in the next line. A stranger hammering the port fills no disk.
REFUSAL_LOG_INTERVAL = 60.0


class FrontDoor(LoginMode):
    def __init__(self, settings: FrontDoorSettings, *, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.notifier = notifier or Notifier(None)
        self.identity: ServerIdentity | None = None
        self.registry: Registry | None = None
        self.hasher: TokenHasher | None = None
        self.live: dict[str, LiveSession] = {}
        self.viewers: set[Viewer] = set()
        self.servers: list[WireServer] = []
        self.port = settings.port
        self._link_server: asyncio.AbstractServer | None = None
        self._admin: AdminServer | None = None
        self._lock_fd: int | None = None
        self._viewer_numbers = itertools.count(1)
        self._screenshot_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_wake = asyncio.Event()
        self.stopping = False
        #: Login mode: wrsessd.
        self.bridge: LauncherBridge | None = None
        #: Login mode: unlock greeters shown to viewers, by their (link) id.
        self.unlocking: dict[str, LiveSession] = {}
        #: Links of compositors a session no longer uses (a greeter after its login): ignored.
        self._retired: set[LinkStream] = set()
        #: Login mode: link session ids of greeters wrsessd is starting. Their compositor may register
        #: before wrsessd's answer is in: it waits until the session is recorded (the event is set).
        self._starting: dict[str, asyncio.Event] = {}
        #: Link connections that have not registered yet, by peer uid (see MAX_UNREGISTERED_LINKS).
        self._unregistered: Counter[int | None] = Counter()
        #: start() got through: stop() has something to report.
        self._serving = False
        #: The access key viewers must present (``settings.access_key_file``), None: none.
        self.access_key: str | None = None
        #: Per-source and memory limits on new sessions; what is being started right now counts too.
        self.admission = Admission(settings.admission)
        self._pending: dict[str, Holding] = {}
        #: Refusal log lines: source → (when last logged, refusals not logged since).
        self._refusals: dict[str, tuple[float, int]] = {}
        #: The addresses it listens on (a default one that cannot be bound is left out).
        self.listening: list[str] = []
        #: Instance mode: reloads the configuration and answers an admin "reload" request (set by
        #: wrsrvd's command line, which knows where the configuration is).
        self.reloader: Callable[[], Awaitable[dict[str, Any]]] | None = None
        #: Instance mode: what the running configuration is, for `wradm apply` (``status``'s
        #: ``config``): the digests of the settings that need a restart and of those a reload takes.
        self.config_digests: dict[str, str] | None = None

    # --- start and stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        _private_dir(s.state_dir, "state directory")
        _private_dir(s.runtime_dir, "runtime directory")
        self._lock_fd = _lock(s.lock_file)
        try:
            self.identity = ServerIdentity.load_or_create_files(s.tls_cert, s.tls_key, name=s.name)
            self.hasher = TokenHasher.load_or_create(s.token_key)
        except OSError as err:
            raise WayRayError(
                f"{s.state_dir}: cannot write the server's identity and token key: {err.strerror or err}",
                hint=_room_hint(s.state_dir, err),
            ) from None
        if s.access_key_file is not None:
            self.access_key = access.load_or_create(s.access_key_file)
        now = time.time()
        self.registry = Registry.open(s.registry_path, policy=s.policy, now=now)
        if self.registry.unwritable is not None:
            log.warning(
                "%s; wrsrvd runs read-only: its sessions come back to their links and can be listed and "
                "ended, but no session can start and no viewer attach until the state directory %s has "
                "room again (a full disk? see df %s)",
                self.registry.unwritable,
                s.state_dir,
                s.state_dir,
            )
        self._restore(now)
        if s.mode is Mode.INSTANCE and not s.login:
            _private_dir(s.session_runtime_dir, "sessions' runtime directory")
        if s.login:
            # Compositors run as the greeter user and as each logged-in user: the link socket is
            # open to every local user, who must still present the session's secret from their own
            # uid (see _register). The directory lets them through to it, but not list it.
            os.chmod(s.runtime_dir, 0o711)
            link_sock = bind_private_socket(s.link_socket, mode=0o666)
            assert s.launcher_socket is not None
            self.bridge = LauncherBridge(
                s.launcher_socket, on_event=self._launcher_event, on_snapshot=self._launcher_snapshot
            )
            self.bridge.start()
        else:
            link_sock = bind_private_socket(s.link_socket)
        self._link_server = await asyncio.start_unix_server(self._on_link, sock=link_sock, limit=256 * 1024)
        self._admin = AdminServer(s.admin_socket, self._admin_request)
        await self._admin.start()
        await self._listen()
        self._spawn(self._policy_timer(), "policy-timer")
        self.notifier.ready(self.status_line())
        watchdog = self.notifier.start_watchdog()
        if watchdog is not None:
            self._tasks.add(watchdog)
        self._serving = True
        log.info(
            "wrsrvd %s (%s) serving on UDP port %d, identity %s; %d session(s) restored; %s",
            s.name,
            s.mode,
            self.port,
            self.identity.fingerprint,
            len(self.live),
            self._who_may_connect(),
        )

    def _who_may_connect(self) -> str:
        s = self.settings
        how = []
        if self.access_key is not None:
            how.append(f"the access key in {s.access_key_file}")
        if s.client_ca is not None:
            how.append(f"a client certificate from {s.client_ca}")
        if s.login:
            how.append("a login")
        if how:
            return "sessions need " + " and ".join(how)
        return "sessions need no authentication (loopback only)"

    async def _listen(self) -> None:
        s = self.settings
        assert self.identity is not None
        port = s.port
        for host in s.listen:
            settings = ServerSettings(
                identity=self.identity,
                host=host,
                port=port,
                wire=s.wire,
                client_ca=s.client_ca,
                server_name="wrsrvd",
                server_version=wayray.__version__,
            )
            try:
                server = await WireServer.start(settings, self._handle_viewer)
            except TransportError:
                if host == "::1" and len(s.listen) > 1:
                    log.warning("cannot listen on [::1] (no IPv6 here?); listening on the other addresses")
                    continue
                if host != "::" or len(s.listen) != 1:
                    raise
                # A host without IPv6: the default "every address" falls back to every IPv4 one.
                log.warning("cannot listen on [::] (no IPv6 here?); listening on 0.0.0.0 instead")
                settings = dataclasses.replace(settings, host="0.0.0.0")
                server = await WireServer.start(settings, self._handle_viewer)
            self.servers.append(server)
            self.listening.append(settings.host)
            port = server.port
        self.port = port

    async def stop(self, *, end_sessions: bool = False) -> None:
        """Stop serving. Sessions keep running (they reconnect to the next wrsrvd) unless
        ``end_sessions`` (standalone Ctrl-C): then each is ended and waited for briefly."""
        if self.stopping:
            return
        self.stopping = True
        self.notifier.stopping("ending sessions" if end_sessions else "stopping; sessions keep running")
        if end_sessions:
            waits = []
            for ls in list(self.live.values()):
                if ls.process is not None:
                    waits.append(ls.process.exited.wait())
                self._end_session(ls, EndReason.OPERATOR, "the server was stopped")
            if waits:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*waits), END_WAIT)
        for server in self.servers:
            await server.close(ErrorCode.SERVER_SHUTDOWN, "the server is stopping; try again in a moment")
        self.servers.clear()
        for ls in self.live.values():
            if ls.link is not None:
                ls.link.close(CloseCode.SHUTDOWN, "wrsrvd is stopping")
            if ls.process is not None:
                ls.process.detach()
        if self._link_server is not None:
            self._link_server.close()
            self._link_server = None
            self.settings.link_socket.unlink(missing_ok=True)
        if self._admin is not None:
            await self._admin.close()
        if self.bridge is not None:
            await self.bridge.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self.registry is not None:
            self.registry.close()
            self.registry = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._serving:  # one that failed to start says why (wrsrvd: error: ...), not this
            log.info("wrsrvd %s stopped", self.settings.name)

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
    )

    def reload(self, settings: FrontDoorSettings) -> list[str]:
        """Take what can change without a restart (policy, limits, what new sessions run); returns
        the settings that changed but need a restart (they keep their running values)."""
        old = self.settings
        keep = self.RESTART_ONLY
        changed = [name for name in keep if getattr(old, name) != getattr(settings, name)]
        if changed:
            log.warning("restart wrsrvd to apply the changes to: %s", ", ".join(changed))
        self.settings = type(old)(**{**settings.__dict__, **{k: getattr(old, k) for k in keep}})
        if self.registry is not None:
            self.registry.policy = self.settings.policy
        self.admission.limits = self.settings.admission
        self._timer_wake.set()
        log.info("configuration reloaded")
        return changed

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # --- status ------------------------------------------------------------------------------------

    def status_line(self) -> str:
        sessions = len(self.live)
        viewers = sum(1 for ls in [*self.live.values(), *self.unlocking.values()] if ls.viewer is not None)
        return f"{sessions} session{'s' * (sessions != 1)}, {viewers} viewer{'s' * (viewers != 1)}"

    def _changed(self) -> None:
        self.notifier.status(self.status_line())
        self._timer_wake.set()

    # --- restoring after a restart -----------------------------------------------------------------

    def _restore(self, now: float) -> None:
        assert self.registry is not None
        grace = time.monotonic() + self.settings.relink_grace
        for s in self.registry.live_sessions():
            pid = s.endpoint.compositor_pid
            if pid is not None and not pid_alive(pid):
                # One made before this boot ended with the machine (wrsrvd was stopped before it).
                booted = boot_time()
                rebooted = booted is not None and s.created_at < booted
                reason = EndReason.SHUTDOWN if rebooted else EndReason.COMPOSITOR_LOST
                why = "the machine restarted since" if rebooted else "ending it"
                log.info("session %s: its compositor (pid %d) is gone; %s", s.id, pid, why)
                try:
                    self.registry.end(s.id, reason, now)
                except RegistryError as err:  # a full disk: the next start with room records it
                    log.warning("session %s: %s", s.id, err)
                continue
            kind = Kind.LOGIN_SCREEN if s.state is SessionState.GREETER else Kind.SESSION
            self.live[s.id] = LiveSession(
                s.id,
                pid=pid,
                relink_by=grace,
                launcher_session=s.endpoint.launcher_session,
                uid=s.endpoint.uid,
                source=source_of(s.last_viewer.rpartition("#")[0]) if s.last_viewer else "",
                kind=kind,
                memory=estimate(kind, 0, 0),  # its output is known once it is back on its link
            )

    # --- viewers -----------------------------------------------------------------------------------

    async def _handle_viewer(self, conn: ServerConnection) -> None:
        if self.stopping:
            conn.close(ErrorCode.SERVER_SHUTDOWN, "the server is stopping")
            return
        assert self.registry is not None and self.hasher is not None
        hello = conn.hello
        source = source_of(conn.peer_address, conn.client_subject)
        if self.access_key is not None and not access.matches(self.access_key, hello.access_key):
            self._refuse_access(conn, source)
            return
        try:
            token = self.hasher.ref(TOKEN_KINDS[hello.token_kind], hello.token)
        except ValueError as err:
            conn.close(ErrorCode.TOKEN_REJECTED, f"the token cannot be used: {err}")
            return
        viewer = Viewer(
            conn,
            f"{conn.peer_address}#{next(self._viewer_numbers)}",
            kiosk=self.hasher.kiosk(hello.terminal_id, conn.client_subject),
            source=source,
        )
        version = conn.version or (hello.version_major, hello.version_minor)
        log.info(
            "%s: %s %s (protocol %d.%d) presents token %s%s; screen %dx%d",
            conn.peer_address,
            _printable(hello.client_name) or "a viewer",
            _printable(hello.client_version),
            version[0],
            version[1],
            token.short,
            f" from {viewer.kiosk[:14]}" if viewer.kiosk else " (no kiosk identity)",
            hello.screen_width,
            hello.screen_height,
        )
        known = self.registry.by_token(token)
        hung = self.live.get(known.id) if known is not None else None
        if hung is not None and not hung.responding:
            # Before the registry records a move: the viewer that shows the session keeps it.
            log.info("%s: token %s: session %s is not responding; refused for now", conn.peer_address,
                     token.short, hung.id)  # fmt: skip
            conn.close(ErrorCode.SERVER_BUSY, _NOT_RESPONDING_REFUSAL)
            return
        now = time.time()
        try:
            p = self.registry.present(token, viewer.key, now, kiosk=viewer.kiosk)
        except RegistryError as err:  # disk full, damaged file: this viewer is told, the server carries on
            log.error("%s: %s", conn.peer_address, err)
            conn.close(ErrorCode.SERVER_BUSY, "the server cannot record sessions now; see its log")
            return
        if p.outcome is Outcome.REFUSED:
            conn.close(ErrorCode.TOKEN_REJECTED, p.reason or "this server does not accept the token")
            return
        if p.outcome is Outcome.REAUTH_REQUIRED:
            if self.bridge is None:  # the policy has it off without logins; be safe anyway
                conn.close(
                    ErrorCode.TOKEN_REJECTED,
                    "the session needs its owner's password, which this server cannot ask",
                )
                return
            assert p.session is not None
            ls = await self._unlock_greeter(token, viewer, conn, p.session)
            if ls is None:
                return
            resumed = False
        elif p.outcome is Outcome.NEW_GREETER:
            resumed = False
            if self.bridge is not None:
                ls = await self._new_greeter(token, viewer, conn)
            else:
                ls = await self._new_session(token, viewer, conn)
            if ls is None:
                return
        else:
            resumed = True
            assert p.session is not None
            ls = self.live.get(p.session.id)
            if ls is None:  # in the registry but not known at run time: cannot happen, but be safe
                ls = self.live[p.session.id] = LiveSession(p.session.id, relink_by=time.monotonic())
            log.info(
                "%s: token %s %s session %s",
                conn.peer_address,
                token.short,
                "moves" if p.outcome is Outcome.MOVED else "resumes",
                ls.id,
            )
        self.viewers.add(viewer)
        try:
            await self._serve_viewer(viewer, ls, resumed)
        finally:
            self.viewers.discard(viewer)
            self._viewer_left(viewer)
            if ls.id in self.unlocking and ls.viewer in (None, viewer):
                self._end_transient(ls, "the viewer left before the session was unlocked")

    async def _new_session(self, token: Any, viewer: Viewer, conn: ServerConnection) -> LiveSession | None:
        assert self.registry is not None
        s = self.settings
        if len(self.live) >= s.max_sessions:
            conn.close(
                ErrorCode.SERVER_BUSY,
                f"this server hosts its limit of {s.max_sessions} sessions; try another server or later",
            )
            return None
        size, scale = self._output_for(conn, Kind.SESSION)
        refusal = self._admit(viewer, Kind.SESSION, size)
        if refusal is not None:
            conn.close(ErrorCode.SERVER_BUSY, refusal)
            return None
        secret = secrets.token_urlsafe(32)
        sid = secrets.token_hex(8)
        endpoint = Endpoint(link=str(s.link_socket), link_secret_sha256=sha256_hex(secret))
        try:
            self.registry.create_session(
                token, viewer.key, _user(), endpoint, time.time(), session_id=sid, kiosk=viewer.kiosk
            )
        except RegistryError as err:
            conn.close(ErrorCode.SERVER_BUSY, f"cannot start a session now: {err}")
            return None
        ls = LiveSession(sid, source=viewer.source, kind=Kind.SESSION, memory=estimate(Kind.SESSION, *size))
        self.live[sid] = ls
        spec = SessionSpec(
            session_id=sid,
            secret=secret,
            link=s.link_socket,
            runtime_dir=s.session_runtime_dir,
            command=s.session_command,
            size=size,
            scale=scale,
            fps=s.fps,
            idle_fps=s.idle_fps,
            video=s.video,
            orphan_timeout=s.policy.detached_timeout_s,
            log_dir=s.session_log_dir,
            max_pixels=s.max_pixels,
        )
        try:
            ls.process = start_session(spec, functools.partial(self._process_exited, ls))
        except OSError as err:
            log.error("cannot start a session: %s", err)
            self._finish(ls, EndReason.START_FAILED, f"the session could not be started: {err}")
            conn.close(ErrorCode.INTERNAL_ERROR, "the session could not be started; see the server's log")
            return None
        ls.pid = ls.process.pid
        self.registry.set_endpoint(
            sid, Endpoint(**{**endpoint.__dict__, "compositor_pid": ls.pid}), time.time()
        )
        ls.relink_by = time.monotonic() + s.start_timeout
        log.info(
            "%s: token %s gets a new session %s (%dx%d, %s)",
            conn.peer_address,
            token.short,
            sid,
            size[0],
            size[1],
            " ".join(s.session_command),
        )
        self._changed()
        return ls

    def _output_for(self, conn: ServerConnection, kind: Kind) -> tuple[tuple[int, int], int]:
        """The output a new session starts with: the viewer's screen when it says one it can drive,
        made to fit the pixels a session of ``kind`` may have (a larger screen gets the largest
        output of its shape that fits; the viewer scales the picture)."""
        s = self.settings
        hello = conn.hello
        size = (hello.screen_width, hello.screen_height)
        if not (320 <= size[0] <= 16384 and 200 <= size[1] <= 16384):
            size = s.output_size
        scale = max(1, min(4, round(hello.scale_120 / SCALE_ONE))) if hello.screen_width else s.output_scale
        size = (size[0] - size[0] % scale, size[1] - size[1] % scale)
        fitted = fit_output(*size, self._max_pixels(kind), scale=scale)
        if fitted != size:
            log.info(
                "%s: its screen is %dx%d; a %s here has at most %d pixels: %dx%d",
                conn.peer_address,
                *size,
                kind,
                self._max_pixels(kind),
                *fitted,
            )
        return fitted, scale

    def _max_pixels(self, kind: Kind) -> int:
        """The largest output (pixels) a session of ``kind`` may have (``output.max_pixels``; login and
        unlock screens at most GREETER_MAX_PIXELS)."""
        cap = self.settings.max_pixels
        return cap if kind is Kind.SESSION else min(cap, GREETER_MAX_PIXELS)

    def _kind_now(self, ls: LiveSession) -> Kind:
        """What ``ls`` is now: a login screen becomes a session when its user logs in."""
        if ls.unlocks is not None:
            return Kind.UNLOCK_SCREEN
        s = self.registry.find(ls.id) if self.registry is not None else None
        return Kind.LOGIN_SCREEN if s is not None and s.state is SessionState.GREETER else Kind.SESSION

    def _output_known(self, ls: LiveSession, width: int, height: int, scale_120: int) -> None:
        ls.output = (width, height, scale_120)
        ls.kind = self._kind_now(ls)
        ls.memory = estimate(ls.kind, width, height)

    # --- admission ---------------------------------------------------------------------------------

    def _holdings(self) -> list[Holding]:
        """What every live session (and every one being started) holds, for admission."""
        out = list(self._pending.values())
        for ls in [*self.live.values(), *self.unlocking.values()]:
            s = self.registry.find(ls.id) if self.registry is not None and ls.unlocks is None else None
            out.append(
                Holding(ls.source, ls.kind, ls.memory, used=s is not None and s.touched_at is not None)
            )
        return out

    def _admit(self, viewer: Viewer, kind: Kind, size: tuple[int, int]) -> str | None:
        """None when ``viewer`` may have a new ``kind`` of ``size``, else why not (logged)."""
        refusal = self.admission.admit(
            viewer.source, kind, estimate(kind, *size), self._holdings(), time.monotonic()
        )
        if refusal is not None:
            self._log_refusal(viewer.source, f"{viewer.conn.peer_address}: no new {kind}: {refusal}")
        return refusal

    def _refuse_access(self, conn: ServerConnection, source: str) -> None:
        """The viewer did not present the access key: closed before anything starts for it."""
        presented = bool(conn.hello.access_key)
        self._log_refusal(
            source,
            f"{conn.peer_address}: refused: {'a wrong access key' if presented else 'no access key'}",
        )
        # A standalone server's "operator" is whoever started it, maybe another user of this machine.
        who = "whoever started it" if self.settings.mode is Mode.STANDALONE else "its operator"
        if (conn.version or (1, 0)) >= HELLO_CREDENTIALS:
            conn.close(
                ErrorCode.ACCESS_DENIED,
                ("the access key is wrong" if presented else "this server requires an access key")
                + f": ask {who} for it, then give it to wrclient (--access-key-file FILE, "
                "WAYRAY_ACCESS_KEY, or access_key_file in client.toml)",
            )
        else:
            conn.close(
                ErrorCode.TOKEN_REJECTED,
                "this server requires an access key, which this viewer (protocol 1.1) cannot present: "
                "upgrade wrclient, then give it the key (--access-key-file FILE)",
            )

    def _log_refusal(self, source: str, line: str) -> None:
        now = time.monotonic()
        last, quiet = self._refusals.get(source, (-REFUSAL_LOG_INTERVAL, 0))
        if now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[source] = (last, quiet + 1)
            return
        more = f" ({quiet} more refusals from {source} in the last minute, not logged)" if quiet else ""
        log.warning("%s%s", line, more)
        self._refusals[source] = (now, 0)
        if len(self._refusals) > 10_000:
            for key in [k for k, (at, _) in self._refusals.items() if now - at > REFUSAL_LOG_INTERVAL]:
                del self._refusals[key]

    async def _serve_viewer(self, viewer: Viewer, ls: LiveSession, resumed: bool) -> None:
        conn = viewer.conn
        viewer.resumed = resumed
        if not await self._attach(viewer, ls, first=True):
            return
        # What the viewer shows now (a kiosk puts it on its status): a login or unlock screen, or, in
        # login mode, the user's desktop.
        screen = self._greeter_kind(ls)
        record = self.registry.find(ls.id) if self.registry is not None else None
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            if screen is not None:
                conn.send(SessionEvent(kind=SessionEventKind.GREETER, detail=screen))
            elif self.settings.login and record is not None and record.user is not None:
                conn.send(
                    SessionEvent(kind=SessionEventKind.DESKTOP, detail=f"the session of {record.user}")
                )
        try:
            async for message in conn:
                target = viewer.session
                if target is None or target.viewer is not viewer:
                    break
                self._to_session(target, viewer, message)
        except ConnectionClosedError:
            pass

    async def _attach(self, viewer: Viewer, ls: LiveSession, *, first: bool) -> bool:
        """Show ``ls`` on ``viewer``: Attach on its compositor's link, a keyframe first.

        ``first``: the viewer's Hello is answered by the compositor's Attached (:meth:`_attached`).
        Otherwise the viewer already shows something (a greeter whose login started the user's
        session, an unlock greeter that succeeded): it is switched on the same connection, its frame
        seqs continuing. Returns whether the viewer now shows ``ls``."""
        conn = viewer.conn
        s = self.settings
        try:
            if not ls.linked.is_set():
                # Starting, or back after a wrsrvd restart: give it until its deadline to register.
                await asyncio.wait_for(ls.linked.wait(), max(1.0, (ls.relink_by or 0) - time.monotonic()))
        except TimeoutError:
            if ls.ended:
                conn.close(ErrorCode.SESSION_ENDED, "the session ended while it started")
            else:
                conn.close(ErrorCode.SERVER_BUSY, "the session's compositor is not reachable; try again")
            return False
        if ls.ended or ls.link is None:
            conn.close(ErrorCode.SESSION_ENDED, "the session ended")
            return False
        if conn.closed:
            return False
        if not ls.responding:
            # Attaching would wait for an answer that does not come. The viewer that shows it (if any)
            # keeps it, with the notice; this one is told why and tries again (SERVER_BUSY).
            log.info("%s: session %s is not responding; refused for now", conn.peer_address, ls.id)
            conn.close(ErrorCode.SERVER_BUSY, _NOT_RESPONDING_REFUSAL)
            return False
        displaced = ls.viewer
        if displaced is not None and displaced is not viewer:
            self._displace(displaced, f"the session moved to {conn.peer_address}")
        viewer.session = ls
        viewer.attach_id = 0
        ls.viewer = viewer
        first_seq = 1
        if not first:
            try:
                await asyncio.wait_for(conn.wait_frames_acked(), DRAIN_TIMEOUT)
            except TimeoutError:
                conn.close(ErrorCode.SEND_BUFFER_FULL, "the viewer does not acknowledge its frames")
                return False
            except ConnectionClosedError:
                return False
            if ls.viewer is not viewer or ls.link is None:
                return False
            first_seq = (conn.last_frame_seq or 0) + 1
        viewer.attach_id = next(ls.attach_ids)
        hello = conn.hello
        width, height = self._fit(ls, hello.screen_width, hello.screen_height, hello.scale_120)
        answer: asyncio.Future[Attached] = asyncio.get_running_loop().create_future()
        ls.attaching[viewer.attach_id] = answer
        try:
            ls.link.send(
                Attach(
                    attach_id=viewer.attach_id,
                    width=width,
                    height=height,
                    scale_120=min(max(hello.scale_120, 1), 65535),
                    match_size=bool(hello.screen_width and hello.screen_height),
                    keymap=hello.keymap,
                    capabilities=sorted(conn.offered_capabilities),
                    frame_window=s.wire.frame_window,
                    clipboard=str(s.clipboard),
                    first_seq=first_seq,
                )
            )
            attached = await asyncio.wait_for(asyncio.shield(answer), ATTACH_TIMEOUT)
        except LinkError as err:
            self._drop_link(ls, CloseCode.PROTOCOL_ERROR, err.reason)
            conn.close(ErrorCode.SERVER_BUSY, "the session's compositor is not reachable; try again")
            return False
        except SessionNotResponding:
            conn.close(ErrorCode.SERVER_BUSY, _NOT_RESPONDING_REFUSAL)
            return False
        except TimeoutError:
            conn.close(ErrorCode.INTERNAL_ERROR, "the session's compositor did not answer in time")
            return False
        except asyncio.CancelledError:
            if conn.closed:  # displaced, or the session ended, while attaching
                return False
            raise
        finally:
            ls.attaching.pop(viewer.attach_id, None)
        if ls.viewer is not viewer or conn.closed or conn.server_hello is None:
            return False
        log.info(
            "%s: %s session %s (%dx%d)",
            conn.peer_address,
            "attached to" if first else "switched to",
            ls.id,
            attached.width,
            attached.height,
        )
        self._changed()
        return True

    def _fit(self, ls: LiveSession, width: int, height: int, scale_120: int) -> tuple[int, int]:
        """A viewer's screen as the session may follow it: within the pixels ``ls`` may have."""
        width, height = min(width, 65535), min(height, 65535)
        scale = max(1, min(4, round(max(scale_120, 1) / SCALE_ONE)))
        return fit_output(width, height, self._max_pixels(self._kind_now(ls)), scale=scale)

    def _greeter_kind(self, ls: LiveSession) -> str | None:
        """What a viewer of ``ls`` sees when it is a greeter: "login screen" / "unlock screen"."""
        if ls.id in self.unlocking:
            return "unlock screen"
        s = self.registry.find(ls.id) if self.registry is not None else None
        return "login screen" if s is not None and s.state is SessionState.GREETER else None

    async def _switch(self, viewer: Viewer, ls: LiveSession, event: SessionEventKind, detail: str) -> None:
        """Move a viewer that shows a greeter over to ``ls`` without a new connection."""
        if not await self._attach(viewer, ls, first=False):
            return
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            viewer.conn.send(SessionEvent(kind=event, detail=detail[:1000]))

    def _to_session(self, ls: LiveSession, viewer: Viewer, message: Any) -> None:
        if isinstance(message, ClipboardText) and not self.settings.clipboard.to_server:
            return
        if isinstance(message, ResizeRequest):
            width, height = self._fit(ls, message.width, message.height, message.scale_120)
            if (width, height) != (message.width, message.height):
                message = ResizeRequest(width=width, height=height, scale_120=message.scale_120)
        if isinstance(message, _INPUT):
            now = time.monotonic()
            if now - viewer.last_input > 1.0 and self.registry is not None:
                viewer.last_input = now
                self.registry.note_input(ls.id, time.time())
        if ls.link is None or (not ls.responding and isinstance(message, _DROPPED_WHILE_HUNG)):
            return
        self._relay(ls, viewer, message)

    def _displace(self, viewer: Viewer, detail: str) -> None:
        """The session this viewer shows moved to another viewer: tell it, close its connection."""
        ls = viewer.session
        if ls is not None and ls.viewer is viewer:
            ls.viewer = None
            if ls.link is not None and viewer.attach_id:
                with contextlib.suppress(LinkError):  # one that does not read: the next Ping drops it
                    ls.link.send(
                        Detach(attach_id=viewer.attach_id, reason="the session moved to another viewer")
                    )
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            if viewer.conn.server_hello is not None:
                viewer.conn.send(SessionEvent(kind=SessionEventKind.MOVED, detail=detail))
        viewer.conn.close(ErrorCode.SESSION_MOVED, detail)

    def _viewer_left(self, viewer: Viewer) -> None:
        ls = viewer.session
        if ls is not None and ls.viewer is viewer:
            ls.viewer = None
            if ls.link is not None and viewer.attach_id:
                event = viewer.conn.close_event
                reason = event.describe() if event is not None else "the viewer left"
                with contextlib.suppress(LinkError):
                    ls.link.send(Detach(attach_id=viewer.attach_id, reason=reason[:1000]))
        if self.registry is not None:
            # A kiosk that closes on purpose (NO_ERROR: the badge was taken out, the kiosk stopped)
            # left; anything else is a loss it may come back from (see policy.needs_reauth).
            event = viewer.conn.close_event
            lost = event is None or not (event.by_peer and event.code == ErrorCode.NO_ERROR)
            try:
                self.registry.viewer_left(viewer.key, time.time(), lost=lost)
            except RegistryError as err:
                log.warning("registry: %s", err)
        self._changed()

    # --- the link ----------------------------------------------------------------------------------

    def _relay(self, ls: LiveSession, viewer: Viewer, message: Any) -> None:
        """A viewer's message to its session's compositor, within the viewer's share of the link.

        A compositor that does not read (stopped, hung, busy) lets the link's buffer grow; a viewer
        that goes on sending (a flood, pastes into a stopped session) must neither fill it up to the
        link's limit, where the link itself would go, nor leave a backlog the compositor would chew on
        for long when it wakes up. So a message goes only while what waits on the link stays within
        :data:`VIEWER_BACKLOG` (more for the big, rare ones: clipboard text, keymaps). A viewer that
        would go past it is closed with RECEIVE_BUFFER_FULL and a reason: it reconnects, and attaches
        again once the session responds. What it sent until then is delivered, in order; the session
        is not touched."""
        link = ls.link
        if link is None or viewer.conn.closed:
            return
        frame = encode_message(message)
        waiting = link.pending_bytes
        limit = BIG_VIEWER_BACKLOG if isinstance(message, _BIG_FROM_VIEWERS) else VIEWER_BACKLOG
        if waiting + len(frame) > limit:
            log.warning(
                "%s: %s sends faster than the session reads (%d bytes wait on its link); closing that "
                "viewer, the session is left alone",
                self._who(ls),
                viewer.conn.peer_address,
                waiting,
            )
            viewer.conn.close(
                ErrorCode.RECEIVE_BUFFER_FULL,
                "the session does not keep up with this viewer's input (it may be busy or stopped); "
                "reconnect to go on",
            )
            return
        try:
            link.send(ToSession(spec_of(message).channel, frame))
        except LinkOverflow as err:  # not from viewers alone (see VIEWER_BACKLOG): a compositor that hangs
            self._drop_link(ls, CloseCode.PROTOCOL_ERROR, err.reason)

    async def _on_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = LinkStream(reader, writer, LinkRole.SERVER, name="link")
        ls: LiveSession | None = None
        uid: int | None = None
        counted = False
        pinger: asyncio.Task[None] | None = None
        try:
            uid = stream.peer_uid()
            if not self.settings.login and uid is not None and uid not in (os.geteuid(), 0):
                stream.close(CloseCode.PROTOCOL_ERROR, "this link serves only the server's own user")
                log.warning("link: refused a connection from uid %d", uid)
                return
            if self._unregistered[uid] >= MAX_UNREGISTERED_LINKS:
                # SHUTDOWN: a compositor told this tries again later (its session does not end).
                stream.close(
                    CloseCode.SHUTDOWN,
                    f"uid {uid} has {MAX_UNREGISTERED_LINKS} link connections that have not registered; "
                    "try again later",
                )
                log.warning("link: refused a connection from uid %s: too many unregistered ones", uid)
                return
            self._unregistered[uid] += 1
            counted = True
            stream.limit(MAX_REGISTER_BODY)  # nothing big from a peer that has not proven anything
            try:
                first = await asyncio.wait_for(stream.receive(), 10)
            except TimeoutError:
                stream.close(CloseCode.PROTOCOL_ERROR, "no registration within 10 s")
                return
            if first is None:
                return
            if not isinstance(first, Register):
                stream.close(
                    CloseCode.PROTOCOL_ERROR,
                    f"the first message must be Register, not {type(first).__name__}",
                )
                return
            starting = self._starting.get(first.session_id)
            if starting is not None:  # its greeter session is being recorded right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(starting.wait(), self.settings.start_timeout)
            await self._await_login_event(first)
            ls = self._register(stream, first, uid)
            self._unregistered[uid] -= 1
            counted = False
            if ls is None:
                return
            stream.limit(None)  # registered: frames up to the display channel's limit
            if ls.keepalive is not None:
                pinger = self._spawn(self._keep_alive(ls, stream), f"keep-alive-{ls.id}")
            await self._serve_link(ls, stream)
        except LinkError as err:
            log.warning("link%s: %s; closing it", f" of session {ls.id}" if ls else "", err.reason)
            stream.close(CloseCode.PROTOCOL_ERROR, err.reason)
        except Exception:
            log.exception("link%s: internal error", f" of session {ls.id}" if ls else "")
            stream.close(CloseCode.PROTOCOL_ERROR, "internal error in wrsrvd")
        finally:
            if counted:
                self._unregistered[uid] -= 1
            if pinger is not None:
                pinger.cancel()
            stream.close()
            self._retired.discard(stream)
            if ls is not None and ls.link is stream:
                self._link_lost(ls)

    def _register(self, stream: LinkStream, reg: Register, uid: int | None) -> LiveSession | None:
        assert self.registry is not None
        if not MIN_LINK_VERSION <= reg.link_version <= LINK_VERSION:
            stream.close(
                CloseCode.VERSION,
                f"this wrsrvd speaks link versions {MIN_LINK_VERSION} to {LINK_VERSION}, "
                f"the compositor {reg.link_version}",
            )
            return None
        transient = self.unlocking.get(reg.session_id)
        s = self.registry.find(reg.session_id)
        ls = transient or self.live.get(reg.session_id)
        if (s is None and transient is None) or ls is None or ls.ended or self.stopping:
            code = CloseCode.SHUTDOWN if self.stopping else CloseCode.UNKNOWN_SESSION
            stream.close(code, f"no live session {reg.session_id} here")
            if not self.stopping:
                log.warning(
                    "link: pid %d registered for unknown session %s; told it to end", reg.pid, reg.session_id
                )
            return None
        if transient is not None:
            digest, expected_uid = transient.transient_secret_sha256, transient.uid
        else:
            assert s is not None
            digest, expected_uid = s.endpoint.link_secret_sha256, s.endpoint.uid
        if not digest or not hmac.compare_digest(sha256_hex(reg.secret), digest):
            stream.close(CloseCode.BAD_SECRET, "the secret does not match this session's")
            log.warning(
                "link: pid %d (uid %s) presented a wrong secret for session %s", reg.pid, uid, reg.session_id
            )
            return None
        if self.settings.login and uid != 0 and (uid is None or expected_uid is None or uid != expected_uid):
            # The secret alone is not enough: it must come from the uid the session runs as, so that a
            # secret that leaked (a core dump, a careless copy) is of no use to another local user.
            stream.close(CloseCode.BAD_SECRET, "the secret does not match this session's")
            log.warning(
                "link: pid %d of uid %s registered for session %s, which runs as uid %s; refused",
                reg.pid,
                uid,
                reg.session_id,
                expected_uid,
            )
            return None
        if ls.link is not None:
            log.warning("session %s: a new compositor link (pid %d) replaces the old one", ls.id, reg.pid)
            old = ls.link
            ls.link = None
            old.close(CloseCode.REPLACED, "another compositor registered for this session")
        stale = ls.viewer
        if stale is not None and stale.attach_id:
            # Attached through the link that went away: it must attach again. (A viewer being switched
            # over to this compositor has no attachment yet and waits for this registration.)
            ls.viewer = None
            stale.conn.close(ErrorCode.SERVER_BUSY, "the session's compositor reconnected; try again")
        ls.link = stream
        ls.pid = reg.pid
        ls.wayland_display = reg.wayland_display
        self._output_known(ls, reg.width, reg.height, reg.scale_120)
        ls.relink_by = None
        ls.link_version = reg.link_version
        # A compositor of the previous release cannot answer pings: it goes without the keep-alive.
        ls.keepalive = LinkKeepAlive(time.monotonic()) if reg.link_version >= PING_LINK_VERSION else None
        if s is not None and (
            s.endpoint.compositor_pid != reg.pid or s.endpoint.wayland_display != reg.wayland_display
        ):
            endpoint = {
                **s.endpoint.__dict__,
                "compositor_pid": reg.pid,
                "wayland_display": reg.wayland_display,
            }
            try:
                self.registry.set_endpoint(s.id, Endpoint(**endpoint), time.time())
            except RegistryError as err:  # a full disk: serve it all the same; recorded with its next change
                log.warning("session %s: %s", s.id, err)
        stream.send(
            Welcome(
                link_version=reg.link_version, server=f"wrsrvd {wayray.__version__} ({self.settings.name})"
            )
        )
        ls.linked.set()
        if not ls.responding:  # the compositor that hung came back on a new link
            self._responding_again(ls)
        log.info(
            "session %s: compositor pid %d on the link (%s, link version %d%s)",
            ls.id,
            reg.pid,
            reg.wayland_display,
            reg.link_version,
            "" if ls.keepalive else ": it cannot be pinged, so a hang goes unnoticed",
        )
        return ls

    async def _serve_link(self, ls: LiveSession, stream: LinkStream) -> None:
        async for message in stream.messages():
            if ls.link is not stream:
                if stream in self._retired:
                    continue  # a greeter after its login: wrsessd ends it; nothing it says matters
                return  # replaced
            if isinstance(message, ToViewer):
                self._to_viewer(ls, message)
            elif isinstance(message, Attached):
                self._attached(ls, message)
            elif isinstance(message, Pong):
                if ls.keepalive is None:
                    raise LinkError("the compositor sent Pong, which its link version does not have")
                if ls.keepalive.answered(message, time.monotonic()) is Change.RESPONDING:
                    self._responding_again(ls)
            elif isinstance(message, OutputChanged):
                self._output_known(ls, message.width, message.height, message.scale_120)
            elif isinstance(message, Ended):
                detail = f"the session ended: {message.reason}"
                self._finish(ls, EndReason.COMMAND_EXITED, detail)
            elif isinstance(message, ScreenshotResult):
                shot = ls.screenshots.pop(message.request_id, None)
                if shot is not None and not shot.done():
                    shot.set_result(message.png)
            elif isinstance(message, ScreenshotFailed):
                shot = ls.screenshots.pop(message.request_id, None)
                if shot is not None and not shot.done():
                    shot.set_exception(AdminError(f"the compositor could not take it: {message.reason}"))
            elif isinstance(message, Close):
                log.info(
                    "session %s: the compositor closed its link: %s: %s", ls.id, message.code, message.reason
                )
                return
            else:
                raise LinkError(f"the compositor sent {type(message).__name__} after registering")

    def _attached(self, ls: LiveSession, message: Attached) -> None:
        """The compositor is ready for the viewer: answer its Hello now, before the frames that follow
        on the link are relayed (they may be read in the same batch)."""
        fut = ls.attaching.get(message.attach_id)
        viewer = ls.viewer
        if fut is None or fut.done() or viewer is None or viewer.attach_id != message.attach_id:
            return
        self._output_known(ls, message.width, message.height, message.scale_120)
        if not viewer.conn.closed and viewer.conn.server_hello is None:
            try:
                viewer.conn.accept(
                    session_id=ls.unlocks or ls.id,  # an unlock screen stands for its session
                    output_width=message.width,
                    output_height=message.height,
                    output_scale_120=message.scale_120,
                    resumed=viewer.resumed,
                    keyframe_follows=True,
                )
            except ConnectionClosedError:
                pass
        fut.set_result(message)

    def _to_viewer(self, ls: LiveSession, message: ToViewer) -> None:
        viewer = ls.viewer
        if viewer is None or viewer.attach_id != message.attach_id or viewer.conn.closed:
            return  # frames of a viewer that left (or of one not yet accepted)
        if message.channel is Channel.CONTROL and not self.settings.clipboard.to_client:
            msg_type, _ = parse_header(message.frame)
            if msg_type == _CLIPBOARD_TYPE:
                return
        try:
            viewer.conn.send_encoded(message.channel, message.frame)
        except ConnectionClosedError:
            pass
        except WireUsageError as err:
            log.error("session %s: cannot relay a frame to %s: %s", ls.id, viewer.conn.peer_address, err)
            viewer.conn.close(
                ErrorCode.INTERNAL_ERROR, f"the session sent what the connection cannot carry: {err}"
            )

    # --- the keep-alive ------------------------------------------------------------------------------

    async def _keep_alive(self, ls: LiveSession, stream: LinkStream) -> None:
        """Ping the compositor on its link while it is the session's, and act when it stops answering
        or answers again (``wayray.link.keepalive``). Sending never waits (the link's writes are
        bounded), so a hung compositor cannot hold up wrsrvd."""
        keepalive = ls.keepalive
        assert keepalive is not None
        while ls.link is stream and ls.keepalive is keepalive and not ls.ended and not stream.closed:
            ping, change = keepalive.tick(time.monotonic())
            if change is Change.NOT_RESPONDING:
                self._not_responding(ls)
            if ping is not None:
                try:
                    stream.send(ping)
                except LinkOverflow as err:
                    self._drop_link(ls, CloseCode.PROTOCOL_ERROR, err.reason)
                    return
            await asyncio.sleep(max(0.0, keepalive.deadline() - time.monotonic()))

    def _who(self, ls: LiveSession) -> str:
        """The session, its user and its compositor's pid, for the log."""
        s = self.registry.find(ls.id) if self.registry is not None else None
        if s is not None and s.user:
            user = s.user
        else:
            user = "the login screen" if s is not None and s.state is SessionState.GREETER else "-"
        return f"session {ls.id} of {user} (compositor pid {ls.pid or '?'})"

    def _not_responding(self, ls: LiveSession) -> None:
        """The compositor answered no Ping for the timeout: say so, to the log, operators and the viewer.
        The session is not ended: it may have been stopped on purpose (``wradm session kill`` ends it)."""
        keepalive = ls.keepalive
        assert keepalive is not None
        silent = time.monotonic() - keepalive.silent_since
        ls.not_responding_at = time.time() - silent
        log.warning(
            "%s is not responding: its compositor has answered nothing on its link for %.0f s (hung, "
            "stopped or swapping?); its viewer is told, and the session is left running "
            "(wradm session kill %s ends it)",
            self._who(ls),
            silent,
            ls.id,
        )
        why = SessionNotResponding(f"the session is not responding (no answer from it for {silent:.0f} s)")
        for fut in list(ls.attaching.values()) + list(ls.screenshots.values()):
            if not fut.done():
                fut.set_exception(why)
        viewer = ls.viewer
        if viewer is not None and viewer.attach_id:
            self._tell_viewer(viewer, SessionEventKind.NOT_RESPONDING, "waiting for it\u2026")
        self._changed()

    def _responding_again(self, ls: LiveSession) -> None:
        """The compositor answers again: say so, and give its viewer a fresh picture."""
        since = ls.not_responding_at
        ls.not_responding_at = None
        if ls.ended:
            return  # woken to be ended (SIGCONT after wradm session kill): nothing to tell
        log.info(
            "%s responds again%s",
            self._who(ls),
            f" after {time.time() - since:.0f} s" if since is not None else "",
        )
        viewer = ls.viewer
        if viewer is not None and viewer.attach_id and ls.link is not None:
            self._tell_viewer(viewer, SessionEventKind.RESPONDING, "the session responds again")
            # A keyframe, so the viewer's picture is the session's now whatever happened meanwhile.
            # VIEWER_RESET is the nearest reason the wire has: the viewer's picture is to be redone.
            request = encode_message(KeyframeRequest(reason=KeyframeReason.VIEWER_RESET))
            with contextlib.suppress(LinkError):
                ls.link.send(ToSession(Channel.CONTROL, request))
        self._changed()

    def _tell_viewer(self, viewer: Viewer, kind: SessionEventKind, detail: str) -> None:
        """A SessionEvent the viewer's protocol version has (NOT_RESPONDING/RESPONDING: 1.1 on)."""
        conn = viewer.conn
        if conn.closed or conn.server_hello is None or (conn.version or (0, 0)) < _NOT_RESPONDING_EVENTS:
            return
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            conn.send(SessionEvent(kind=kind, detail=detail[:1000]))

    def _drop_link(self, ls: LiveSession, code: CloseCode, reason: str) -> None:
        """Give up on a link that does not read: abort it, throwing away what waits for the compositor
        (stale input it must not act on when it wakes up, and no Close it could take for a refusal).
        The session is not ended: a live compositor registers again, as after a wrsrvd restart."""
        if ls.link is not None:
            log.warning(
                "session %s: dropping its link (%s): %s; the session waits for its compositor to come back",
                ls.id,
                code,
                reason,
            )
            link = ls.link
            link.abort()
            self._link_lost(ls)

    def _link_lost(self, ls: LiveSession) -> None:
        ls.link = None
        ls.linked.clear()
        for fut in list(ls.attaching.values()) + list(ls.screenshots.values()):
            if not fut.done():
                fut.set_exception(LinkError("the compositor's link is gone"))
        ls.attaching.clear()
        ls.screenshots.clear()
        if ls.ended or self.stopping:
            return
        ls.relink_by = time.monotonic() + self.settings.relink_grace
        self._timer_wake.set()
        self._spawn(self._after_link_loss(ls), f"link-lost-{ls.id}")

    async def _after_link_loss(self, ls: LiveSession) -> None:
        """A link that drops without Ended: a crashed compositor (the session ends) or one that dropped
        the link and will come back. A dying process closes its sockets a moment before it can be
        reaped, so give it that moment before deciding."""
        end = time.monotonic() + LINK_LOSS_GRACE
        while time.monotonic() < end and not ls.ended and ls.link is None and self._compositor_alive(ls):
            await asyncio.sleep(0.05)
        if ls.ended or ls.link is not None:
            return
        if not self._compositor_alive(ls):
            self._finish(ls, EndReason.COMPOSITOR_LOST, "the session's compositor stopped unexpectedly")
            return
        log.info("session %s: link lost; waiting for the compositor to come back", ls.id)
        viewer = ls.viewer
        if viewer is not None:
            ls.viewer = None
            viewer.conn.close(ErrorCode.SERVER_BUSY, "the session's compositor is reconnecting; try again")

    @staticmethod
    def _compositor_alive(ls: LiveSession) -> bool:
        """Whether the session's compositor runs: the process wrsrvd started (its keeper, which outlives
        the compositor a moment to end what the session left behind) has not exited, and the pid that
        registered on the link is alive."""
        if ls.process is not None and ls.process.returncode is not None:
            return False
        return pid_alive(ls.pid) if ls.pid else ls.process is not None

    def _relink_overdue(self, ls: LiveSession) -> None:
        """A session's compositor did not come back to its link in time. One that is gone ends its
        session. One that lives (stopped, hung) is *not responding*, as on a link: it is not ended for
        being slow (its user's work is in it); it is said once, and an operator can end it."""
        ls.relink_by = None
        pid = ls.pid or 0
        # Still this session's compositor (not a process that got its pid since): one wrsrvd watches,
        # one whose environment names the session, or (login mode: other users' environments are not
        # readable) one running as the session's user.
        ours = (
            ls.process is not None
            or is_session_process(pid, ls.id)
            or (self.settings.login and ls.uid is not None and _process_uid(pid) == ls.uid)
        )
        if self._compositor_alive(ls) and ours:
            since = self.settings.relink_grace
            ls.not_responding_at = time.time() - since
            log.warning(
                "%s is not responding: its compositor runs but has not come back to its link for %.0f s "
                "(stopped, hung?); the session is left running (wradm session kill %s ends it)",
                self._who(ls),
                since,
                ls.id,
            )
            self._changed()
            return
        if ls.process is not None and ls.process.returncode is None:
            ls.process.signal(signal.SIGTERM)
        self._finish(ls, EndReason.COMPOSITOR_LOST, "the session's compositor did not come back to wrsrvd")

    def _process_exited(self, ls: LiveSession, status: int) -> None:
        if ls.ended:
            return
        # Ended on the link usually comes first; without it the compositor crashed (or was killed).
        self._finish(ls, EndReason.COMPOSITOR_LOST, f"the session's compositor exited with status {status}")

    # --- ending sessions ---------------------------------------------------------------------------

    def _end_session(self, ls: LiveSession, reason: EndReason, detail: str) -> None:
        """End a session on purpose (operator, policy, standalone Ctrl-C). In login mode wrsessd ends
        it, so its PAM session is closed; only when wrsessd cannot does the compositor get End."""
        if ls.ended:
            return
        if self.bridge is not None and ls.launcher_session is not None:
            # wrsessd stops every process of the session, stopped ones too (SIGCONT), SIGKILL last.
            why = LAUNCHER_REASONS.get(reason, lp.EndReason.OPERATOR)
            self._spawn(self._kill_launched(ls.launcher_session, why, ls.link, detail), f"kill-{ls.id}")
        else:
            if ls.link is not None:
                with contextlib.suppress(LinkError):  # one that does not read is signalled below
                    ls.link.send(End(reason=detail[:1000]))
            if ls.process is not None or (ls.pid and self.bridge is None):
                # A compositor that does not read its link never sees End: make sure it ends. One that
                # responds has END_WAIT to stop its programs and exit by itself first.
                pid = ls.process.pid if ls.process is not None else ls.pid
                assert pid is not None
                first_wait = END_WAIT if ls.responding and ls.link is not None else 0.0
                self._spawn(
                    make_sure_it_ends(ls.process, pid, ls.id, who=self._who(ls), first_wait=first_wait),
                    f"end-{ls.id}",
                )
        self._finish(ls, reason, detail)

    def _finish(self, ls: LiveSession, reason: EndReason, detail: str) -> None:
        """The session is over: record it, tell its viewer, forget it."""
        if ls.ended:
            return
        if reason in UNPLANNED_ENDS and system_stopping():
            # At a shutdown its compositor is told to stop (or its command is): not the user's doing.
            reason, detail = EndReason.SHUTDOWN, f"the system is shutting down ({detail})"
        ls.ended = True
        ls.linked.set()  # wake viewers waiting for it: they find it ended
        s = self.registry.find(ls.id) if self.registry is not None else None
        log.info("session %s of %s ended (%s): %s", ls.id, (s.user if s else None) or "-", reason, detail)
        if self.registry is not None and s is not None and s.state is not SessionState.ENDED:
            try:
                self.registry.end(ls.id, reason, time.time())
            except RegistryError as err:
                log.error(
                    "session %s: %s; it is over all the same (recorded by a start with room)", ls.id, err
                )
        viewer = ls.viewer
        ls.viewer = None
        if viewer is not None:
            with contextlib.suppress(ConnectionClosedError, WireUsageError):
                if viewer.conn.server_hello is not None:
                    viewer.conn.send(SessionEvent(kind=SessionEventKind.ENDED, detail=detail[:1000]))
            viewer.conn.close(ErrorCode.SESSION_ENDED, detail)
        self.live.pop(ls.id, None)
        if self.unlocking.pop(ls.id, None) is not None and self.bridge is not None and ls.launcher_session:
            self._spawn(self.bridge.kill(ls.launcher_session, lp.EndReason.FAILED), f"kill-{ls.id}")
        self._changed()

    async def _policy_timer(self) -> None:
        """Carry out the session policy (detached and idle timeouts) and the relink grace."""
        while True:
            assert self.registry is not None
            now = time.time()
            for action in self.registry.due_actions(now):
                ls = self.live.get(action.session_id)
                if ls is not None:
                    self._end_session(ls, action.reason, f"the policy ended it ({action.reason})")
                    continue
                try:  # recorded but not running here: only the record is left to end
                    self.registry.end(action.session_id, action.reason, now)
                except RegistryError as err:
                    log.warning("session %s: %s", action.session_id, err)
            mono = time.monotonic()
            for ls in list(self.live.values()):
                if ls.relink_by is not None and not ls.linked.is_set() and mono > ls.relink_by:
                    self._relink_overdue(ls)
            deadlines = [d - time.time() for d in [self.registry.next_deadline()] if d is not None]
            deadlines += [ls.relink_by - mono for ls in self.live.values() if ls.relink_by is not None]
            wait = max(0.05, min([60.0, *deadlines]))
            self._timer_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), wait)

    # --- admin -------------------------------------------------------------------------------------

    async def _admin_request(self, request: dict[str, Any]) -> dict[str, Any]:
        kind = request.get("type")
        if kind == "status":
            states = Counter(self._shown(s)[0] for s in self._registry_sessions())
            return {
                "type": "status",
                "name": self.settings.name,
                "mode": str(self.settings.mode),
                "sessions_start": "login" if self.settings.login else "command",
                "launcher": None
                if self.bridge is None
                else {"socket": str(self.bridge.path), "connected": self.bridge.subscribed.is_set()},
                "version": wayray.__version__,
                "pid": os.getpid(),
                "listen": list(self.listening or self.settings.listen),
                "port": self.port,
                "fingerprint": self.identity.fingerprint if self.identity else None,
                "sessions": len(self.live),
                "by_state": dict(sorted(states.items())),
                "viewers": sum(1 for s in self._registry_sessions() if self._shown(s)[1] is not None),
                "access_key": self.access_key is not None,
                # What a viewer must present: the key's file and the client CA (paths, no secret).
                "access_key_file": None if self.access_key is None else str(self.settings.access_key_file),
                "client_ca": None if self.settings.client_ca is None else str(self.settings.client_ca),
                "not_responding": sorted(ls.id for ls in self.live.values() if not ls.responding),
                "unlocking": len(self.unlocking),
                "max_sessions": self.settings.max_sessions,
                "policy": {
                    "detached_timeout_s": self.settings.policy.detached_timeout_s,
                    "idle_timeout_s": self.settings.policy.idle_timeout_s,
                    "reauth_on_reattach": self.settings.policy.reauth_on_reattach,
                },
                "config": None if self.config_digests is None else {"digests": self.config_digests},
            }
        if kind == "sessions":
            return {"type": "sessions", "sessions": [self._describe(s) for s in self._registry_sessions()]}
        if kind in ("kill", "detach"):
            return self._admin_end_or_detach(kind, request.get("session_id"))
        if kind == "screenshot":
            sid = request.get("session_id")
            ls = self.live.get(sid) if isinstance(sid, str) else None
            if ls is None:
                raise AdminError(f"no live session {sid!r}")
            if ls.link is None:
                raise AdminError(f"session {sid} is not on its link right now (starting or reconnecting)")
            if not ls.responding:
                raise AdminError(f"session {sid} is not responding: its compositor answers nothing")
            rid = next(self._screenshot_ids) & 0xFFFF_FFFF
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            ls.screenshots[rid] = fut
            ls.link.send(Screenshot(request_id=rid, include_cursor=bool(request.get("include_cursor"))))
            try:
                png = await asyncio.wait_for(fut, SCREENSHOT_TIMEOUT)
            except TimeoutError:
                raise AdminError("the compositor did not send the screenshot in time") from None
            except (LinkError, SessionNotResponding) as err:
                raise AdminError(err.reason) from None
            finally:
                ls.screenshots.pop(rid, None)
            import base64

            return {"type": "screenshot", "png_base64": base64.b64encode(png).decode()}
        if kind == "reload":
            if self.reloader is None:
                raise AdminError(
                    "this wrsrvd runs without configuration files (standalone): nothing to reload"
                )
            return await self.reloader()
        raise AdminError(
            f"unknown request type {kind!r} (known: status, sessions, kill, detach, screenshot, reload)"
        )

    def _admin_end_or_detach(self, kind: str, sid: object) -> dict[str, Any]:
        assert self.registry is not None
        s = self.registry.find(sid) if isinstance(sid, str) else None
        ls = self.live.get(s.id) if s is not None else None
        if s is None or ls is None:
            raise AdminError(f"no live session {sid!r} (wradm sessions lists them)")
        if kind == "kill":
            log.info("session %s of %s: ended by an operator", s.id, s.user or "-")
            self._end_session(ls, EndReason.OPERATOR, "an operator ended the session")
            return {"type": "killed", "session_id": s.id}
        viewer = ls.viewer
        if viewer is None:
            raise AdminError(f"session {s.id} is not shown anywhere ({s.state})")
        log.info(
            "session %s of %s: detached from %s by an operator",
            s.id,
            s.user or "-",
            viewer.conn.peer_address,
        )
        ls.viewer = None
        if ls.link is not None and viewer.attach_id:
            with contextlib.suppress(LinkError):
                ls.link.send(Detach(attach_id=viewer.attach_id, reason="an operator detached the viewer"))
        self.registry.detach(s.id, time.time())
        detail = "an operator detached the session; it keeps running"
        with contextlib.suppress(ConnectionClosedError, WireUsageError):
            if viewer.conn.server_hello is not None:
                viewer.conn.send(SessionEvent(kind=SessionEventKind.DETACHED, detail=detail))
        viewer.conn.close(ErrorCode.NO_ERROR, detail)
        self._changed()
        return {"type": "detached", "session_id": s.id}

    def _registry_sessions(self) -> list[Session]:
        return self.registry.live_sessions() if self.registry is not None else []

    def _shown(self, s: Session) -> tuple[str, str | None]:
        """A session's state as operators see it, and the viewer (key) that shows it: a detached
        session whose unlock screen is up at a kiosk is "unlocking" there."""
        if s.state is SessionState.DETACHED or (s.state is SessionState.ACTIVE and s.viewer is None):
            for t in self.unlocking.values():
                if t.unlocks == s.id and t.viewer is not None and not t.ended:
                    return "unlocking", t.viewer.key
        return str(s.state), s.viewer

    def _describe(self, s: Session) -> dict[str, Any]:
        ls = self.live.get(s.id)
        state, viewer = self._shown(s)
        return {
            "id": s.id,
            "state": state,
            "token": s.token.short,
            "user": s.user,
            "viewer": viewer,
            "kiosk": kiosk_of(viewer) if viewer else None,
            "since": s.changed_at if s.state is not SessionState.DETACHED else s.detached_at or s.changed_at,
            "launcher_session": s.endpoint.launcher_session,
            "linked": bool(ls and ls.link is not None),
            # Whether its compositor answers the link's pings (None: not on its link, or too old to be
            # pinged), and since when it does not; False too for one that runs but did not come back
            # to its link in time.
            "responding": None
            if ls is None or (ls.responding and (ls.link is None or ls.keepalive is None))
            else ls.responding,
            "not_responding_since": ls.not_responding_at if ls else None,
            "pid": ls.pid if ls else s.endpoint.compositor_pid,
            "wayland_display": ls.wayland_display if ls else s.endpoint.wayland_display,
            "output": list(ls.output) if ls else None,
            "created_at": s.created_at,
            "changed_at": s.changed_at,
        }


# --- helpers -----------------------------------------------------------------------------------------


def _printable(text: str) -> str:
    """What a peer says about itself, fit for one log line (no line breaks or escapes of its own)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


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


def _process_uid(pid: int) -> int | None:
    """The real uid ``pid`` runs as (/proc/PID/status is readable by everyone), None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _room_hint(directory: Path, err: OSError) -> str | None:
    """What to do about a write that failed in ``directory``, when it is about room."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on the file system of {directory} (df -h {directory}), then start wrsrvd again"
    return None
