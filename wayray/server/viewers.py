"""The viewer side of the front door: a viewer's connection from its Hello to its end.

A viewer presents a token (and, where the server asks for one, the access key); the registry says
whether that token has a session here (resumed, moved from another viewer), needs its owner's password
again (an unlock screen, login mode), or gets a new one (a session wrsrvd starts, or in login mode a
login screen wrsessd starts). The viewer is then attached (``attach``) and what it sends is relayed to
its session's compositor, within its share of the link. Every failure closes this viewer's connection
with a reason; the session and the other viewers carry on.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
import pwd
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from wayray.common import trace
from wayray.link import CloseCode, ToSession
from wayray.link.stream import LinkOverflow
from wayray.server.admission import Kind, estimate, source_of
from wayray.server.attach import NOT_RESPONDING_REFUSAL, Attacher
from wayray.server.ending import Ending
from wayray.server.gate import Gate
from wayray.server.live import ServedSession, Viewer, sha256_hex
from wayray.server.logins import Logins
from wayray.server.model import Endpoint, EndReason
from wayray.server.registry import Outcome, Presentation, RegistryError
from wayray.server.spawn import SessionSpec, start_session
from wayray.server.table import SessionTable
from wayray.server.tokens import SessionTokenKind, TokenHasher, TokenRef
from wayray.server.usb import UsbSide
from wayray.server.watch import CompositorWatch
from wayray.transport import ConnectionClosedError, ServerConnection
from wayray.wire import (
    ClipboardText,
    ErrorCode,
    Key,
    KeymapUpdate,
    KeyState,
    MicFrame,
    PointerAxis,
    PointerButton,
    PointerMotion,
    ResizeRequest,
    SessionEventKind,
    TouchDown,
    TouchMotion,
    TouchUp,
    UsbOffer,
    UsbWithdraw,
    encode_message,
    spec_of,
)
from wayray.wire import TokenKind as WireTokenKind

log = logging.getLogger("wayray.server")

#: How the wire's token kinds map to the registry's (and the policy's ``tokens``). A software token
#: (given on a command line or in a file) follows whoever presents it, as a badge does, so it counts
#: as a badge: a policy that accepts only terminals refuses it.
TOKEN_KINDS = {
    WireTokenKind.BADGE: SessionTokenKind.BADGE,
    WireTokenKind.TERMINAL: SessionTokenKind.TERMINAL,
    WireTokenKind.SOFTWARE: SessionTokenKind.BADGE,
}
#: How much may wait on a session's link (unread by its compositor) for a viewer's message to be
#: relayed; a viewer that would go past it is closed (see ViewerSide._relay). 512 KiB is some 24,000
#: keys (a person types 20 a second; a compositor takes 50,000 a second once it runs again); the big,
#: rare messages (clipboard text up to 1 MiB, keymaps) may find more. Either stays far below the
#: link's own limit (WRITE_LIMIT, 32 MiB), which is left to wrsrvd's messages (keep-alive, End).
VIEWER_BACKLOG = 512 * 1024
BIG_VIEWER_BACKLOG = 4 * 1024 * 1024
_BIG_FROM_VIEWERS = (ClipboardText, KeymapUpdate)
_INPUT = (Key, PointerMotion, PointerButton, PointerAxis, TouchDown, TouchMotion, TouchUp)
#: Input not relayed to a compositor that does not respond: it comes at a rate that would pile up in
#: the link's buffer, and is stale when the compositor wakes. Keys and buttons still go (a release
#: must follow its press), at a person's pace.
_DROPPED_WHILE_HUNG = (PointerMotion, PointerAxis, TouchMotion, MicFrame)  # stale sound is worse than none


class ViewerSide:
    def __init__(
        self,
        table: SessionTable,
        hasher: TokenHasher,
        gate: Gate,
        attacher: Attacher,
        watch: CompositorWatch,
        ending: Ending,
        logins: Logins | None,
        *,
        usb: UsbSide | None = None,
    ) -> None:
        self.table = table
        self.hasher = hasher
        self.gate = gate
        self.attacher = attacher
        self.watch = watch
        self.ending = ending
        #: Login mode's part (login and unlock screens); None: wrsrvd starts sessions itself.
        self.logins = logins
        self.usb = usb if usb is not None else UsbSide(table)
        #: A pool's directory (``pooling.PoolMembership.route``): whether a token without a session
        #: here is this member's (True) or was sent elsewhere (False); it also gets the token's digests
        #: under the previous token keys (a rotation). None: no shared directory.
        self.route: Callable[[TokenRef, Viewer, tuple[TokenRef, ...]], Awaitable[bool]] | None = None
        #: A pool's word that a token's session here lost to an earlier one on another member (its
        #: badge is routed through the directory although the registry knows a session here).
        self.yielded: Callable[[TokenRef], bool] = lambda token: False
        self._numbers = itertools.count(1)

    async def handle(self, conn: ServerConnection) -> None:
        """A viewer said Hello: find, start or refuse its session, then serve it until it goes."""
        table = self.table
        if table.stopping:
            conn.close(ErrorCode.SERVER_SHUTDOWN, "the server is stopping")
            return
        greeted = self._greet(conn)
        if greeted is None:
            return
        token, viewer, previous = greeted
        found = await self._session_for(token, viewer, previous)
        if found is None:
            return
        session, resumed = found
        table.viewers.add(viewer)
        try:
            await self._serve(viewer, session, resumed)
        finally:
            table.viewers.discard(viewer)
            self._left(viewer)
            if session.id in table.unlocking and session.viewer in (None, viewer):
                self.ending.end_unlock_screen(session, "the viewer left before the session was unlocked")

    def _greet(self, conn: ServerConnection) -> tuple[TokenRef, Viewer, tuple[TokenRef, ...]] | None:
        """The viewer's access key and token checked (None: refused, the connection closed), and a
        line in the log about who it is. The token's reference is its digest under the token key, or
        under a previous key when its session here was recorded under that one (a key rotation:
        docs/pools.md §3.3); the others come along for the pool's directory."""
        hello = conn.hello
        source = source_of(conn.peer_address, conn.client_subject)
        if not self.gate.lets_in(conn, source):
            return None
        try:
            token = self.hasher.ref(TOKEN_KINDS[hello.token_kind], hello.token)
            previous = self.hasher.previous_refs(TOKEN_KINDS[hello.token_kind], hello.token)
        except ValueError as err:
            conn.close(ErrorCode.TOKEN_REJECTED, f"the token cannot be used: {err}")
            return None
        if previous and self.table.registry.by_token(token) is None:
            for old in previous:
                if self.table.registry.by_token(old) is not None:
                    log.info("%s: token %s: its session was recorded under a previous token key (as %s)",
                             conn.peer_address, token.short, old.short)  # fmt: skip
                    token, previous = old, ()
                    break
        viewer = Viewer(
            conn,
            f"{conn.peer_address}#{next(self._numbers)}",
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
        return token, viewer, previous

    async def _session_for(
        self, token: TokenRef, viewer: Viewer, previous: tuple[TokenRef, ...] = ()
    ) -> tuple[ServedSession, bool] | None:
        """The session ``token`` shows on ``viewer`` and whether it was running (resumed), as the
        registry decides; None when there is none for it now (the viewer told why)."""
        table = self.table
        conn = viewer.conn
        known = table.registry.by_token(token)
        hung = table.live.get(known.id) if known is not None else None
        if hung is not None and not hung.responding:
            # Before the registry records a move: the viewer that shows the session keeps it.
            log.info("%s: token %s: session %s is not responding; refused for now", conn.peer_address,
                     token.short, hung.id)  # fmt: skip
            conn.close(ErrorCode.SERVER_BUSY, NOT_RESPONDING_REFUSAL)
            return None
        if known is None and self.route is None and table.draining:
            conn.close(
                ErrorCode.SERVER_BUSY,
                "this server is drained for maintenance: it takes no new sessions; use another server",
            )
            return None
        routed = known is None or self.yielded(token)
        if routed and self.route is not None and not await self.route(token, viewer, previous):
            return None  # its session is on another member of the pool (redirected), or no answer
        try:
            p = table.registry.present(token, viewer.key, time.time(), kiosk=viewer.kiosk)
        except RegistryError as err:  # disk full, damaged file: this viewer is told, the server carries on
            log.error("%s: %s", conn.peer_address, err)
            conn.close(ErrorCode.SERVER_BUSY, "the server cannot record sessions now; see its log")
            return None
        if p.outcome is Outcome.REFUSED:
            conn.close(ErrorCode.TOKEN_REJECTED, p.reason or "this server does not accept the token")
            return None
        if p.outcome is Outcome.REAUTH_REQUIRED:
            if self.logins is None:  # the policy has it off without logins; be safe anyway
                conn.close(
                    ErrorCode.TOKEN_REJECTED,
                    "the session needs its owner's password, which this server cannot ask",
                )
                return None
            assert p.session is not None
            unlock = await self.logins.unlock_greeter(token, viewer, conn, p.session)
            return None if unlock is None else (unlock, False)
        if p.outcome is Outcome.NEW_GREETER:
            if self.logins is not None:
                new = await self.logins.new_greeter(token, viewer, conn)
            else:
                new = await self._new_session(token, viewer, conn)
            return None if new is None else (new, False)
        return self._resumed(token, conn, p), True

    def _resumed(self, token: TokenRef, conn: ServerConnection, p: Presentation) -> ServedSession:
        assert p.session is not None
        session = self.table.live.get(p.session.id)
        if session is None:  # in the registry but not known at run time: cannot happen, but be safe
            session = self.table.live[p.session.id] = ServedSession(p.session.id, relink_by=time.monotonic())
        log.info(
            "%s: token %s %s session %s",
            conn.peer_address,
            token.short,
            "moves" if p.outcome is Outcome.MOVED else "resumes",
            session.id,
        )
        return session

    async def _new_session(
        self, token: TokenRef, viewer: Viewer, conn: ServerConnection
    ) -> ServedSession | None:
        """A token without a session (wrsrvd starts sessions itself): start one for it."""
        table = self.table
        settings = table.settings
        if len(table.live) >= settings.max_sessions:
            conn.close(
                ErrorCode.SERVER_BUSY,
                f"this server hosts its limit of {settings.max_sessions} sessions; "
                "try another server or later",
            )
            return None
        size, scale = self.gate.output_for(conn, Kind.SESSION)
        refusal = self.gate.admit(viewer, Kind.SESSION, size)
        if refusal is not None:
            conn.close(ErrorCode.SERVER_BUSY, refusal)
            return None
        secret = secrets.token_urlsafe(32)
        sid = secrets.token_hex(8)
        endpoint = Endpoint(link=str(settings.link_socket), link_secret_sha256=sha256_hex(secret))
        try:
            table.registry.create_session(
                token, viewer.key, _user(), endpoint, time.time(), session_id=sid, kiosk=viewer.kiosk
            )
        except RegistryError as err:
            conn.close(ErrorCode.SERVER_BUSY, f"cannot start a session now: {err}")
            return None
        session = ServedSession(
            sid, source=viewer.source, kind=Kind.SESSION, memory=estimate(Kind.SESSION, *size)
        )
        table.live[sid] = session
        spec = SessionSpec(
            session_id=sid,
            secret=secret,
            link=settings.link_socket,
            runtime_dir=settings.session_runtime_dir,
            command=settings.session_command,
            size=size,
            scale=scale,
            fps=settings.fps,
            idle_fps=settings.idle_fps,
            video=settings.video,
            orphan_timeout=settings.policy.detached_timeout_s,
            log_dir=settings.session_log_dir,
            max_pixels=settings.max_pixels,
            audio=str(settings.audio),
            audio_bitrate=settings.audio_bitrate,
            x11=settings.x11,
            video_bitrate=settings.video_bitrate,
            zstd_level=settings.zstd_level,
            adaptive=settings.adaptive,
            video_scaling=settings.video_scaling,
        )
        try:
            session.process = start_session(spec, functools.partial(self.watch.process_exited, session))
        except OSError as err:
            log.error("cannot start a session: %s", err)
            self.ending.finish(session, EndReason.START_FAILED, f"the session could not be started: {err}")
            conn.close(ErrorCode.INTERNAL_ERROR, "the session could not be started; see the server's log")
            return None
        session.pid = session.process.pid
        table.registry.set_endpoint(
            sid, dataclasses.replace(endpoint, compositor_pid=session.pid), time.time()
        )
        session.relink_by = time.monotonic() + settings.start_timeout
        log.info(
            "%s: token %s gets a new session %s (%dx%d, %s)",
            conn.peer_address,
            token.short,
            sid,
            size[0],
            size[1],
            " ".join(settings.session_command),
        )
        table.changed()
        return session

    async def _serve(self, viewer: Viewer, session: ServedSession, resumed: bool) -> None:
        conn = viewer.conn
        viewer.resumed = resumed
        if not await self.attacher.attach(viewer, session, first=True):
            return
        # What the viewer shows now (a kiosk puts it on its status): a login or unlock screen, or, in
        # login mode, the user's desktop.
        screen = self.table.greeter_kind(session)
        record = self.table.record(session)
        if screen is not None:
            viewer.tell(SessionEventKind.GREETER, screen)
        elif self.table.settings.login and record is not None and record.user is not None:
            viewer.tell(SessionEventKind.DESKTOP, f"the session of {record.user}")
        try:
            async for message in conn:
                target = viewer.session
                if target is None or target.viewer is not viewer:
                    break
                self._to_session(target, viewer, message)
        except ConnectionClosedError:
            pass

    def _to_session(self, session: ServedSession, viewer: Viewer, message: Any) -> None:
        table = self.table
        if isinstance(message, UsbOffer | UsbWithdraw):
            self.usb.handle(viewer, message)
            return
        if isinstance(message, ClipboardText) and not table.settings.clipboard.to_server:
            return
        if isinstance(message, ResizeRequest):
            width, height = table.fit(session, message.width, message.height, message.scale_120)
            if (width, height) != (message.width, message.height):
                message = ResizeRequest(width=width, height=height, scale_120=message.scale_120)
        if isinstance(message, _INPUT):
            if trace.ENABLED and isinstance(message, Key) and message.state == KeyState.PRESSED:
                trace.mark("frontdoor_in", trace.key_id(message.time_ms))
            now = time.monotonic()
            if now - viewer.last_input > 1.0 and not table.closed:
                viewer.last_input = now
                table.registry.note_input(session.id, time.time())
        if session.link is None or (not session.responding and isinstance(message, _DROPPED_WHILE_HUNG)):
            return
        self._relay(session, viewer, message)

    def _relay(self, session: ServedSession, viewer: Viewer, message: Any) -> None:
        """A viewer's message to its session's compositor, within the viewer's share of the link.

        A compositor that does not read (stopped, hung, busy) lets the link's buffer grow; a viewer
        that goes on sending (a flood, pastes into a stopped session) must neither fill it up to the
        link's limit, where the link itself would go, nor leave a backlog the compositor would chew on
        for long when it wakes up. So a message goes only while what waits on the link stays within
        :data:`VIEWER_BACKLOG` (more for the big, rare ones: clipboard text, keymaps). A viewer that
        would go past it is closed with RECEIVE_BUFFER_FULL and a reason: it reconnects, and attaches
        again once the session responds. What it sent until then is delivered, in order; the session
        is not touched."""
        link = session.link
        if link is None or viewer.conn.closed:
            return
        frame = encode_message(message)
        waiting = link.pending_bytes
        limit = BIG_VIEWER_BACKLOG if isinstance(message, _BIG_FROM_VIEWERS) else VIEWER_BACKLOG
        if waiting + len(frame) > limit:
            log.warning(
                "%s: %s sends faster than the session reads (%d bytes wait on its link); closing that "
                "viewer, the session is left alone",
                self.table.who(session),
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
            session.received_bytes += len(frame)
        except LinkOverflow as err:  # not from viewers alone (see VIEWER_BACKLOG): a compositor that hangs
            self.watch.drop_link(session, CloseCode.PROTOCOL_ERROR, err.reason)

    def _left(self, viewer: Viewer) -> None:
        """The viewer's connection is gone: its session is detached (and keeps running)."""
        table = self.table
        session = viewer.session
        event = viewer.conn.close_event
        self.usb.left(viewer, "the kiosk's connection ended" + (f" ({event.describe()})" if event else ""))
        if session is not None and session.viewer is viewer:
            session.viewer = None
            session.send_detach(viewer, event.describe() if event is not None else "the viewer left")
        if not table.closed:  # a handler that outlived stop(): the registry is closed
            # A kiosk that closes on purpose (NO_ERROR: the badge was taken out, the kiosk stopped)
            # left; anything else is a loss it may come back from (see policy.needs_reauth).
            lost = event is None or not (event.by_peer and event.code == ErrorCode.NO_ERROR)
            try:
                table.registry.viewer_left(viewer.key, time.time(), lost=lost)
            except RegistryError as err:
                log.warning("registry: %s", err)
        table.changed()


def _printable(text: str) -> str:
    """What a peer says about itself, fit for one log line (no line breaks or escapes of its own)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
