"""Noticing that a process has exited, from an asyncio loop, for children and adopted processes alike.

A daemon watches processes it started (children: their exit status is collected, so none is left a
zombie) and, after a restart, processes an earlier run started (adopted: only their end can be seen).
asyncio's subprocess machinery covers neither fully: it kills children still running when its loop
closes (sessions must outlive their daemon) and cannot watch a process that is not its child.

Where the platform has pidfds (Linux 5.3 on), the loop reads the process's pidfd, which becomes
readable when it exits. Elsewhere (illumos, older kernels) a thread waits for a child, and an adopted
process is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from wayray.common.processes import pid_alive

#: How often an adopted process is polled where there is no pidfd (seconds).
POLL_INTERVAL = 0.5


def shell_status(returncode: int) -> int:
    """A Popen return code as a shell reports it: the exit code, or 128+N for signal N."""
    return returncode if returncode >= 0 else 128 - returncode


class ProcessWatch:
    """Watches ``pid`` from the running loop until it exits. ``popen`` is given for a child of this
    process, which is then reaped; without it the process is an adopted one.

    Once it has exited, ``running`` is False and ``returncode`` is set (a child's status as a shell
    reports it, see :func:`shell_status`; None for an adopted process, whose status only its parent
    learns), then ``exited`` is set and ``on_exit`` is called with the return code."""

    def __init__(
        self,
        pid: int,
        popen: subprocess.Popen[Any] | None = None,
        *,
        on_exit: Callable[[int | None], None] | None = None,
    ) -> None:
        self.pid = pid
        self.popen = popen
        self.running = True
        self.returncode: int | None = None
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self.exited = asyncio.Event()
        self._pidfd: int | None = None
        self._poll_task: asyncio.Task[None] | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already (a child that was reaped, or an adopted pid)
            self._loop.call_soon(self._exited)
        except (AttributeError, OSError):  # no pidfd: not Linux, or a kernel before 5.3
            if popen is not None:
                threading.Thread(target=self._wait_thread, name=f"wait-{pid}", daemon=True).start()
            else:
                self._poll_task = self._loop.create_task(self._poll(), name=f"poll-{pid}")
        else:
            self._loop.add_reader(self._pidfd, self._exited)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process unless it has been seen to exit (its pid may be another's now)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def close(self) -> None:
        """Stop watching, leaving the process running (its daemon is exiting; the process lives on)."""
        self._close_pidfd()
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(Exception):  # the loop may be closed already
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _exited(self) -> None:
        self._close_pidfd()
        # A child has exited, so wait() reaps it without blocking.
        self._done(self.popen.wait() if self.popen is not None else None)

    def _wait_thread(self) -> None:
        assert self.popen is not None
        rc = self.popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is interested any more
            self._loop.call_soon_threadsafe(self._done, rc)

    async def _poll(self) -> None:
        while pid_alive(self.pid):
            await asyncio.sleep(POLL_INTERVAL)
        self._poll_task = None
        self._done(None)

    def _done(self, returncode: int | None) -> None:
        if not self.running:
            return
        self.running = False
        self.returncode = None if returncode is None else shell_status(returncode)
        self.exited.set()
        if self._on_exit is not None:
            self._on_exit(self.returncode)
