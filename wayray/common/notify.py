"""Readiness, status and the watchdog for every WayRay daemon (systemd's sd_notify protocol).

Under a ``Type=notify`` unit systemd sets ``NOTIFY_SOCKET``; a daemon reports::

    notifier = Notifier.from_environment()
    ...bind sockets, load configuration...
    notifier.ready("serving 0 sessions on [::]:7100")     # READY=1 + STATUS=
    watchdog = notifier.start_watchdog()                  # WATCHDOG=1 at half of WatchdogSec=
    notifier.status("serving 12 sessions")
    notifier.reloading(); ...; notifier.ready()           # on SIGHUP
    notifier.stopping()                                   # on SIGTERM

Everything is a no-op returning False when ``NOTIFY_SOCKET`` is unset (run by hand, under SMF, in
tests), so daemons call it unconditionally. Messages go through a few lines of socket code, not
libsystemd's ``sd_notify``: that one blocks for as long as the manager does not read (its socket
queues about ten datagrams), and a daemon's whole event loop with it. Here a status line that does
not fit is dropped (the next one says it again) and any other message waits at most
:data:`SEND_WAIT` seconds; either is logged once. The watchdog pinger runs in the asyncio event loop
on purpose: if the loop wedges, the pings stop and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)

#: How long a message other than a status line may wait for room in the manager's socket queue.
SEND_WAIT = 1.0

SD_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


def _single_line(text: str) -> str:
    return " ".join(text.split())


def _raw_send(path: str, message: bytes, wait: float) -> bool:
    """Send one datagram to the notification socket (a leading '@' means an abstract socket), waiting
    at most ``wait`` seconds for room in its queue (0: not at all)."""
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(wait if wait > 0 else 0.0)
        sock.sendto(message, address)
    return True


class Notifier:
    """Talks to the service manager that started this process, if it listens."""

    def __init__(
        self,
        socket_path: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        self.socket_path = socket_path or None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._watchdog_pid = watchdog_pid
        self._warned = False
        self._warned_full = False

    @classmethod
    def from_environment(
        cls, *, unset: bool = False, environ: MutableMapping[str, str] | None = None
    ) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        With ``unset=True`` they are removed from the environment afterwards, so that processes this
        daemon starts do not inherit them (and cannot report in its name).
        """
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET")
        usec = _int(env.get("WATCHDOG_USEC"))
        pid = _int(env.get("WATCHDOG_PID"))
        if unset:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(name, None)
        return cls(path, watchdog_usec=usec, watchdog_pid=pid)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    # --- the messages ----------------------------------------------------------------------------
    def send(self, *, wait: float = SEND_WAIT, **fields: object) -> bool:
        """Send ``KEY=value`` fields (``ready=1`` becomes ``READY=1``) in one message."""
        return self.send_raw(_format(fields), wait=wait)

    def send_raw(self, message: str, *, wait: float = SEND_WAIT) -> bool:
        if self.socket_path is None:
            return False
        try:
            return _raw_send(self.socket_path, message.encode(), wait)
        except (BlockingIOError, TimeoutError):
            # The manager does not read (busy, stopped, or a test that never listens): never hold
            # the daemon up for it.
            if not self._warned_full:
                log.warning(
                    "the service manager at %s does not read its notifications; status lines it "
                    "misses are dropped, other messages wait at most %g s",
                    self.socket_path,
                    SEND_WAIT,
                )
                self._warned_full = True
            return False
        except OSError as err:
            # The service manager went away or the socket is gone: tell once, keep running.
            if not self._warned:
                log.warning("cannot notify the service manager at %s: %s", self.socket_path, err)
                self._warned = True
            return False

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: sockets are bound and the configuration is loaded."""
        if status is None:
            return self.send(ready=1)
        return self.send(ready=1, status=_single_line(status))

    def status(self, text: str) -> bool:
        """A one-line status that ``systemctl status`` shows (dropped when the manager's queue is full:
        the next one replaces it anyway)."""
        return self.send(status=_single_line(text), wait=0.0)

    def reloading(self, status: str | None = None) -> bool:
        """A reload starts; send :meth:`ready` when it is done."""
        fields: dict[str, object] = {
            "reloading": 1,
            "monotonic_usec": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
        }
        if status is not None:
            fields["status"] = _single_line(status)
        return self.send_raw(_format(fields))

    def stopping(self, status: str | None = None) -> bool:
        if status is None:
            return self.send(stopping=1)
        return self.send(stopping=1, status=_single_line(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start (or stop) than the unit's timeout allows."""
        return self.send(extend_timeout_usec=int(seconds * 1_000_000))

    def watchdog(self) -> bool:
        """One keep-alive ping (``WATCHDOG=1``)."""
        return self.send(watchdog=1)

    def watchdog_trigger(self) -> bool:
        """Report a failure now (``WATCHDOG=trigger``): systemd acts as if the watchdog expired."""
        return self.send(watchdog="trigger")

    # --- the watchdog ----------------------------------------------------------------------------
    @property
    def watchdog_interval(self) -> float | None:
        """``WatchdogSec=`` in seconds when the watchdog is on for this process, else None.

        As sd_watchdog_enabled(3): ``WATCHDOG_USEC`` is set and ``WATCHDOG_PID`` is unset or ours.
        """
        if self._watchdog_usec is None or self.socket_path is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 1_000_000

    async def run_watchdog(self, *, healthy: Callable[[], bool] | None = None) -> None:
        """Ping at half the watchdog interval for as long as the task runs.

        ``healthy``, when given, is asked before each ping; while it returns False no ping is sent,
        so systemd restarts the daemon when it stays unhealthy for a whole interval.
        """
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            if healthy is None or healthy():
                self.watchdog()
            await asyncio.sleep(interval / 2)

    def start_watchdog(self, *, healthy: Callable[[], bool] | None = None) -> asyncio.Task[None] | None:
        """Start :meth:`run_watchdog` as a task of the running loop; None when there is no watchdog."""
        if self.watchdog_interval is None:
            return None
        return asyncio.get_running_loop().create_task(self.run_watchdog(healthy=healthy), name="sd-watchdog")


def _format(fields: dict[str, object]) -> str:
    return "\n".join(f"{k.upper()}={v}" for k, v in fields.items())


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def child_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without the service manager's variables, for child processes.

    Sessions and helpers a daemon starts must not inherit ``NOTIFY_SOCKET`` (they could report in
    its name) or ``LISTEN_FDS`` (they would think sockets were passed to them).
    """
    env = dict(os.environ if environ is None else environ)
    for name in SD_VARIABLES:
        env.pop(name, None)
    return env


_default: Notifier | None = None


def default() -> Notifier:
    """The process-wide notifier, read from the environment on first use."""
    global _default
    if _default is None:
        _default = Notifier.from_environment()
    return _default
