"""wrsrvd's side of the session launcher (wrsessd): requests, and the stream of session events.

In login mode (``sessions = "login"``) wrsrvd starts no compositor itself: it asks wrsessd for a
greeter session when a token has none (``create_greeter_session``), learns from wrsessd's events when
a greeter's login started the user's session (``started`` with ``replaces``), when an unlock greeter
re-authenticated a session (``unlocked``) and when a session ended (``ended``), and ends sessions
through wrsessd (``kill_session``) so that their PAM sessions are closed.

:class:`LauncherBridge` keeps one subscription open (reconnecting with backoff when wrsessd restarts;
each new subscription starts with a snapshot of every session, which wrsrvd reconciles its registry
with) and makes each request on a connection of its own, so that a slow request (a greeter starting)
never holds up another (a kill). Several wrsrvd instances may share one wrsessd: every instance sees
every event and acts only on the sessions its registry knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from wayray.common.backoff import Backoff
from wayray.launcher import protocol
from wayray.launcher.client import AsyncLauncherClient, LauncherError

log = logging.getLogger("wayray.server.launcher")

#: How long one request may take: a greeter session starts a compositor and the greeter, which takes
#: a few seconds on a loaded machine; wrsessd's own limits end anything stuck.
REQUEST_TIMEOUT = 120.0


class LauncherUnavailable(Exception):
    """wrsessd cannot be reached, refused, or broke the protocol; the message says which."""

    def __init__(self, message: str, error: protocol.Error | None = None) -> None:
        super().__init__(message)
        self.error = error


EventHandler = Callable[[protocol.SessionEvent], None]
SnapshotHandler = Callable[[tuple[protocol.SessionInfo, ...]], None]


class LauncherBridge:
    def __init__(
        self,
        path: Path,
        *,
        on_event: EventHandler,
        on_snapshot: SnapshotHandler,
        backoff_first: float = 0.1,
        backoff_longest: float = 5.0,
    ) -> None:
        self.path = path
        self._on_event = on_event
        self._on_snapshot = on_snapshot
        self._backoff = Backoff(backoff_first, backoff_longest)
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncLauncherClient | None = None
        #: Set while the event subscription is up (after its snapshot was handled).
        self.subscribed = asyncio.Event()

    # --- the subscription ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._subscribe(), name="launcher-events")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    async def _subscribe(self) -> None:
        warned = False
        while True:
            try:
                self._client = await AsyncLauncherClient.connect(self.path)
                sessions, events = await self._client.subscribe()
            except (OSError, LauncherError) as err:
                if not warned:
                    log.warning(
                        "cannot subscribe to the session launcher at %s (%s); retrying", self.path, err
                    )
                    warned = True
                await self._drop_client()
                await asyncio.sleep(self._backoff.delay())
                continue
            self._backoff.reset()
            if warned:
                log.info("subscribed to the session launcher at %s again", self.path)
            warned = False
            self._on_snapshot(sessions)
            self.subscribed.set()
            try:
                async for event in events:
                    try:
                        self._on_event(event)
                    except Exception:  # a bug in handling one event must not end the subscription
                        log.exception("handling launcher event %s failed", event.event)
            except (OSError, LauncherError) as err:
                log.warning("lost the session launcher's event stream (%s); resubscribing", err)
            finally:
                self.subscribed.clear()
                await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    # --- requests ------------------------------------------------------------------------------------

    async def request(
        self, message: protocol.Message, *, timeout: float = REQUEST_TIMEOUT
    ) -> protocol.Message:
        """One request on a connection of its own; an ``error`` answer raises LauncherUnavailable."""
        try:
            client = await AsyncLauncherClient.connect(self.path)
        except OSError as err:
            raise LauncherUnavailable(
                f"the session launcher (wrsessd) is not reachable at {self.path}: {err.strerror or err}"
            ) from None
        try:
            answer = await asyncio.wait_for(client.request(message), timeout)
        except TimeoutError:
            raise LauncherUnavailable(
                f"the session launcher did not answer {message.type} in time"
            ) from None
        except (OSError, LauncherError) as err:
            raise LauncherUnavailable(f"the session launcher failed: {err}") from None
        finally:
            with contextlib.suppress(Exception):
                await client.close()
        if isinstance(answer, protocol.Error):
            raise LauncherUnavailable(answer.description, answer)
        return answer

    async def create_greeter(
        self,
        *,
        token: str,
        token_kind: str,
        rhost: str | None,
        env: tuple[str, ...],
        session_env: tuple[str, ...] = (),
        unlock_session: str | None = None,
        max_user_sessions: int | None = None,
        memory_max: int | None = None,
        cpu_quota: int | None = None,
    ) -> protocol.SessionInfo:
        answer = await self.request(
            protocol.CreateGreeterSession(
                token=token,
                token_kind=token_kind,
                rhost=rhost,
                env=env,
                session_env=session_env or None,
                unlock_session=unlock_session,
                max_user_sessions=max_user_sessions,
                memory_max=memory_max,
                cpu_quota=cpu_quota,
            )
        )
        if not isinstance(answer, protocol.SessionStarted):
            raise LauncherUnavailable(f"unexpected answer to create_greeter_session: {answer.type}")
        return answer.session

    async def kill(self, session_id: str, reason: protocol.EndReason) -> bool:
        """End a wrsessd session; False (logged) when it could not be done."""
        try:
            await self.request(protocol.KillSession(session_id=session_id, reason=reason))
        except LauncherUnavailable as err:
            if err.error is not None and err.error.error_type is protocol.ErrorType.NOT_FOUND:
                return True  # already gone
            log.warning("could not end launcher session %s: %s", session_id, err)
            return False
        return True
