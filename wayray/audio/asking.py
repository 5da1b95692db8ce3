"""Asking a sound server something from an asyncio loop: pulsectl blocks, and a sound server that hangs
would hold its caller forever (its calls have no timeout once connected). So each question runs on a
daemon thread of its own and is given up after a timeout: a hung answer costs one idle thread, never
the loop, and never the process's exit (the default executor's threads are joined at exit)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_thread(fn: Callable[[], T], *, timeout: float, name: str) -> T:
    """``fn()`` on a daemon thread; TimeoutError after ``timeout`` s (the thread is left to finish)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # given up on already
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = fn(), None
        except BaseException as err:  # handed to the caller
            result, error = None, err
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed meanwhile: nobody waits

    threading.Thread(target=run, name=name, daemon=True).start()
    return await asyncio.wait_for(future, timeout)
