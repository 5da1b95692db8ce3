"""Whether each session's compositor is there and answers: the keep-alive on its link, a link that
drops, a compositor that does not come back to its link, a process that exits.

A compositor that stops answering is *not responding*: said to the log, to operators (``wradm``) and to
its viewer, and left running (its user's work is in it; ``wradm session kill`` ends it). One that is
gone ends its session. Nothing here waits on a compositor: a hung one cannot hold up wrsrvd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from wayray.common.processes import pid_alive, process_uid
from wayray.link import CloseCode, LinkError, ToSession
from wayray.link.keepalive import Change
from wayray.link.stream import LinkOverflow, LinkStream
from wayray.server.ending import Ending
from wayray.server.live import ServedSession, SessionNotResponding, Viewer
from wayray.server.model import EndReason
from wayray.server.spawn import is_session_process
from wayray.server.table import SessionTable
from wayray.wire import (
    Channel,
    ErrorCode,
    KeyframeReason,
    KeyframeRequest,
    SessionEventKind,
    encode_message,
)

log = logging.getLogger("wayray.server")

#: After a link drops without Ended: how long to wait for the compositor process to be seen gone.
LINK_LOSS_GRACE = 1.0
#: The wire version that knows SessionEvent NOT_RESPONDING and RESPONDING.
_NOT_RESPONDING_EVENTS = (1, 1)


class CompositorWatch:
    def __init__(self, table: SessionTable, ending: Ending) -> None:
        self.table = table
        self.ending = ending

    # --- the keep-alive ----------------------------------------------------------------------------

    async def keep_alive(self, session: ServedSession, stream: LinkStream) -> None:
        """Ping the compositor on its link while it is the session's, and act when it stops answering
        or answers again (``wayray.link.keepalive``). Sending never waits (the link's writes are
        bounded), so a hung compositor cannot hold up wrsrvd."""
        keepalive = session.keepalive
        assert keepalive is not None
        while (
            session.link is stream
            and session.keepalive is keepalive
            and not session.ended
            and not stream.closed
        ):
            ping, change = keepalive.tick(time.monotonic())
            if change is Change.NOT_RESPONDING:
                self._not_responding(session)
            if ping is not None:
                try:
                    stream.send(ping)
                except LinkOverflow as err:
                    self.drop_link(session, CloseCode.PROTOCOL_ERROR, err.reason)
                    return
            await asyncio.sleep(max(0.0, keepalive.deadline() - time.monotonic()))

    def _not_responding(self, session: ServedSession) -> None:
        """The compositor answered no Ping for the timeout: say so, to the log, operators and the viewer.
        The session is not ended: it may have been stopped on purpose (``wradm session kill`` ends it)."""
        keepalive = session.keepalive
        assert keepalive is not None
        silent = time.monotonic() - keepalive.silent_since
        session.not_responding_at = time.time() - silent
        log.warning(
            "%s is not responding: its compositor has answered nothing on its link for %.0f s (hung, "
            "stopped or swapping?); its viewer is told, and the session is left running "
            "(wradm session kill %s ends it)",
            self.table.who(session),
            silent,
            session.id,
        )
        why = SessionNotResponding(f"the session is not responding (no answer from it for {silent:.0f} s)")
        for fut in list(session.attaching.values()) + list(session.screenshots.values()):
            if not fut.done():
                fut.set_exception(why)
        viewer = session.viewer
        if viewer is not None and viewer.attach_id:
            _tell(viewer, SessionEventKind.NOT_RESPONDING, "waiting for it\u2026")
        self.table.changed()

    def responding_again(self, session: ServedSession) -> None:
        """The compositor answers again: say so, and give its viewer a fresh picture."""
        since = session.not_responding_at
        session.not_responding_at = None
        if session.ended:
            return  # woken to be ended (SIGCONT after wradm session kill): nothing to tell
        log.info(
            "%s responds again%s",
            self.table.who(session),
            f" after {time.time() - since:.0f} s" if since is not None else "",
        )
        viewer = session.viewer
        if viewer is not None and viewer.attach_id and session.link is not None:
            _tell(viewer, SessionEventKind.RESPONDING, "the session responds again")
            # A keyframe, so the viewer's picture is the session's now whatever happened meanwhile.
            # VIEWER_RESET is the nearest reason the wire has: the viewer's picture is to be redone.
            request = encode_message(KeyframeRequest(reason=KeyframeReason.VIEWER_RESET))
            with contextlib.suppress(LinkError):
                session.link.send(ToSession(Channel.CONTROL, request))
        self.table.changed()

    # --- a link that goes --------------------------------------------------------------------------

    def drop_link(self, session: ServedSession, code: CloseCode, reason: str) -> None:
        """Give up on a link that does not read: abort it, throwing away what waits for the compositor
        (stale input it must not act on when it wakes up, and no Close it could take for a refusal).
        The session is not ended: a live compositor registers again, as after a wrsrvd restart."""
        if session.link is not None:
            log.warning(
                "session %s: dropping its link (%s): %s; the session waits for its compositor to come back",
                session.id,
                code,
                reason,
            )
            link = session.link
            link.abort()
            self.link_lost(session)

    def link_lost(self, session: ServedSession) -> None:
        session.link = None
        session.linked.clear()
        for fut in list(session.attaching.values()) + list(session.screenshots.values()):
            if not fut.done():
                fut.set_exception(LinkError("the compositor's link is gone"))
        session.attaching.clear()
        session.screenshots.clear()
        if session.ended or self.table.stopping:
            return
        session.relink_by = time.monotonic() + self.table.settings.relink_grace
        self.table.timer_wake.set()
        self.table.spawn(self._after_link_loss(session), f"link-lost-{session.id}")

    async def _after_link_loss(self, session: ServedSession) -> None:
        """A link that drops without Ended: a crashed compositor (the session ends) or one that dropped
        the link and will come back. A dying process closes its sockets a moment before it can be
        reaped, so give it that moment before deciding."""
        end = time.monotonic() + LINK_LOSS_GRACE
        while (
            time.monotonic() < end
            and not session.ended
            and session.link is None
            and _compositor_alive(session)
        ):
            await asyncio.sleep(0.05)
        if session.ended or session.link is not None:
            return
        if not _compositor_alive(session):
            self.ending.finish(
                session, EndReason.COMPOSITOR_LOST, "the session's compositor stopped unexpectedly"
            )
            return
        log.info("session %s: link lost; waiting for the compositor to come back", session.id)
        viewer = session.viewer
        if viewer is not None:
            session.viewer = None
            viewer.conn.close(ErrorCode.SERVER_BUSY, "the session's compositor is reconnecting; try again")

    # --- a compositor that does not come back, or exits --------------------------------------------

    def relink_overdue(self, session: ServedSession) -> None:
        """A session's compositor did not come back to its link in time. One that is gone ends its
        session. One that lives (stopped, hung) is *not responding*, as on a link: it is not ended for
        being slow (its user's work is in it); it is said once, and an operator can end it."""
        session.relink_by = None
        pid = session.pid or 0
        settings = self.table.settings
        # Still this session's compositor (not a process that got its pid since): one wrsrvd watches,
        # one whose environment names the session, or (login mode: other users' environments are not
        # readable) one running as the session's user.
        ours = (
            session.process is not None
            or is_session_process(pid, session.id)
            or (settings.login and session.uid is not None and process_uid(pid) == session.uid)
        )
        if _compositor_alive(session) and ours:
            since = settings.relink_grace
            session.not_responding_at = time.time() - since
            log.warning(
                "%s is not responding: its compositor runs but has not come back to its link for %.0f s "
                "(stopped, hung?); the session is left running (wradm session kill %s ends it)",
                self.table.who(session),
                since,
                session.id,
            )
            self.table.changed()
            return
        if session.process is not None and session.process.running:
            session.process.signal(signal.SIGTERM)
        self.ending.finish(
            session, EndReason.COMPOSITOR_LOST, "the session's compositor did not come back to wrsrvd"
        )

    def process_exited(self, session: ServedSession, status: int | None) -> None:
        if session.ended:
            return
        # Ended on the link usually comes first; without it the compositor crashed (or was killed).
        how = "exited" if status is None else f"exited with status {status}"
        self.ending.finish(session, EndReason.COMPOSITOR_LOST, f"the session's compositor {how}")


def _tell(viewer: Viewer, kind: SessionEventKind, detail: str) -> None:
    """A SessionEvent the viewer's protocol version has (NOT_RESPONDING/RESPONDING: 1.1 on)."""
    conn = viewer.conn
    if conn.closed or conn.server_hello is None or (conn.version or (0, 0)) < _NOT_RESPONDING_EVENTS:
        return
    viewer.tell(kind, detail)


def _compositor_alive(session: ServedSession) -> bool:
    """Whether the session's compositor runs: the process wrsrvd started (its keeper, which outlives
    the compositor a moment to end what the session left behind) has not exited, and the pid that
    registered on the link is alive."""
    if session.process is not None and not session.process.running:
        return False
    return pid_alive(session.pid) if session.pid else session.process is not None
