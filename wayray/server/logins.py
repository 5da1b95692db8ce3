"""wrsrvd's login mode (``sessions = "login"``): login screens, switching to the user's session,
unlock screens, and what wrsessd says about sessions.

A mixin of :class:`~wayray.server.frontdoor.FrontDoor`, kept apart so that the front door reads as
the path every mode shares (viewers, links, ending) and this as what login mode adds to it:

- a token without a session gets a greeter session from wrsessd (:meth:`LoginMode._new_greeter`);
  its compositor gets one link secret, the user's compositor its login will start another
  (``session_env``), so the greeter never learns the user's;
- wrsessd's ``started`` event for a login through one of our greeters makes that registry session
  the user's, switches its viewer over on the same connection and ends the greeter
  (:meth:`LoginMode._logged_in`);
- a presentation that needs re-authentication gets an unlock greeter that exists only for that
  viewer (not in the registry); wrsessd's ``unlocked`` event shows the session there
  (:meth:`LoginMode._unlocked`);
- sessions end through wrsessd (``kill_session``) so their PAM sessions close; wrsessd's ``ended``
  events and the snapshot of every new subscription keep the registry in line with what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from wayray.launcher import protocol as lp
from wayray.link import Detach, End, LinkError, Register
from wayray.link.stream import LinkStream
from wayray.server.admission import Holding, Kind, estimate
from wayray.server.launcher import LauncherBridge, LauncherUnavailable
from wayray.server.live import LiveSession, Viewer, host_of, sha256_hex
from wayray.server.model import Endpoint, EndReason, Session, SessionState
from wayray.server.registry import Outcome, Presentation, Registry, RegistryError
from wayray.server.settings import FrontDoorSettings
from wayray.server.tokens import TokenRef
from wayray.transport import ServerConnection
from wayray.wire import ErrorCode, SessionEventKind

log = logging.getLogger("wayray.server")

#: A user's compositor that registers before wrsessd's event about its login waits this long for it.
LOGIN_EVENT_WAIT = 15.0
#: Why a registry session ended → what wrsessd records for the PAM session it closes.
LAUNCHER_REASONS = {
    EndReason.LOGOUT: lp.EndReason.LOGOUT,
    EndReason.OPERATOR: lp.EndReason.OPERATOR,
    EndReason.DETACHED_TIMEOUT: lp.EndReason.POLICY,
    EndReason.IDLE_TIMEOUT: lp.EndReason.POLICY,
    EndReason.GREETER_TIMEOUT: lp.EndReason.POLICY,
}


class LoginMode:
    if TYPE_CHECKING:  # what the front door provides
        settings: FrontDoorSettings
        registry: Registry | None
        bridge: LauncherBridge | None
        live: dict[str, LiveSession]
        unlocking: dict[str, LiveSession]
        _starting: dict[str, asyncio.Event]
        _retired: set[LinkStream]
        _pending: dict[str, Holding]

        def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]: ...
        def _changed(self) -> None: ...
        def _finish(self, ls: LiveSession, reason: EndReason, detail: str) -> None: ...
        def _output_for(self, conn: ServerConnection, kind: Kind) -> tuple[tuple[int, int], int]: ...
        def _max_pixels(self, kind: Kind) -> int: ...
        def _admit(self, viewer: Viewer, kind: Kind, size: tuple[int, int]) -> str | None: ...
        async def _switch(
            self, viewer: Viewer, ls: LiveSession, event: SessionEventKind, detail: str
        ) -> None: ...

    def _compositor_env(
        self, session_id: str, secret: str, size: tuple[int, int], scale: int, kind: Kind
    ) -> tuple[str, ...]:
        """Login mode: what a compositor wrsessd starts needs in its environment (docs/link.md §1)."""
        s = self.settings
        return (
            f"WAYRAY_SESSION_MAX_PIXELS={self._max_pixels(kind)}",
            f"WAYRAY_LINK={s.link_socket}",
            f"WAYRAY_LINK_SESSION={session_id}",
            f"WAYRAY_LINK_SECRET={secret}",  # wrsessd hands it to the compositor in a pipe, not this
            f"WAYRAY_LINK_SERVER_UID={os.geteuid()}",  # the compositor registers only with this uid
            f"WAYRAY_SESSION_SIZE={size[0]}x{size[1]}",
            f"WAYRAY_SESSION_SCALE={scale}",
            f"WAYRAY_SESSION_REFRESH={s.fps}",
            f"WAYRAY_SESSION_IDLE_FPS={s.idle_fps}",
            f"WAYRAY_SESSION_ORPHAN_TIMEOUT={s.policy.detached_timeout_s or 0:g}",
            f"WAYRAY_SESSION_VIDEO={1 if s.video else 0}",
        )

    async def _new_greeter(
        self, token: TokenRef, viewer: Viewer, conn: ServerConnection
    ) -> LiveSession | None:
        """Login mode, a token without a session: wrsessd starts a greeter session for it.

        The greeter's compositor gets one link secret; the user's compositor its login will start gets
        another, through wrsessd (``session_env``), so the greeter never learns it."""
        assert self.registry is not None and self.bridge is not None
        s = self.settings
        # Login screens still starting count: they are sessions in a moment (kiosks arriving together
        # would otherwise all pass this check while wrsessd starts theirs).
        if len(self.live) + len(self._starting) >= s.max_sessions:
            conn.close(
                ErrorCode.SERVER_BUSY,
                f"this server hosts its limit of {s.max_sessions} sessions; try another server or later",
            )
            return None
        size, scale = self._output_for(conn, Kind.LOGIN_SCREEN)
        refusal = self._admit(viewer, Kind.LOGIN_SCREEN, size)
        if refusal is not None:
            conn.close(ErrorCode.SERVER_BUSY, refusal)
            return None
        sid = secrets.token_hex(8)
        greeter_secret, user_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        recorded = self._starting[sid] = asyncio.Event()
        # Counted while wrsessd starts it: connections arriving meanwhile see it.
        self._pending[sid] = Holding(
            viewer.source, Kind.LOGIN_SCREEN, estimate(Kind.LOGIN_SCREEN, *size), False
        )
        try:
            return await self._start_greeter(
                token, viewer, conn, sid, greeter_secret, user_secret, size, scale
            )
        finally:
            recorded.set()
            self._starting.pop(sid, None)
            self._pending.pop(sid, None)

    async def _start_greeter(
        self,
        token: TokenRef,
        viewer: Viewer,
        conn: ServerConnection,
        sid: str,
        greeter_secret: str,
        user_secret: str,
        size: tuple[int, int],
        scale: int,
    ) -> LiveSession | None:
        assert self.registry is not None and self.bridge is not None
        s = self.settings
        # The user's session starts at the viewer's screen as a session may have it (it resizes to the
        # viewer when it is shown anyway); the login screen at what a login screen may have.
        user_size, _ = self._output_for(conn, Kind.SESSION)
        try:
            info = await self.bridge.create_greeter(
                token=token.launcher_ref,
                token_kind=token.kind.value,
                rhost=host_of(conn.peer_address),
                env=self._compositor_env(sid, greeter_secret, size, scale, Kind.LOGIN_SCREEN),
                session_env=self._compositor_env(sid, user_secret, user_size, scale, Kind.SESSION),
                max_user_sessions=s.policy.max_sessions_per_user,
                memory_max=s.session_memory_max,
                cpu_quota=s.session_cpu_quota,
            )
        except LauncherUnavailable as err:
            log.error(
                "%s: cannot start a login screen for token %s: %s", conn.peer_address, token.short, err
            )
            conn.close(ErrorCode.SERVER_BUSY, "the login screen could not be started; try again in a moment")
            return None
        endpoint = Endpoint(
            launcher_session=info.session_id,
            compositor_pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            link=str(s.link_socket),
            link_secret_sha256=sha256_hex(greeter_secret),
            uid=info.uid,
            next_link_secret_sha256=sha256_hex(user_secret),
        )
        viewer_key = None if conn.closed else viewer.key
        try:
            self.registry.create_greeter(
                token, viewer_key, endpoint, time.time(), session_id=sid, kiosk=viewer.kiosk
            )
        except RegistryError as err:  # the same token presented twice at once: the other one won
            log.info("%s: %s; ending the extra login screen", conn.peer_address, err)
            self._spawn(self.bridge.kill(info.session_id, lp.EndReason.REPLACED), f"kill-{info.session_id}")
            conn.close(ErrorCode.SERVER_BUSY, "the session is starting elsewhere; try again")
            return None
        ls = LiveSession(
            sid,
            pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            relink_by=time.monotonic() + s.start_timeout,
            launcher_session=info.session_id,
            uid=info.uid,
            source=viewer.source,
            kind=Kind.LOGIN_SCREEN,
            memory=estimate(Kind.LOGIN_SCREEN, *size),
        )
        self.live[sid] = ls
        log.info(
            "%s: token %s gets a login screen: session %s (launcher session %s, %dx%d)",
            conn.peer_address,
            token.short,
            sid,
            info.session_id,
            size[0],
            size[1],
        )
        self._changed()
        return ls

    async def _unlock_greeter(
        self, token: TokenRef, viewer: Viewer, conn: ServerConnection, session: Session
    ) -> LiveSession | None:
        """Login mode, re-authentication: an unlock greeter asks for the password of ``session``'s
        owner; wrsessd's ``unlocked`` event then shows the session here (:meth:`_unlocked`). The unlock
        greeter is not in the registry: it exists only while this viewer looks at it."""
        assert self.bridge is not None
        if session.endpoint.launcher_session is None:
            conn.close(ErrorCode.SERVER_BUSY, "the session cannot be unlocked right now; try again")
            return None
        size, scale = self._output_for(conn, Kind.UNLOCK_SCREEN)
        refusal = self._admit(viewer, Kind.UNLOCK_SCREEN, size)
        if refusal is not None:
            conn.close(ErrorCode.SERVER_BUSY, refusal)
            return None
        tid = f"u{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        recorded = self._starting[tid] = asyncio.Event()
        memory = estimate(Kind.UNLOCK_SCREEN, *size)
        self._pending[tid] = Holding(viewer.source, Kind.UNLOCK_SCREEN, memory, False)
        try:
            ls = await self._start_unlock_greeter(token, conn, session, tid, secret, size, scale)
        finally:
            recorded.set()
            self._starting.pop(tid, None)
            self._pending.pop(tid, None)
        if ls is not None:
            ls.source, ls.kind, ls.memory = viewer.source, Kind.UNLOCK_SCREEN, memory
        return ls

    async def _start_unlock_greeter(
        self,
        token: TokenRef,
        conn: ServerConnection,
        session: Session,
        tid: str,
        secret: str,
        size: tuple[int, int],
        scale: int,
    ) -> LiveSession | None:
        assert self.bridge is not None
        try:
            info = await self.bridge.create_greeter(
                token=token.launcher_ref,
                token_kind=token.kind.value,
                rhost=host_of(conn.peer_address),
                env=self._compositor_env(tid, secret, size, scale, Kind.UNLOCK_SCREEN),
                unlock_session=session.endpoint.launcher_session,
                memory_max=self.settings.session_memory_max,
                cpu_quota=self.settings.session_cpu_quota,
            )
        except LauncherUnavailable as err:
            log.error(
                "%s: cannot start an unlock screen for session %s: %s", conn.peer_address, session.id, err
            )
            conn.close(
                ErrorCode.SERVER_BUSY, "the unlock screen could not be started; try again in a moment"
            )
            return None
        ls = LiveSession(
            tid,
            pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            relink_by=time.monotonic() + self.settings.start_timeout,
            launcher_session=info.session_id,
            transient_secret_sha256=sha256_hex(secret),
            uid=info.uid,
            unlocks=session.id,
        )
        self.unlocking[tid] = ls
        log.info(
            "%s: token %s: session %s of %s needs its password; unlock screen %s",
            conn.peer_address,
            token.short,
            session.id,
            session.user,
            tid,
        )
        if conn.closed:
            self._end_transient(ls, "the viewer left")
        return ls

    def _end_transient(self, ls: LiveSession, why: str) -> None:
        """An unlock greeter is no longer needed (done, abandoned, or its viewer left)."""
        if self.unlocking.pop(ls.id, None) is None:
            return
        ls.ended = True
        ls.linked.set()
        log.info("unlock screen %s ends: %s", ls.id, why)
        if self.bridge is not None and ls.launcher_session is not None:
            reason = lp.EndReason.REPLACED if why == "unlocked" else lp.EndReason.POLICY
            self._spawn(self.bridge.kill(ls.launcher_session, reason), f"kill-{ls.launcher_session}")

    async def _await_login_event(self, reg: Register) -> None:
        """The user's compositor a greeter's login started may register before wrsessd's event about
        that login arrives: it then waits here (briefly) until the greeter was switched over."""
        if self.registry is None or self.bridge is None:
            return
        s = self.registry.find(reg.session_id)
        ls = self.live.get(reg.session_id)
        if s is None or ls is None or s.state is not SessionState.GREETER:
            return
        pending = s.endpoint.next_link_secret_sha256
        if pending and hmac.compare_digest(sha256_hex(reg.secret), pending):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ls.login_done.wait(), LOGIN_EVENT_WAIT)

    async def _kill_launched(
        self, launcher_session: str, reason: lp.EndReason, link: LinkStream | None, detail: str
    ) -> None:
        assert self.bridge is not None
        if not await self.bridge.kill(launcher_session, reason) and link is not None:
            with contextlib.suppress(LinkError):
                link.send(End(reason=detail[:1000]))

    def _launcher_event(self, event: lp.SessionEvent) -> None:
        info = event.session
        if event.event is lp.SessionEventKind.STARTED and info.replaces is not None:
            self._logged_in(info)
        elif event.event is lp.SessionEventKind.UNLOCKED and event.greeter_session is not None:
            self._unlocked(info, event.greeter_session)
        elif event.event is lp.SessionEventKind.ENDED:
            self._launcher_ended(info, event.reason)

    def _launcher_snapshot(self, sessions: tuple[lp.SessionInfo, ...]) -> None:
        """(Re)subscribed: bring the registry in line with what wrsessd runs. Sessions it no longer
        runs have ended; a login that happened while nobody listened is switched over now."""
        if self.registry is None:
            return
        running = {info.session_id: info for info in sessions}
        for info in sessions:
            if info.replaces is not None:
                self._logged_in(info)
        for ls in list(self.live.values()):
            if ls.launcher_session is not None and ls.launcher_session not in running and not ls.ended:
                self._finish(ls, EndReason.LAUNCHER_ENDED, "the session launcher no longer runs it")
        for ls in list(self.unlocking.values()):
            if ls.launcher_session not in running:
                self._finish(ls, EndReason.LAUNCHER_ENDED, "the unlock screen is gone")

    def _logged_in(self, info: lp.SessionInfo) -> None:
        """A greeter's login started ``info`` (the user's session): the registry session now is the
        user's, served by the new compositor; its viewer is switched over; the greeter ends."""
        assert self.registry is not None and info.replaces is not None
        s = self.registry.by_launcher_session(info.replaces)
        if s is None or s.state is not SessionState.GREETER:
            return  # not one of ours (another instance's greeter), or already done
        ls = self.live.get(s.id)
        if ls is None or ls.ended:
            return
        endpoint = Endpoint(
            launcher_session=info.session_id,
            compositor_pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            link=s.endpoint.link,
            link_secret_sha256=s.endpoint.next_link_secret_sha256,
            uid=info.uid,
        )
        new = self.registry.logged_in(s.id, info.user, endpoint, time.time())
        log.info(
            "session %s: %s logged in (launcher session %s replaces login screen %s)",
            s.id,
            info.user,
            info.session_id,
            info.replaces,
        )
        greeter_link = ls.link
        if greeter_link is not None:
            self._retired.add(greeter_link)
        ls.link = None
        ls.linked.clear()
        ls.pid = info.compositor_pid
        ls.uid = info.uid
        ls.wayland_display = info.wayland_display
        ls.launcher_session = info.session_id
        ls.kind = Kind.SESSION  # somebody's now: it no longer counts against its source
        ls.relink_by = time.monotonic() + self.settings.start_timeout
        viewer = ls.viewer
        if viewer is not None:
            if greeter_link is not None and viewer.attach_id:
                with contextlib.suppress(LinkError):
                    greeter_link.send(Detach(attach_id=viewer.attach_id, reason="the user logged in"))
            viewer.attach_id = 0  # switching: it waits for the user's compositor (see _register)
        ls.login_done.set()
        assert self.bridge is not None
        self._spawn(self.bridge.kill(info.replaces, lp.EndReason.REPLACED), f"kill-{info.replaces}")
        if viewer is not None and new.viewer == viewer.key:
            self._spawn(
                self._switch(viewer, ls, SessionEventKind.DESKTOP, f"{info.user} logged in"),
                f"switch-{s.id}",
            )
        self._changed()

    def _unlocked(self, info: lp.SessionInfo, greeter_session: str) -> None:
        """An unlock greeter succeeded: show the session it unlocked on that greeter's viewer."""
        assert self.registry is not None
        t = next((u for u in self.unlocking.values() if u.launcher_session == greeter_session), None)
        if t is None or t.unlocks is None:
            return
        viewer = t.viewer
        self._end_transient(t, "unlocked")
        s = self.registry.find(t.unlocks)
        ls = self.live.get(t.unlocks)
        if viewer is None or viewer.conn.closed or s is None or ls is None or ls.ended:
            return
        try:
            p: Presentation = self.registry.attach(
                s.id, viewer.key, time.time(), kiosk=viewer.kiosk, reauthenticated=True
            )
        except RegistryError as err:
            log.warning("session %s: cannot show it after unlocking: %s", s.id, err)
            viewer.conn.close(ErrorCode.SESSION_ENDED, "the session ended")
            return
        log.info(
            "%s: session %s of %s unlocked; %s",
            viewer.conn.peer_address,
            s.id,
            s.user,
            "it moves here" if p.outcome is Outcome.MOVED else "shown here",
        )
        if t.link is not None and viewer.attach_id:
            with contextlib.suppress(LinkError):
                t.link.send(Detach(attach_id=viewer.attach_id, reason="the session is unlocked"))
        t.viewer = None
        viewer.attach_id = 0
        viewer.session = ls
        self._spawn(
            self._switch(viewer, ls, SessionEventKind.DESKTOP, f"the session of {s.user} is unlocked"),
            f"switch-{s.id}",
        )

    def _launcher_ended(self, info: lp.SessionInfo, reason: lp.EndReason | None) -> None:
        """wrsessd says a session ended (its compositor exited, an operator of wrsessd, a crash)."""
        if self.registry is None:
            return
        s = self.registry.by_launcher_session(info.session_id)
        if s is not None:
            ls = self.live.get(s.id)
            why = f"the session launcher ended it ({reason or 'unknown reason'})"
            if ls is not None:
                self._finish(ls, EndReason.LAUNCHER_ENDED, why)
            else:
                self.registry.end(s.id, EndReason.LAUNCHER_ENDED, time.time())
            return
        t = next((u for u in self.unlocking.values() if u.launcher_session == info.session_id), None)
        if t is not None:
            self._finish(t, EndReason.LAUNCHER_ENDED, "the unlock screen ended; present your badge again")
