"""Forgetting ended sessions: what a server keeps of a session once it is over, and for how long.

An ended session leaves its record and audit events in the registry (``<state>/registry.db``) and,
when wrsrvd does not log to the journal, its log files (``<state>/sessions/<id>.log`` and
``<id>.log.old``, docs/running.md). Each is kept for ``[server.NAME] history`` (30 days by default)
after the session ended, or after the file was last written, and then removed: a server that runs
for years keeps what an operator looks back at, not every session it ever had. A live session's
log is never removed, however long it has been quiet. The work runs at start and every
:data:`EVERY` seconds, and says what it removed in one line.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import stat
import time
from pathlib import Path

from wayray.server.registry import Registry, RegistryError
from wayray.server.table import SessionTable

log = logging.getLogger("wayray.server")

#: Seconds between two rounds.
EVERY = 3600.0
#: The names of a session's log files: ``<id>.log`` and the part before, ``<id>.log.old``.
LOG_SUFFIXES = (".log", ".log.old")


def forget_ended(registry: Registry, log_dir: Path | None, keep_s: float, now: float) -> tuple[int, int]:
    """Remove the records of sessions that ended more than ``keep_s`` ago, audit events as old, and
    the log files in ``log_dir`` not written for as long whose session is not live; returns how many
    records and files went."""
    before = now - keep_s
    records = registry.purge_ended(before)
    files = 0
    live = {s.id for s in registry.live_sessions()}
    for path in _session_logs(log_dir):
        if path.name.split(".", 1)[0] in live:
            continue
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mtime < before:  # never a link's target
            path.unlink(missing_ok=True)
            files += 1
    if records or files:
        days = keep_s / 86400
        log.info(
            "forgot what is older than %s: %d ended sessions' records (and their audit events), "
            "%d session log files",
            f"{days:g} days" if days >= 1 else f"{keep_s:g} s",
            records,
            files,
        )
    return records, files


def _session_logs(log_dir: Path | None) -> list[Path]:
    if log_dir is None:
        return []
    try:
        return [p for p in log_dir.iterdir() if p.name.endswith(LOG_SUFFIXES)]
    except FileNotFoundError:
        return []


async def keep_house(table: SessionTable) -> None:
    """Run :func:`forget_ended` now and every :data:`EVERY` s, with the history the settings say now
    (a reload changes it)."""
    while True:
        settings = table.settings
        try:
            forget_ended(table.registry, settings.session_log_dir, settings.history_s, time.time())
        except (OSError, RegistryError, sqlite3.Error) as err:  # a full disk: the next round tries again
            log.warning("could not forget ended sessions: %s", err)
        await asyncio.sleep(EVERY)
