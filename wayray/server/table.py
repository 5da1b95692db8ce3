"""What the front door's parts share: the settings, the registry, the sessions and viewers at run time,
and the tasks they start.

:class:`SessionTable` holds state and answers questions about it; it acts on nothing. Each part of the
front door (``viewers``, ``links``, ``watch``, ``ending``, ``logins``, ``admin_requests``) gets it and
the few other parts it calls, so what a part may change is what its constructor is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from wayray.common.notify import Notifier
from wayray.link.stream import LinkStream
from wayray.server.admission import GREETER_MAX_PIXELS, Kind, estimate, fit_output
from wayray.server.live import ServedSession, Viewer
from wayray.server.model import Session, SessionState
from wayray.server.registry import Registry
from wayray.server.settings import FrontDoorSettings
from wayray.usb.acceptance import UsbAcceptance
from wayray.wire import SCALE_ONE

#: Its presence in the state directory keeps an instance drained across restarts.
DRAINING_FILE = "draining"

log = logging.getLogger("wayray.server")


class SessionTable:
    def __init__(self, settings: FrontDoorSettings, registry: Registry, notifier: Notifier) -> None:
        #: Replaced by a reload (``FrontDoor.reload``): read it when it is needed, never keep it.
        self.settings = settings
        self.registry = registry
        self.notifier = notifier
        #: The registry's sessions that run, by id.
        self.live: dict[str, ServedSession] = {}
        #: Login mode: unlock screens shown to viewers (in no registry), by their (link) id.
        self.unlocking: dict[str, ServedSession] = {}
        self.viewers: set[Viewer] = set()
        #: Links of compositors a session no longer uses (a greeter after its login): ignored.
        self.retired: set[LinkStream] = set()
        #: stop() began: nothing new is taken on.
        self.stopping = False
        #: stop() closed the registry: a viewer or process that goes after that is not recorded.
        self.closed = False
        #: Wakes the policy timer (a deadline moved).
        self.timer_wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        #: The USB devices viewers offered, judged by the rules of the settings of the moment.
        self.usb = UsbAcceptance(lambda: self.settings.usb)
        #: Drained by an operator (``wradm server drain``): no new session starts here.
        self.draining = (settings.state_dir / DRAINING_FILE).exists()
        #: Called after every change of sessions or viewers (the pool's advertisement listens).
        self.on_change: list[Callable[[], None]] = []

    # --- tasks and status --------------------------------------------------------------------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    def status_line(self) -> str:
        sessions = len(self.live)
        shown = [*self.live.values(), *self.unlocking.values()]
        viewers = sum(1 for session in shown if session.viewer is not None)
        return f"{sessions} session{'s' * (sessions != 1)}, {viewers} viewer{'s' * (viewers != 1)}"

    def changed(self) -> None:
        """Sessions or viewers changed: tell the service manager, and let the policy timer look again."""
        self.notifier.status(self.status_line())
        self.timer_wake.set()
        for listener in self.on_change:
            listener()

    # --- what a session is -------------------------------------------------------------------------

    def record(self, session: ServedSession) -> Session | None:
        """The registry's record of ``session`` (None for an unlock screen, and once stop() closed it)."""
        return None if self.closed else self.registry.find(session.id)

    def who(self, session: ServedSession) -> str:
        """The session, its user and its compositor's pid, for the log."""
        record = self.record(session)
        if record is not None and record.user:
            user = record.user
        else:
            user = "the login screen" if record is not None and record.state is SessionState.GREETER else "-"
        return f"session {session.id} of {user} (compositor pid {session.pid or '?'})"

    def kind_now(self, session: ServedSession) -> Kind:
        """What ``session`` is now: a login screen becomes a session when its user logs in."""
        if session.unlocks is not None:
            return Kind.UNLOCK_SCREEN
        record = self.record(session)
        return (
            Kind.LOGIN_SCREEN
            if record is not None and record.state is SessionState.GREETER
            else Kind.SESSION
        )

    def greeter_kind(self, session: ServedSession) -> str | None:
        """What a viewer of ``session`` sees when it is a greeter: "login screen" / "unlock screen"."""
        if session.id in self.unlocking:
            return "unlock screen"
        record = self.record(session)
        return "login screen" if record is not None and record.state is SessionState.GREETER else None

    # --- its output --------------------------------------------------------------------------------

    def max_pixels(self, kind: Kind) -> int:
        """The largest output (pixels) a session of ``kind`` may have (``output.max_pixels``; login and
        unlock screens at most GREETER_MAX_PIXELS)."""
        cap = self.settings.max_pixels
        return cap if kind is Kind.SESSION else min(cap, GREETER_MAX_PIXELS)

    def output_known(self, session: ServedSession, width: int, height: int, scale_120: int) -> None:
        session.output = (width, height, scale_120)
        session.kind = self.kind_now(session)
        session.memory = estimate(session.kind, width, height)

    def fit(self, session: ServedSession, width: int, height: int, scale_120: int) -> tuple[int, int]:
        """A viewer's screen as the session may follow it: within the pixels ``session`` may have."""
        width, height = min(width, 65535), min(height, 65535)
        scale = max(1, min(4, round(max(scale_120, 1) / SCALE_ONE)))
        return fit_output(width, height, self.max_pixels(self.kind_now(session)), scale=scale)
