"""What the front door answers on its admin socket: one handler per request type, each taking the
request and giving the answer as the messages :mod:`wayray.server.admin_protocol` declares (so what
wrsrvd says is checked against the same table wradm reads it with and docs/running.md documents).
``wayray.server.admin`` frames them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from wayray.common.schema import Direction, Message
from wayray.link import LinkError, Screenshot
from wayray.server import admin_protocol as ap
from wayray.server.admin import AdminError
from wayray.server.ending import Ending
from wayray.server.live import ServedSession, SessionNotResponding
from wayray.server.model import EndReason, Session, SessionState, kiosk_of
from wayray.server.table import SessionTable
from wayray.server.usage import session_usage
from wayray.wire import ErrorCode, SessionEventKind

log = logging.getLogger("wayray.server")

SCREENSHOT_TIMEOUT = 20.0

Handler = Callable[[Any], Awaitable[ap.Answer]]


class AdminRequests:
    def __init__(
        self,
        table: SessionTable,
        ending: Ending,
        *,
        status: Callable[[], ap.StatusAnswer],
        reloader: Callable[[], Awaitable[ap.Reloaded | ap.ReloadRefused]] | None,
        drain: Callable[[bool], bool] | None = None,
        pool: Callable[[bool], Awaitable[ap.PoolAnswer]] | None = None,
    ) -> None:
        self.table = table
        self.ending = ending
        #: The front door's status answer (it knows what it listens on and how it was started).
        self._status = status
        #: Instance mode: reloads the configuration (wrsrvd's command line knows where it is).
        self._reloader = reloader
        self._drain = drain
        self._pool = pool
        self._screenshot_ids = itertools.count(1)
        self._handlers: dict[type[Message], Handler] = {
            ap.Status: self._answer_status,
            ap.Sessions: self._sessions,
            ap.Kill: self._kill,
            ap.Detach: self._detach,
            ap.Screenshot: self._screenshot,
            ap.Reload: self._reload,
            ap.Usb: self._usb,
            ap.Drain: self._drain_request,
            ap.Pool: self._pool_request,
        }

    async def answer(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request as the socket received it (an AdminError is its ``error``)."""
        known = ", ".join(cls.type for cls in self._handlers)
        if obj.get("type") not in {cls.type for cls in ap.ADMIN.messages(Direction.REQUEST)}:
            raise AdminError(f"unknown request type {obj.get('type')!r} (known: {known})")
        request = ap.ADMIN.parse(obj, Direction.REQUEST)
        answer = await self._handlers[type(request)](request)
        return answer.to_json()

    # --- what the sessions are ---------------------------------------------------------------------

    def by_state(self) -> dict[str, int]:
        """How many sessions are in each state, as operators see them."""
        states = Counter(self._shown(record)[0] for record in self.table.registry.live_sessions())
        return dict(sorted(states.items()))

    def viewer_count(self) -> int:
        return sum(1 for record in self.table.registry.live_sessions() if self._shown(record)[1] is not None)

    def _shown(self, record: Session) -> tuple[str, str | None]:
        """A session's state as operators see it, and the viewer (key) that shows it: a detached
        session whose unlock screen is up at a kiosk is "unlocking" there."""
        if record.state is SessionState.DETACHED or (
            record.state is SessionState.ACTIVE and record.viewer is None
        ):
            for unlock in self.table.unlocking.values():
                if unlock.unlocks == record.id and unlock.viewer is not None and not unlock.ended:
                    return "unlocking", unlock.viewer.key
        return str(record.state), record.viewer

    def _scope_of(self, sid: str) -> tuple[str | None, int | None]:
        """The systemd scope a login-mode session runs in (wrsessd said so) and its uid."""
        session, record = self.table.live.get(sid), self.table.registry.find(sid)
        uid = session.uid if session is not None and session.uid is not None else None
        if uid is None and record is not None:
            uid = record.endpoint.uid
        return (session.unit if session is not None else None), uid

    def _describe(self, record: Session) -> ap.SessionRow:
        session = self.table.live.get(record.id)
        state, viewer = self._shown(record)
        detached = record.state is SessionState.DETACHED
        return ap.SessionRow(
            id=record.id,
            state=state,
            token=record.token.short,
            user=record.user,
            viewer=viewer,
            kiosk=kiosk_of(viewer) if viewer else None,
            since=(record.detached_at or record.changed_at) if detached else record.changed_at,
            launcher_session=record.endpoint.launcher_session,
            linked=bool(session and session.link is not None),
            # Whether its compositor answers the link's pings (None: not on its link, or too old to be
            # pinged), and since when it does not; False too for one that runs but did not come back
            # to its link in time.
            responding=None
            if session is None
            or (session.responding and (session.link is None or session.keepalive is None))
            else session.responding,
            not_responding_since=session.not_responding_at if session else None,
            pid=session.pid if session else record.endpoint.compositor_pid,
            wayland_display=session.wayland_display if session else record.endpoint.wayland_display,
            output=tuple(session.output) if session else None,
            created_at=record.created_at,
            changed_at=record.changed_at,
            sent_bytes=session.sent_bytes if session else None,
            received_bytes=session.received_bytes if session else None,
        )

    # --- the requests ------------------------------------------------------------------------------

    async def _answer_status(self, request: ap.Status) -> ap.StatusAnswer:
        return self._status()

    async def _sessions(self, request: ap.Sessions) -> ap.SessionsAnswer:
        rows = tuple(self._describe(r) for r in self.table.registry.live_sessions())
        if request.usage:
            # Reading smaps and cgroups of every session: off the loop, which serves viewers meanwhile.
            where = [(row.pid, *self._scope_of(row.id)) for row in rows]
            used = await asyncio.get_running_loop().run_in_executor(
                None, lambda: [session_usage(pid, unit, uid) for pid, unit, uid in where]
            )
            rows = tuple(
                row
                if u is None
                else dataclasses.replace(
                    row, cpu_s=round(u.cpu_s, 2), memory_bytes=u.memory_bytes, measured_by=u.measured_by
                )  # fmt: skip
                for row, u in zip(rows, used, strict=True)
            )
        return ap.SessionsAnswer(sessions=rows)

    def _find(self, sid: str) -> tuple[Session, ServedSession]:
        record = self.table.registry.find(sid)
        session = self.table.live.get(record.id) if record is not None else None
        if record is None or session is None:
            raise AdminError(f"no live session {sid!r} (wradm sessions lists them)")
        return record, session

    async def _kill(self, request: ap.Kill) -> ap.Killed:
        record, session = self._find(request.session_id)
        log.info("session %s of %s: ended by an operator", record.id, record.user or "-")
        self.ending.end_session(session, EndReason.OPERATOR, "an operator ended the session")
        return ap.Killed(session_id=record.id)

    async def _detach(self, request: ap.Detach) -> ap.Detached:
        record, session = self._find(request.session_id)
        viewer = session.viewer
        if viewer is None:
            raise AdminError(f"session {record.id} is not shown anywhere ({record.state})")
        log.info(
            "session %s of %s: detached from %s by an operator",
            record.id,
            record.user or "-",
            viewer.conn.peer_address,
        )
        session.viewer = None
        session.send_detach(viewer, "an operator detached the viewer")
        self.table.registry.detach(record.id, time.time())
        detail = "an operator detached the session; it keeps running"
        viewer.tell_and_close(SessionEventKind.DETACHED, ErrorCode.NO_ERROR, detail)
        self.table.changed()
        return ap.Detached(session_id=record.id)

    async def _screenshot(self, request: ap.Screenshot) -> ap.ScreenshotAnswer:
        sid = request.session_id
        session = self.table.live.get(sid)
        if session is None:
            raise AdminError(f"no live session {sid!r}")
        if session.link is None:
            raise AdminError(f"session {sid} is not on its link right now (starting or reconnecting)")
        if not session.responding:
            raise AdminError(f"session {sid} is not responding: its compositor answers nothing")
        rid = next(self._screenshot_ids) & 0xFFFF_FFFF
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        session.screenshots[rid] = fut
        session.link.send(Screenshot(request_id=rid, include_cursor=request.include_cursor))
        try:
            png = await asyncio.wait_for(fut, SCREENSHOT_TIMEOUT)
        except TimeoutError:
            raise AdminError("the compositor did not send the screenshot in time") from None
        except (LinkError, SessionNotResponding) as err:
            raise AdminError(err.reason) from None
        finally:
            session.screenshots.pop(rid, None)
        # What is on a person's screen is theirs: who looked, and when, is on the record.
        record = self.table.registry.find(sid)
        user = record.user if record is not None else None
        log.info("session %s of %s: a screenshot was taken through the admin socket", sid, user or "-")
        return ap.ScreenshotAnswer(png_base64=base64.b64encode(png).decode())

    async def _drain_request(self, request: ap.Drain) -> ap.Drained:
        if self._drain is None:
            raise AdminError("this wrsrvd cannot be drained")
        return ap.Drained(draining=self._drain(request.draining))

    async def _pool_request(self, request: ap.Pool) -> ap.PoolAnswer:
        if self._pool is None:
            raise AdminError("this server is in no pool")
        return await self._pool(request.sessions)

    async def _reload(self, request: ap.Reload) -> ap.Reloaded | ap.ReloadRefused:
        if self._reloader is None:
            raise AdminError("this wrsrvd runs without configuration files (standalone): nothing to reload")
        return await self._reloader()

    async def _usb(self, request: ap.Usb) -> ap.UsbAnswer:
        """The USB devices kiosks offered, with what the rules said (docs/usb.md)."""
        return ap.UsbAnswer(devices=tuple(ap.UsbDeviceRow.from_json(d) for d in self.table.usb.listing()))
