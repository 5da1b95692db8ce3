"""Logging set-up shared by every WayRay program.

Under systemd (``JOURNAL_STREAM`` set) lines carry a ``<N>`` syslog priority prefix and no timestamp,
so the journal records the right level; elsewhere they carry a timestamp and the level name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{super().format(record)}"


def under_journal() -> bool:
    """True when stderr is connected to the systemd journal."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def setup(program: str, *, verbose: int = 0, quiet: bool = False) -> logging.Logger:
    """Configure the root logger for ``program`` and return the program's logger.

    ``verbose`` 0 = INFO, 1+ = DEBUG; ``quiet`` = WARNING. ``WAYRAY_LOG_LEVEL`` overrides both.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    env_level = os.environ.get("WAYRAY_LOG_LEVEL")
    if env_level:
        level = logging.getLevelName(env_level.upper()) if not env_level.isdigit() else int(env_level)
        if not isinstance(level, int):
            level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if under_journal():
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {program}[%(process)d] %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return logging.getLogger(f"wayray.{program}")


class Repeats:
    """Log lines a remote peer can cause at will, without letting it write one line per message.

    The first occurrence of a kind (``key``) is logged at once; the ones that follow within
    ``window`` seconds are only counted, and the count is logged when the window ends ("5123 more
    keyframe requests from the viewer in the last 60 s") or at :meth:`flush` (the peer left). After
    a quiet window the next occurrence is logged in full again. A peer sending as fast as it can thus
    costs two lines a minute per kind, and the log still says what happened and how often.

    Windows end on the asyncio loop's timer when one runs, else on the next :meth:`note`."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = logger
        self.window = window
        self._clock = clock
        #: key → [window start, count since the logged one, level, summary format]
        self._open: dict[str, list[Any]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def note(self, key: str, level: int, message: str, *args: object, summary: str) -> None:
        """One occurrence: ``message % args`` when ``key`` has been quiet, else counted. ``summary`` is
        a ``str.format`` text for the count, with ``{n}`` (how many more) and ``{seconds}``."""
        now = self._clock()
        self._end_windows(now)
        entry = self._open.get(key)
        if entry is not None:
            entry[1] += 1
            return
        self.log.log(level, message, *args)
        self._open[key] = [now, 0, level, summary]
        self._arm()

    def flush(self) -> None:
        """Log every count now (the peer is gone) and forget the windows."""
        now = self._clock()
        for key in list(self._open):
            self._end(key, now)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end_windows(self, now: float) -> None:
        for key, (start, *_rest) in list(self._open.items()):
            if now - start >= self.window:
                self._end(key, now)

    def _end(self, key: str, now: float) -> None:
        start, n, level, summary = self._open.pop(key)
        if n:
            self.log.log(level, "%s", summary.format(n=n, seconds=max(1, round(now - start))))

    def _arm(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        start = min(entry[0] for entry in self._open.values())
        self._timer = loop.call_later(max(0.0, start + self.window - self._clock()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._end_windows(self._clock())
        if self._open:
            self._arm()
