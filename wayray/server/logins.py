"""wrsrvd's login mode (``sessions = "login"``): login screens, switching to the user's session,
unlock screens, and what wrsessd says about sessions.

A part of :class:`~wayray.server.frontdoor.FrontDoor` that exists in login mode only, kept apart so
that the front door reads as the path every mode shares (viewers, links, ending) and this as what login
mode adds to it:

- a token without a session gets a greeter session from wrsessd (:meth:`Logins.new_greeter`);
  its compositor gets one link secret, the user's compositor its login will start another
  (``session_env``), so the greeter never learns the user's;
- wrsessd's ``started`` event for a login through one of our greeters makes that registry session
  the user's, switches its viewer over on the same connection and ends the greeter
  (:meth:`Logins._logged_in`);
- a presentation that needs re-authentication gets an unlock greeter that exists only for that
  viewer (not in the registry); wrsessd's ``unlocked`` event shows the session there
  (:meth:`Logins._unlocked`);
- sessions end through wrsessd (``kill_session``, see ``ending``) so their PAM sessions close;
  wrsessd's ``ended`` events and the snapshot of every new subscription keep the registry in line
  with what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time

from wayray.launcher import protocol as lp
from wayray.link import Detach, LinkError, Register
from wayray.server.admission import Holding, Kind, estimate
from wayray.server.attach import Attacher
from wayray.server.ending import Ending
from wayray.server.gate import Gate
from wayray.server.launcher import LauncherBridge, LauncherUnavailable
from wayray.server.live import ServedSession, Viewer, host_of, sha256_hex
from wayray.server.model import Endpoint, EndReason, Session, SessionState
from wayray.server.registry import Outcome, Presentation, RegistryError
from wayray.server.table import SessionTable
from wayray.server.tokens import TokenRef
from wayray.transport import ServerConnection
from wayray.wire import ErrorCode, SessionEventKind

log = logging.getLogger("wayray.server")

#: A user's compositor that registers before wrsessd's event about its login waits this long for it.
LOGIN_EVENT_WAIT = 15.0


class Logins:
    def __init__(
        self, table: SessionTable, bridge: LauncherBridge, gate: Gate, attacher: Attacher, ending: Ending
    ) -> None:
        self.table = table
        self.bridge = bridge
        self.gate = gate
        self.attacher = attacher
        self.ending = ending
        #: Link session ids of greeters wrsessd is starting. Their compositor may register before
        #: wrsessd's answer is in: it waits until the session is recorded (the event is set).
        self.starting: dict[str, asyncio.Event] = {}

    def _compositor_env(
        self, session_id: str, secret: str, size: tuple[int, int], scale: int, kind: Kind
    ) -> tuple[str, ...]:
        """What a compositor wrsessd starts needs in its environment (docs/link.md §1)."""
        settings = self.table.settings
        return (
            f"WAYRAY_SESSION_MAX_PIXELS={self.table.max_pixels(kind)}",
            f"WAYRAY_LINK={settings.link_socket}",
            f"WAYRAY_LINK_SESSION={session_id}",
            f"WAYRAY_LINK_SECRET={secret}",  # wrsessd hands it to the compositor in a pipe, not this
            f"WAYRAY_LINK_SERVER_UID={os.geteuid()}",  # the compositor registers only with this uid
            f"WAYRAY_SESSION_SIZE={size[0]}x{size[1]}",
            f"WAYRAY_SESSION_SCALE={scale}",
            f"WAYRAY_SESSION_REFRESH={settings.fps}",
            f"WAYRAY_SESSION_IDLE_FPS={settings.idle_fps}",
            f"WAYRAY_SESSION_ORPHAN_TIMEOUT={settings.policy.detached_timeout_s or 0:g}",
            f"WAYRAY_SESSION_VIDEO={1 if settings.video else 0}",
            # Login and unlock screens have no sound; a user's session has what the policy says.
            f"WAYRAY_SESSION_AUDIO={settings.audio if kind is Kind.SESSION else 'off'}",
            f"WAYRAY_SESSION_AUDIO_BITRATE={settings.audio_bitrate}",
            # Login and unlock screens run no X program: no X display for them.
            f"WAYRAY_SESSION_X11={1 if settings.x11 and kind is Kind.SESSION else 0}",
            f"WAYRAY_SESSION_BITRATE={settings.video_bitrate}",
            f"WAYRAY_SESSION_ZSTD_LEVEL={settings.zstd_level}",
            f"WAYRAY_SESSION_ADAPT={1 if settings.adaptive else 0}",
            f"WAYRAY_SESSION_VIDEO_SCALING={settings.video_scaling}",
        )

    # --- login screens -----------------------------------------------------------------------------

    async def new_greeter(
        self, token: TokenRef, viewer: Viewer, conn: ServerConnection
    ) -> ServedSession | None:
        """A token without a session: wrsessd starts a greeter session for it.

        The greeter's compositor gets one link secret; the user's compositor its login will start gets
        another, through wrsessd (``session_env``), so the greeter never learns it."""
        settings = self.table.settings
        # Login screens still starting count: they are sessions in a moment (kiosks arriving together
        # would otherwise all pass this check while wrsessd starts theirs).
        if len(self.table.live) + len(self.starting) >= settings.max_sessions:
            conn.close(
                ErrorCode.SERVER_BUSY,
                f"this server hosts its limit of {settings.max_sessions} sessions; "
                "try another server or later",
            )
            return None
        size, scale = self.gate.output_for(conn, Kind.LOGIN_SCREEN)
        refusal = self.gate.admit(viewer, Kind.LOGIN_SCREEN, size)
        if refusal is not None:
            conn.close(ErrorCode.SERVER_BUSY, refusal)
            return None
        sid = secrets.token_hex(8)
        greeter_secret, user_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        recorded = self.starting[sid] = asyncio.Event()
        # Counted while wrsessd starts it: connections arriving meanwhile see it.
        self.gate.pending[sid] = Holding(
            viewer.source, Kind.LOGIN_SCREEN, estimate(Kind.LOGIN_SCREEN, *size), False
        )
        try:
            return await self._start_greeter(
                token, viewer, conn, sid, greeter_secret, user_secret, size, scale
            )
        finally:
            recorded.set()
            self.starting.pop(sid, None)
            self.gate.pending.pop(sid, None)

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
    ) -> ServedSession | None:
        settings = self.table.settings
        # The user's session starts at the viewer's screen as a session may have it (it resizes to the
        # viewer when it is shown anyway); the login screen at what a login screen may have.
        user_size, _ = self.gate.output_for(conn, Kind.SESSION)
        try:
            info = await self.bridge.create_greeter(
                token=token.launcher_ref,
                token_kind=token.kind.value,
                rhost=host_of(conn.peer_address),
                env=self._compositor_env(sid, greeter_secret, size, scale, Kind.LOGIN_SCREEN),
                session_env=self._compositor_env(sid, user_secret, user_size, scale, Kind.SESSION),
                max_user_sessions=settings.policy.max_sessions_per_user,
                memory_max=settings.session_memory_max,
                cpu_quota=settings.session_cpu_quota,
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
            link=str(settings.link_socket),
            link_secret_sha256=sha256_hex(greeter_secret),
            uid=info.uid,
            next_link_secret_sha256=sha256_hex(user_secret),
        )
        viewer_key = None if conn.closed else viewer.key
        try:
            self.table.registry.create_greeter(
                token, viewer_key, endpoint, time.time(), session_id=sid, kiosk=viewer.kiosk
            )
        except RegistryError as err:  # the same token presented twice at once: the other one won
            log.info("%s: %s; ending the extra login screen", conn.peer_address, err)
            kill = self.bridge.kill(info.session_id, lp.EndReason.REPLACED)
            self.table.spawn(kill, f"kill-{info.session_id}")
            conn.close(ErrorCode.SERVER_BUSY, "the session is starting elsewhere; try again")
            return None
        greeter = ServedSession(
            sid,
            pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            relink_by=time.monotonic() + settings.start_timeout,
            launcher_session=info.session_id,
            unit=info.unit,
            uid=info.uid,
            source=viewer.source,
            kind=Kind.LOGIN_SCREEN,
            memory=estimate(Kind.LOGIN_SCREEN, *size),
        )
        self.table.live[sid] = greeter
        log.info(
            "%s: token %s gets a login screen: session %s (launcher session %s, %dx%d)",
            conn.peer_address,
            token.short,
            sid,
            info.session_id,
            size[0],
            size[1],
        )
        self.table.changed()
        return greeter

    # --- unlock screens ----------------------------------------------------------------------------

    async def unlock_greeter(
        self, token: TokenRef, viewer: Viewer, conn: ServerConnection, record: Session
    ) -> ServedSession | None:
        """Re-authentication: an unlock greeter asks for the password of ``record``'s owner; wrsessd's
        ``unlocked`` event then shows the session here (:meth:`_unlocked`). The unlock greeter is not
        in the registry: it exists only while this viewer looks at it."""
        if record.endpoint.launcher_session is None:
            conn.close(ErrorCode.SERVER_BUSY, "the session cannot be unlocked right now; try again")
            return None
        size, scale = self.gate.output_for(conn, Kind.UNLOCK_SCREEN)
        refusal = self.gate.admit(viewer, Kind.UNLOCK_SCREEN, size)
        if refusal is not None:
            conn.close(ErrorCode.SERVER_BUSY, refusal)
            return None
        tid = f"u{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        recorded = self.starting[tid] = asyncio.Event()
        memory = estimate(Kind.UNLOCK_SCREEN, *size)
        self.gate.pending[tid] = Holding(viewer.source, Kind.UNLOCK_SCREEN, memory, False)
        try:
            unlock = await self._start_unlock_greeter(token, conn, record, tid, secret, size, scale)
        finally:
            recorded.set()
            self.starting.pop(tid, None)
            self.gate.pending.pop(tid, None)
        if unlock is not None:
            unlock.source, unlock.kind, unlock.memory = viewer.source, Kind.UNLOCK_SCREEN, memory
        return unlock

    async def _start_unlock_greeter(
        self,
        token: TokenRef,
        conn: ServerConnection,
        record: Session,
        tid: str,
        secret: str,
        size: tuple[int, int],
        scale: int,
    ) -> ServedSession | None:
        settings = self.table.settings
        try:
            info = await self.bridge.create_greeter(
                token=token.launcher_ref,
                token_kind=token.kind.value,
                rhost=host_of(conn.peer_address),
                env=self._compositor_env(tid, secret, size, scale, Kind.UNLOCK_SCREEN),
                unlock_session=record.endpoint.launcher_session,
                memory_max=settings.session_memory_max,
                cpu_quota=settings.session_cpu_quota,
            )
        except LauncherUnavailable as err:
            log.error(
                "%s: cannot start an unlock screen for session %s: %s", conn.peer_address, record.id, err
            )
            conn.close(
                ErrorCode.SERVER_BUSY, "the unlock screen could not be started; try again in a moment"
            )
            return None
        unlock = ServedSession(
            tid,
            pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            relink_by=time.monotonic() + settings.start_timeout,
            launcher_session=info.session_id,
            unit=info.unit,
            transient_secret_sha256=sha256_hex(secret),
            uid=info.uid,
            unlocks=record.id,
        )
        self.table.unlocking[tid] = unlock
        log.info(
            "%s: token %s: session %s of %s needs its password; unlock screen %s",
            conn.peer_address,
            token.short,
            record.id,
            record.user,
            tid,
        )
        if conn.closed:
            self.ending.end_unlock_screen(unlock, "the viewer left")
        return unlock

    # --- compositors registering -------------------------------------------------------------------

    async def before_register(self, reg: Register) -> None:
        """A compositor's Register may come before what it needs is known here: a greeter's, before
        wrsessd's answer is recorded; the user's compositor a greeter's login started, before wrsessd's
        event about that login arrives. It waits here (briefly) for that."""
        starting = self.starting.get(reg.session_id)
        if starting is not None:  # its greeter session is being recorded right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(starting.wait(), self.table.settings.start_timeout)
        record = self.table.registry.find(reg.session_id)
        greeter = self.table.live.get(reg.session_id)
        if record is None or greeter is None or record.state is not SessionState.GREETER:
            return
        pending = record.endpoint.next_link_secret_sha256
        if pending and hmac.compare_digest(sha256_hex(reg.secret), pending):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(greeter.login_done.wait(), LOGIN_EVENT_WAIT)

    # --- what wrsessd says -------------------------------------------------------------------------

    def launcher_event(self, event: lp.SessionEvent) -> None:
        info = event.session
        if event.event is lp.SessionEventKind.STARTED and info.replaces is not None:
            self._logged_in(info)
        elif event.event is lp.SessionEventKind.UNLOCKED and event.greeter_session is not None:
            self._unlocked(info, event.greeter_session)
        elif event.event is lp.SessionEventKind.ENDED:
            self._launcher_ended(info, event.reason)

    def launcher_snapshot(self, sessions: tuple[lp.SessionInfo, ...]) -> None:
        """(Re)subscribed: bring the registry in line with what wrsessd runs. Sessions it no longer
        runs have ended; a login that happened while nobody listened is switched over now."""
        running = {info.session_id: info for info in sessions}
        for session in self.table.live.values():  # a restarted wrsrvd learns their scopes here
            known = running.get(session.launcher_session or "")
            if known is not None:
                session.unit = known.unit
        for info in sessions:
            if info.replaces is not None:
                self._logged_in(info)
        for session in list(self.table.live.values()):
            if (
                session.launcher_session is not None
                and session.launcher_session not in running
                and not session.ended
            ):
                self.ending.finish(
                    session, EndReason.LAUNCHER_ENDED, "the session launcher no longer runs it"
                )
        for unlock in list(self.table.unlocking.values()):
            if unlock.launcher_session not in running:
                self.ending.finish(unlock, EndReason.LAUNCHER_ENDED, "the unlock screen is gone")

    def _logged_in(self, info: lp.SessionInfo) -> None:
        """A greeter's login started ``info`` (the user's session): the registry session now is the
        user's, served by the new compositor; its viewer is switched over; the greeter ends."""
        assert info.replaces is not None
        table = self.table
        record = table.registry.by_launcher_session(info.replaces)
        if record is None or record.state is not SessionState.GREETER:
            return  # not one of ours (another instance's greeter), or already done
        session = table.live.get(record.id)
        if session is None or session.ended:
            return
        endpoint = Endpoint(
            launcher_session=info.session_id,
            compositor_pid=info.compositor_pid,
            wayland_display=info.wayland_display,
            link=record.endpoint.link,
            link_secret_sha256=record.endpoint.next_link_secret_sha256,
            uid=info.uid,
        )
        new = table.registry.logged_in(record.id, info.user, endpoint, time.time())
        log.info(
            "session %s: %s logged in (launcher session %s replaces login screen %s)",
            record.id,
            info.user,
            info.session_id,
            info.replaces,
        )
        greeter_link = session.link
        if greeter_link is not None:
            table.retired.add(greeter_link)
        session.link = None
        session.linked.clear()
        session.pid = info.compositor_pid
        session.uid = info.uid
        session.wayland_display = info.wayland_display
        session.launcher_session = info.session_id
        session.unit = info.unit
        session.kind = Kind.SESSION  # somebody's now: it no longer counts against its source
        session.relink_by = time.monotonic() + table.settings.start_timeout
        viewer = session.viewer
        if viewer is not None:
            if greeter_link is not None and viewer.attach_id:
                with contextlib.suppress(LinkError):
                    greeter_link.send(Detach(attach_id=viewer.attach_id, reason="the user logged in"))
            viewer.attach_id = 0  # switching: it waits for the user's compositor (see LinkSide)
        session.login_done.set()
        table.spawn(self.bridge.kill(info.replaces, lp.EndReason.REPLACED), f"kill-{info.replaces}")
        if viewer is not None and new.viewer == viewer.key:
            table.spawn(
                self.attacher.switch(viewer, session, SessionEventKind.DESKTOP, f"{info.user} logged in"),
                f"switch-{record.id}",
            )
        table.changed()

    def _unlocked(self, info: lp.SessionInfo, greeter_session: str) -> None:
        """An unlock greeter succeeded: show the session it unlocked on that greeter's viewer."""
        table = self.table
        unlock = next((u for u in table.unlocking.values() if u.launcher_session == greeter_session), None)
        if unlock is None or unlock.unlocks is None:
            return
        viewer = unlock.viewer
        self.ending.end_unlock_screen(unlock, "unlocked")
        record = table.registry.find(unlock.unlocks)
        session = table.live.get(unlock.unlocks)
        if viewer is None or viewer.conn.closed or record is None or session is None or session.ended:
            return
        try:
            p: Presentation = table.registry.attach(
                record.id, viewer.key, time.time(), kiosk=viewer.kiosk, reauthenticated=True
            )
        except RegistryError as err:
            log.warning("session %s: cannot show it after unlocking: %s", record.id, err)
            viewer.conn.close(ErrorCode.SESSION_ENDED, "the session ended")
            return
        log.info(
            "%s: session %s of %s unlocked; %s",
            viewer.conn.peer_address,
            record.id,
            record.user,
            "it moves here" if p.outcome is Outcome.MOVED else "shown here",
        )
        unlock.send_detach(viewer, "the session is unlocked")
        unlock.viewer = None
        viewer.attach_id = 0
        viewer.session = session
        table.spawn(
            self.attacher.switch(
                viewer, session, SessionEventKind.DESKTOP, f"the session of {record.user} is unlocked"
            ),
            f"switch-{record.id}",
        )

    def _launcher_ended(self, info: lp.SessionInfo, reason: lp.EndReason | None) -> None:
        """wrsessd says a session ended (its compositor exited, an operator of wrsessd, a crash)."""
        table = self.table
        record = table.registry.by_launcher_session(info.session_id)
        if record is not None:
            session = table.live.get(record.id)
            why = f"the session launcher ended it ({reason or 'unknown reason'})"
            if session is not None:
                self.ending.finish(session, EndReason.LAUNCHER_ENDED, why)
            else:
                table.registry.end(record.id, EndReason.LAUNCHER_ENDED, time.time())
            return
        unlock = next((u for u in table.unlocking.values() if u.launcher_session == info.session_id), None)
        if unlock is not None:
            self.ending.finish(
                unlock, EndReason.LAUNCHER_ENDED, "the unlock screen ended; present your badge again"
            )
