"""The one interface every token source offers: an async iterator of insert/remove events.

Usage (wrclient's session logic)::

    source = StaticToken("demo-badge")          # or FileTokenSource(...), UdevBadgeReader(...), ...
    await source.start()                        # optional: set-up errors (bad path, no udev) raise here
    async for event in source:                  # runs until source.close()
        match event:
            case BadgeInserted(token=token, kind=kind):
                ...  # connect / attach with token
            case BadgeRemoved(reason=reason):
                ...  # detach, show the idle screen

Every source keeps the same promises, so the session logic need not second-guess them:

- events alternate, starting with :class:`BadgeInserted`; a :class:`BadgeRemoved` always has a token to
  remove, and the same token is never reported twice in a row;
- a different token while one is presented arrives as ``BadgeRemoved("replaced")`` then the new
  :class:`BadgeInserted`;
- iteration ends only after :meth:`TokenSource.close` (or raises the error that stopped the source).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from wayray.client.tokens.events import BadgeInserted, BadgeRemoved, TokenEvent, TokenKind, redact

log = logging.getLogger("wayray.client.tokens")


@dataclass(frozen=True, slots=True)
class _End:
    pass


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_Item = TokenEvent | _End | _Failed


class TokenSource(abc.ABC, AsyncIterator[TokenEvent]):
    """Base of all token sources. Subclasses implement :meth:`_produce` and report through
    :meth:`_present` / :meth:`_withdraw`; this class keeps the promises listed in the module docs."""

    def __init__(self, description: str) -> None:
        #: For logs and status lines: what this source is ("token file /run/badge", ...).
        self.description = description
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._current: BadgeInserted | None = None
        self._closed = False

    # --- what consumers use -------------------------------------------------------------------------

    @property
    def current(self) -> BadgeInserted | None:
        """The token presented now (as far as the events handed out so far say), or None."""
        return self._current

    def forget(self) -> None:
        """The kiosk no longer shows the presented token's session (it moved to another kiosk, the
        server refused the token, an operator detached it): the same token presented again counts as
        a new insertion. Reports nothing; the next event is a :class:`BadgeInserted` (of any token)."""
        if self._current is not None:
            log.info(
                "%s: token %s no longer counts as presented here",
                self.description,
                redact(self._current.token),
            )
            self._current = None

    async def start(self) -> None:
        """Set the source up (bind its socket, open its devices, ...) and wait until it is watching.

        Optional: iterating starts the source too. Raises what stops the source from starting, e.g.
        :class:`wayray.common.errors.WayRayError` for a socket path that is taken.
        """
        if self._closed:
            raise RuntimeError(f"{self.description}: the token source is closed")
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._task = loop.create_task(self._run(), name=f"token source: {self.description}")
        assert self._ready is not None
        await asyncio.shield(self._ready)

    def __aiter__(self) -> TokenSource:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._task is None and not self._closed:
            await self.start()
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later call ends too
            raise StopAsyncIteration
        if isinstance(item, _Failed):
            self._queue.put_nowait(_End())
            raise item.error
        return item

    async def close(self) -> None:
        """Stop watching and release everything (devices, sockets, watches). Iteration then ends."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError(f"{self.description}: closed before it started"))
            self._ready.exception()  # retrieved: nobody may be waiting for it
        self._queue.put_nowait(_End())

    async def __aenter__(self) -> TokenSource:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- what implementations use -------------------------------------------------------------------

    @abc.abstractmethod
    async def _produce(self) -> None:
        """Set up, call :meth:`_set_ready`, then watch until cancelled (release resources in ``finally``)."""

    def _set_ready(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _present(self, token: str, kind: TokenKind, source: str = "") -> None:
        """Report that ``token`` (already validated) is presented now."""
        current = self._current
        if current is not None and current.token == token and current.kind == kind:
            return
        if current is not None:
            self._withdraw("replaced")
        event = BadgeInserted(token, kind, source or self.description)
        self._current = event
        log.info("%s: %s token %s presented", self.description, kind.name.lower(), redact(token))
        self._queue.put_nowait(event)

    def _withdraw(self, reason: str) -> None:
        """Report that the presented token is gone (nothing happens if none is presented)."""
        if self._current is None:
            return
        log.info("%s: token %s removed (%s)", self.description, redact(self._current.token), reason)
        self._current = None
        self._queue.put_nowait(BadgeRemoved(reason))

    async def _run(self) -> None:
        assert self._ready is not None
        try:
            await self._produce()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if not self._ready.done():
                self._ready.set_exception(err)
            self._queue.put_nowait(_Failed(err))
            return
        self._set_ready()
        self._queue.put_nowait(_End())
