"""What wrsessd keeps about its sessions, connections and logins in progress (the daemon's data model),
and the slots that cap how many logins run at once."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from wayray.common.procwatch import ProcessWatch
from wayray.launcher import protocol
from wayray.launcher.protocol import EndReason, ErrorType, PeerRole
from wayray.launcher.workers import WorkerLink

log = logging.getLogger("wayray.wrsessd")


class RequestError(Exception):
    """A request refused: ``response`` is the ``error`` the client gets."""

    def __init__(self, error_type: ErrorType, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.response = protocol.Error(
            error_type=error_type, description=description, retry_after=retry_after
        )


@dataclass(eq=False)
class LiveSession:
    info: protocol.SessionInfo
    link: WorkerLink | None
    watch: ProcessWatch
    worker_start_time: int | None
    ticket_sha256: str | None = None
    #: Greeters: environment for the user session their login starts (create_greeter_session).
    session_env: tuple[str, ...] = ()
    #: Greeters: the most user sessions its login may leave the user with (create_greeter_session).
    max_user_sessions: int | None = None
    #: Greeters: memory and CPU ceilings of the user session their login starts (create_greeter_session).
    login_memory_max: int | None = None
    login_cpu_quota: int | None = None
    ending_reason: EndReason | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def session_id(self) -> str:
        return self.info.session_id


# --- logins in progress ----------------------------------------------------------------------------


class LoginSlots:
    """The logins (and greeter sessions) being started, at most ``limit`` at once
    (``max_pending_logins``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: set[LoginSlot] = set()

    @property
    def held(self) -> int:
        return len(self._held)

    def take(self, refusal: str, *, greeter: LiveSession | None = None) -> LoginSlot:
        """A slot, or ``error {limit}`` saying ``refusal`` when none is free. ``greeter``: the greeter
        session whose ticket the login uses (one login per ticket at a time)."""
        if len(self._held) >= self.limit:
            raise RequestError(ErrorType.LIMIT, refusal)
        slot = LoginSlot(self, greeter)
        self._held.add(slot)
        return slot

    def in_use_for(self, greeter: LiveSession) -> bool:
        """Whether a login with ``greeter``'s ticket is in progress."""
        return any(s.greeter is greeter for s in self._held)

    def _release(self, slot: LoginSlot) -> None:
        self._held.discard(slot)


class LoginSlot:
    """One place among the logins in progress. It is given back once, however its login ends:

    - as a context manager around the steps that start a login, it is released when the block ends,
      unless a :class:`Login` took it (then :meth:`Login.close` releases it), and always when the
      block ends with an error;
    - :meth:`release` may be called any number of times."""

    def __init__(self, slots: LoginSlots, greeter: LiveSession | None) -> None:
        self._slots = slots
        self.greeter = greeter
        self.owner: Login | None = None

    def release(self) -> None:
        self._slots._release(self)

    def __enter__(self) -> LoginSlot:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or self.owner is None:
            self.release()


class LoginKind(enum.Enum):
    USER = "user"
    UNLOCK = "unlock"


@dataclass(eq=False)
class Login:
    session_id: str
    kind: LoginKind
    link: WorkerLink
    slot: LoginSlot
    token: str | None
    token_kind: str | None
    rhost: str | None
    requested_user: str | None
    greeter: LiveSession | None
    unlock_target: LiveSession | None
    deadline: float
    awaiting: protocol.AuthMessageType | None = None
    #: The user PAM named last, whose lockout has been checked (the requested user at first).
    checked_user: str | None = None
    user: str | None = None
    authenticated: bool = False
    #: Over: timed out, aborted or done (its connection keeps a timed-out one to say why).
    expired: bool = False
    timer: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.slot.owner = self

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def close(self) -> None:
        """The login is over: its timer stops and its slot is free (idempotent)."""
        self.stop_timer()
        self.slot.release()
        self.expired = True


@dataclass(eq=False)
class PeerConnection:
    role: PeerRole
    pid: int
    uid: int
    writer: asyncio.StreamWriter
    login: Login | None = None
    subscribed: bool = False
    events: asyncio.Queue[protocol.Message] = field(default_factory=lambda: asyncio.Queue(10_000))

    async def send(self, msg: protocol.Message) -> None:
        self.writer.write(msg.encode())
        await self.writer.drain()


class Tasks:
    """The daemon's background tasks (session watchers, timers' work), cancelled when it closes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
