"""Logging set-up shared by every WayRay program.

Under systemd (``JOURNAL_STREAM`` set) lines carry a ``<N>`` syslog priority prefix and no timestamp,
so the journal records the right level; elsewhere they carry a timestamp and the level name.
"""

from __future__ import annotations

import logging
import os
import sys

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
