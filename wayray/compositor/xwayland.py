"""Rootless Xwayland, started when the first X client connects and again after it crashed.

``Xwayland`` holds the session's reserved X display (``xdisplay.XDisplay``) and watches its listening
sockets from the asyncio loop. The first connection starts ``Xwayland`` with the sockets
(``-listenfd``: it accepts the waiting client itself), a Wayland connection made here
(``WAYLAND_SOCKET``: the compositor knows which client is Xwayland) and the window manager's
connection (``-wm``). When Xwayland writes its display number (``-displayfd``) it is ready and the
XWM starts on the other end of the ``-wm`` pair. When it exits, its Wayland client and the XWM are
dropped and the sockets are watched again; Wayland clients never notice (docs/xwayland.md §2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

from wayray.common.backoff import Backoff
from wayray.common.procwatch import ProcessWatch
from wayray.compositor.xdisplay import XDisplay
from wayray.wayland.server import Client

log = logging.getLogger(__name__)

XWAYLAND = "Xwayland"
#: An Xwayland that dies sooner than this after its start counts as failing to start: the next start
#: waits (``Backoff``), so a broken binary cannot spin the session.
QUICK_EXIT = 5.0
STOP_GRACE = 3.0


class XwaylandHost(Protocol):
    """What the Xwayland launcher needs of the compositor (``Core``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def create_client(self, fd: int) -> Client:
        """A Wayland client of the compositor on ``fd`` (one end of a socketpair; the display owns it)."""

    def xwayland_ready(self, wm_socket: socket.socket, client: Client) -> None:
        """Xwayland is serving: start the window manager on ``wm_socket`` (it takes the socket)."""

    def xwayland_gone(self) -> None:
        """Xwayland exited: drop the window manager (its windows are gone with Xwayland's client)."""


def find_xwayland() -> str | None:
    return shutil.which(XWAYLAND)


class Xwayland:
    """The session's X display and the Xwayland serving it on demand."""

    def __init__(
        self,
        host: XwaylandHost,
        display: XDisplay,
        binary: str,
        env: Callable[[], dict[str, str]],
    ) -> None:
        self.host = host
        self.display = display
        self.binary = binary
        self._env = env
        self.watch: ProcessWatch | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None
        self.starts = 0
        self.ready = asyncio.Event()
        self._wm: socket.socket | None = None
        self._displayfd: int | None = None
        self._started_at = 0.0
        self._backoff = Backoff(0.5, 30.0)
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._watch_sockets()

    @property
    def running(self) -> bool:
        return self.watch is not None and self.watch.running

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    # Waiting for the first X client ---------------------------------------------------------------

    def _watch_sockets(self) -> None:
        for s in self.display.sockets:
            self.host.loop.add_reader(s.fileno(), self._connection_waiting)

    def _unwatch_sockets(self) -> None:
        for s in self.display.sockets:
            self.host.loop.remove_reader(s.fileno())

    def _connection_waiting(self) -> None:
        self._unwatch_sockets()
        self._start()

    # Start ----------------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            return
        wl_ours, wl_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        wm_ours, wm_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        listen = [s.fileno() for s in self.display.sockets]
        argv = [self.binary, self.display.name, "-rootless", "-noreset", "-nolisten", "tcp"]
        argv += ["-wm", str(wm_theirs.fileno()), "-displayfd", str(ready_w)]
        for fd in listen:
            argv += ["-listenfd", str(fd)]
        env = self._env()
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("DISPLAY", None)
        env["WAYLAND_SOCKET"] = str(wl_theirs.fileno())
        try:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                pass_fds=(wl_theirs.fileno(), wm_theirs.fileno(), ready_w, *listen),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as err:
            log.error("cannot start %s for X display %s: %s", self.binary, self.display.name, err)
            for s in (wl_ours, wm_ours):
                s.close()
            os.close(ready_r)
            self._after_exit()
            return
        finally:
            wl_theirs.close()
            wm_theirs.close()
            os.close(ready_w)
        self.starts += 1
        self._started_at = time.monotonic()
        self.client = self.host.create_client(wl_ours.detach())
        self._wm = wm_ours
        self._displayfd = ready_r
        self.host.loop.add_reader(ready_r, self._displayfd_readable)
        self.watch = ProcessWatch(self.proc.pid, self.proc, on_exit=self._exited)
        log.info("started Xwayland (pid %d) for X display %s", self.proc.pid, self.display.name)

    def _displayfd_readable(self) -> None:
        fd = self._displayfd
        assert fd is not None
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_displayfd()  # it closed the pipe: it is exiting, and _exited follows
            return
        if self.ready.is_set():
            return  # Xwayland may write it more than once; the pipe stays open until it exits
        log.debug("Xwayland serves X display :%s", data.decode(errors="replace").strip())
        wm, self._wm = self._wm, None
        if wm is None or self.client is None or not self.client.alive:
            return
        try:
            self.host.xwayland_ready(wm, self.client)
        except Exception:
            # Without its window manager Xwayland accepts no X client: end it; the next one retries.
            log.exception("the X window manager could not start; stopping Xwayland")
            self.kill(signal.SIGTERM)
            return
        self.ready.set()

    def _close_displayfd(self) -> None:
        if self._displayfd is not None:
            self.host.loop.remove_reader(self._displayfd)
            os.close(self._displayfd)
            self._displayfd = None

    # Exit and restart -----------------------------------------------------------------------------

    def _exited(self, status: int | None) -> None:
        pid = self.proc.pid if self.proc is not None else 0
        if self._closed:
            return
        log.warning(
            "Xwayland (pid %d) for X display %s exited with status %s; the next X client starts another",
            pid,
            self.display.name,
            status,
        )
        self._after_exit()

    def _after_exit(self) -> None:
        self.ready.clear()
        self._close_displayfd()
        if self._wm is not None:
            self._wm.close()
            self._wm = None
        self.host.xwayland_gone()
        if self.client is not None:
            self.client.destroy()
            self.client = None
        if self.watch is not None:
            self.watch.close()
        self.watch = None
        self.proc = None
        if self._closed:
            return
        if time.monotonic() - self._started_at < QUICK_EXIT:
            delay = self._backoff.delay()
            log.info("waiting %.1f s before Xwayland's next start", delay)
            self._retry = self.host.loop.call_later(delay, self._retry_due)
            return
        self._backoff.reset()
        self._watch_sockets()

    def _retry_due(self) -> None:
        self._retry = None
        self._watch_sockets()  # level-triggered: a client that connected meanwhile starts it at once

    # Stop -----------------------------------------------------------------------------------------

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to Xwayland (tests: a crash)."""
        if self.watch is not None:
            self.watch.signal(sig)

    def close(self) -> None:
        """Stop Xwayland (SIGTERM, then SIGKILL) and release the display."""
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._unwatch_sockets()
        proc, watch = self.proc, self.watch
        self._after_exit()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        del watch
        self.display.close()
