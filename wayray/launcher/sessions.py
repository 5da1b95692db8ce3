"""wrsessd's table of running sessions: re-adopting them after a restart, watching each one's worker,
finding them for a request, and ending them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import replace

from wayray.common.procwatch import ProcessWatch
from wayray.launcher import proctree, protocol, scope
from wayray.launcher import worker_protocol as wp
from wayray.launcher.protocol import EndReason, ErrorType, SessionClass
from wayray.launcher.records import SessionRecords
from wayray.launcher.settings import LauncherSettings
from wayray.launcher.state import LiveSession, RequestError, Tasks
from wayray.launcher.workers import kill_group

log = logging.getLogger("wayray.wrsessd")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SessionTable:
    """The running sessions by id. ``on_change`` is called whenever the set changes (the CLI updates
    sd_notify's STATUS); ``on_event`` gets the ``session_event`` of each change (for subscribers)."""

    def __init__(
        self,
        settings: LauncherSettings,
        records: SessionRecords,
        tasks: Tasks,
        on_event: Callable[[protocol.SessionEvent], None],
    ) -> None:
        self.settings = settings
        self.records = records
        self.tasks = tasks
        self.on_event = on_event
        self.on_change: Callable[[], None] | None = None
        self.sessions: dict[str, LiveSession] = {}

    # --- the table --------------------------------------------------------------------------------

    def adopt(self) -> None:
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
            self.register(live)
            log.info(
                "re-adopted session %s of %s (worker pid %d)", info.session_id, info.user, info.worker_pid
            )

    def register(self, live: LiveSession) -> None:
        self.sessions[live.session_id] = live
        self.tasks.spawn(self._watch(live))
        self.changed()

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def listing(self) -> protocol.SessionList:
        infos = sorted((s.info for s in self.sessions.values()), key=lambda i: i.started_at)
        return protocol.SessionList(sessions=tuple(infos))

    def greeters(self) -> int:
        return sum(1 for s in self.sessions.values() if s.info.session_class is SessionClass.GREETER)

    def user_sessions_of(self, user: str) -> int:
        """How many user sessions ``user`` has that are not ending."""
        return sum(
            1
            for s in self.sessions.values()
            if s.info.session_class is SessionClass.USER and s.info.user == user and s.ending_reason is None
        )

    def greeter_for_ticket(self, ticket: str) -> LiveSession:
        digest = sha256(ticket)
        for s in self.sessions.values():
            if (
                s.info.session_class is SessionClass.GREETER
                and s.ticket_sha256 is not None
                and secrets.compare_digest(s.ticket_sha256, digest)
                and s.ending_reason is None
            ):
                return s
        raise RequestError(ErrorType.FORBIDDEN, "unknown or already used login ticket")

    def user_session(self, session_id: str) -> LiveSession:
        target = self.sessions.get(session_id)
        if target is None or target.info.session_class is not SessionClass.USER:
            raise RequestError(ErrorType.NOT_FOUND, f"no user session {session_id}")
        return target

    def doomed(self) -> list[LiveSession]:
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

    # --- greeters whose login is done ---------------------------------------------------------------

    def consume_ticket(self, greeter: LiveSession) -> None:
        """A ticket logs in once, also across a wrsessd restart (so its record forgets it too)."""
        greeter.ticket_sha256 = None
        greeter.session_env = ()
        self.records.forget_ticket(greeter.session_id)

    def linger(self, greeter: LiveSession) -> None:
        """End a greeter whose job is done, unless wrsrvd does it sooner (after switching the kiosk)."""

        def end() -> None:
            if greeter.session_id in self.sessions and greeter.ending_reason is None:
                self.tasks.spawn(self.end(greeter, EndReason.REPLACED))

        asyncio.get_running_loop().call_later(self.settings.greeter_linger_s, end)

    # --- a session's life -------------------------------------------------------------------------

    async def _watch(self, live: LiveSession) -> None:
        reason: EndReason | None = None
        if live.link is not None:
            while (msg := await live.link.recv()) is not None:
                if isinstance(msg, wp.Ended):
                    reason = msg.reason
            live.link.close()
        await live.watch.exited.wait()
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
        self.changed()
        log.info("session %s of %s ended (%s)", live.session_id, live.info.user, reason.value)
        self.on_event(
            protocol.SessionEvent(event=protocol.SessionEventKind.ENDED, session=live.info, reason=reason)
        )

    async def end(self, live: LiveSession, reason: EndReason) -> bool:
        """End ``live`` and wait until it has ended: whether it did in time."""
        if live.ending_reason is None:
            live.ending_reason = reason
            log.info("ending session %s of %s (%s)", live.session_id, live.info.user, reason.value)
            sent = False
            if live.link is not None:
                sent = await live.link.send(wp.Stop(reason=reason))
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

    def kill_if_stuck(self, pid: int, watch: ProcessWatch, session_id: str) -> None:
        """A worker told to stop (SIGTERM) that is still there after it had time to tear down is stuck
        in a PAM call (pam_open_session waiting on a hung service): kill it, rather than let it linger."""
        grace = self.settings.stop_timeout_s + 15

        async def later() -> None:
            try:
                await asyncio.wait_for(watch.exited.wait(), grace)
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

        self.tasks.spawn(later())
