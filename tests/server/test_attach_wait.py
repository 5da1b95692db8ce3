"""A viewer waiting for its session's compositor to register (a new session, or one coming back after a
wrsrvd restart) is served when it is there, and told the session ended only when it has. The link can
come and go again between the registration and the waiting viewer's turn on the loop (the compositor
timed out on a stalled wrsrvd and registered once more): that is still a live session."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from wayray.server.attach import Attacher
from wayray.server.live import ServedSession, Viewer
from wayray.wire import ErrorCode


class _Conn:
    """What the waiting reads of a viewer's connection: whether it closed, and why."""

    def __init__(self) -> None:
        self.closed_with: tuple[ErrorCode, str] | None = None

    @property
    def closed(self) -> bool:
        return self.closed_with is not None

    def close(self, code: ErrorCode, reason: str = "") -> None:
        self.closed_with = (code, reason)


def _registered(session: ServedSession) -> None:
    """What wrsrvd does when the compositor's Register is accepted (server/links.py)."""
    session.link = cast(Any, object())
    session.linked.set()


def _link_lost(session: ServedSession) -> None:
    """What wrsrvd does when that link drops (server/watch.py, link_lost)."""
    session.link = None
    session.linked.clear()
    session.relink_by = time.monotonic() + 60


async def _turns(n: int = 5) -> None:
    """Let the other tasks run as far as they can (loop turns, not time)."""
    for _ in range(n):
        await asyncio.sleep(0)


def _waiting() -> tuple[ServedSession, _Conn, asyncio.Task[bool]]:
    session = ServedSession(id="s-wait", relink_by=time.monotonic() + 60)
    conn = _Conn()
    viewer = Viewer(conn=cast(Any, conn), key="viewer")
    attacher = Attacher(cast(Any, None), cast(Any, None))
    return session, conn, asyncio.get_running_loop().create_task(attacher._reachable(viewer, session))


def test_a_link_that_drops_before_the_waiting_viewer_runs_is_waited_for_again() -> None:
    async def main() -> None:
        session, conn, task = _waiting()
        await _turns()
        assert not task.done()
        _registered(session)
        _link_lost(session)  # in the same turn: the viewer wakes to no link
        await _turns()
        assert not task.done(), conn.closed_with  # before: closed, "the session ended"
        _registered(session)
        assert await asyncio.wait_for(task, 30) is True
        assert conn.closed_with is None

    asyncio.run(main())


def test_a_session_that_ends_while_it_is_waited_for_is_said_to_have_ended() -> None:
    async def main() -> None:
        session, conn, task = _waiting()
        await _turns()
        session.ended = True
        session.linked.set()  # server/ending.py, finish: wakes whoever waits
        assert await asyncio.wait_for(task, 30) is False
        assert conn.closed_with == (ErrorCode.SESSION_ENDED, "the session ended")

    asyncio.run(main())
