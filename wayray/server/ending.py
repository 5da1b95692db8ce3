"""Ending sessions: on purpose (an operator, the policy, a standalone server's Ctrl-C) and once they are
over (recorded, their viewer told, forgotten).

In login mode sessions end through wrsessd (``kill_session``), so their PAM sessions close; the
compositor gets End on its link only when wrsessd cannot end it. A compositor wrsrvd started itself
gets End and, should it not go by itself, signals (``spawn.make_sure_it_ends``).
"""

from __future__ import annotations

import contextlib
import logging
import time

from wayray.common.system import system_stopping
from wayray.launcher import protocol as lp
from wayray.link import End, LinkError
from wayray.link.stream import LinkStream
from wayray.server.launcher import LauncherBridge
from wayray.server.live import ServedSession
from wayray.server.model import EndReason, SessionState
from wayray.server.registry import RegistryError
from wayray.server.spawn import make_sure_it_ends
from wayray.server.table import SessionTable
from wayray.wire import ErrorCode, SessionEventKind

log = logging.getLogger("wayray.server")

#: How long a compositor that responds has to stop its programs and exit after End.
END_WAIT = 8.0
#: Why a registry session ended → what wrsessd records for the PAM session it closes.
LAUNCHER_REASONS = {
    EndReason.LOGOUT: lp.EndReason.LOGOUT,
    EndReason.OPERATOR: lp.EndReason.OPERATOR,
    EndReason.DETACHED_TIMEOUT: lp.EndReason.POLICY,
    EndReason.IDLE_TIMEOUT: lp.EndReason.POLICY,
    EndReason.GREETER_TIMEOUT: lp.EndReason.POLICY,
}
#: Ends nobody asked for: at a shutdown they are the shutdown's doing, and recorded as such.
UNPLANNED_ENDS = frozenset({EndReason.COMMAND_EXITED, EndReason.COMPOSITOR_LOST, EndReason.LAUNCHER_ENDED})


class Ending:
    def __init__(self, table: SessionTable, bridge: LauncherBridge | None) -> None:
        self.table = table
        #: Login mode: wrsessd, which ends the sessions it started. None: wrsrvd started them.
        self.bridge = bridge

    def end_session(self, session: ServedSession, reason: EndReason, detail: str) -> None:
        """End a session on purpose (operator, policy, standalone Ctrl-C). In login mode wrsessd ends
        it, so its PAM session is closed; only when wrsessd cannot does the compositor get End."""
        if session.ended:
            return
        if self.bridge is not None and session.launcher_session is not None:
            # wrsessd stops every process of the session, stopped ones too (SIGCONT), SIGKILL last.
            why = LAUNCHER_REASONS.get(reason, lp.EndReason.OPERATOR)
            self.table.spawn(
                self._kill_launched(self.bridge, session.launcher_session, why, session.link, detail),
                f"kill-{session.id}",
            )
        else:
            if session.link is not None:
                with contextlib.suppress(LinkError):  # one that does not read is signalled below
                    session.link.send(End(reason=detail[:1000]))
            if session.process is not None or (session.pid and self.bridge is None):
                # A compositor that does not read its link never sees End: make sure it ends. One that
                # responds has END_WAIT to stop its programs and exit by itself first.
                pid = session.process.pid if session.process is not None else session.pid
                assert pid is not None
                first_wait = END_WAIT if session.responding and session.link is not None else 0.0
                ends = make_sure_it_ends(
                    session.process, pid, session.id, who=self.table.who(session), first_wait=first_wait
                )
                self.table.spawn(ends, f"end-{session.id}")
        self.finish(session, reason, detail)

    @staticmethod
    async def _kill_launched(
        bridge: LauncherBridge,
        launcher_session: str,
        reason: lp.EndReason,
        link: LinkStream | None,
        detail: str,
    ) -> None:
        if not await bridge.kill(launcher_session, reason) and link is not None:
            with contextlib.suppress(LinkError):
                link.send(End(reason=detail[:1000]))

    def finish(self, session: ServedSession, reason: EndReason, detail: str) -> None:
        """The session is over: record it, tell its viewer, forget it."""
        if session.ended:
            return
        if reason in UNPLANNED_ENDS and system_stopping():
            # At a shutdown its compositor is told to stop (or its command is): not the user's doing.
            reason, detail = EndReason.SHUTDOWN, f"the system is shutting down ({detail})"
        table = self.table
        session.ended = True
        session.linked.set()  # wake viewers waiting for it: they find it ended
        record = table.record(session)
        user = (record.user if record else None) or "-"
        log.info("session %s of %s ended (%s): %s", session.id, user, reason, detail)
        if record is not None and record.state is not SessionState.ENDED:
            try:
                table.registry.end(session.id, reason, time.time())
            except RegistryError as err:
                log.error(
                    "session %s: %s; it is over all the same (recorded by a start with room)",
                    session.id,
                    err,
                )
        viewer = session.viewer
        session.viewer = None
        if viewer is not None:
            viewer.tell_and_close(SessionEventKind.ENDED, ErrorCode.SESSION_ENDED, detail)
        table.live.pop(session.id, None)
        if (
            table.unlocking.pop(session.id, None) is not None
            and self.bridge is not None
            and session.launcher_session
        ):
            kill = self.bridge.kill(session.launcher_session, lp.EndReason.FAILED)
            table.spawn(kill, f"kill-{session.id}")
        table.changed()

    def end_unlock_screen(self, unlock: ServedSession, why: str) -> None:
        """An unlock screen is no longer needed (done, abandoned, or its viewer left)."""
        if self.table.unlocking.pop(unlock.id, None) is None:
            return
        unlock.ended = True
        unlock.linked.set()
        log.info("unlock screen %s ends: %s", unlock.id, why)
        if self.bridge is not None and unlock.launcher_session is not None:
            reason = lp.EndReason.REPLACED if why == "unlocked" else lp.EndReason.POLICY
            kill = self.bridge.kill(unlock.launcher_session, reason)
            self.table.spawn(kill, f"kill-{unlock.launcher_session}")
