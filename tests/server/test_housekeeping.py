"""What a server keeps of ended sessions (wayray.server.housekeeping, `[server.NAME] history`): the
registry's records and audit events and the session log files go once older than the history; a live
session's log stays however quiet it has been; nothing that is not a session's log is touched."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.server.test_registry import T0, user_session
from wayray.server.housekeeping import forget_ended
from wayray.server.model import EndReason
from wayray.server.policy import SessionPolicy
from wayray.server.registry import Registry

DAY = 86400.0


def aged(path: Path, text: str, at: float) -> Path:
    path.write_text(text)
    os.utime(path, (at, at))
    return path


def test_ended_sessions_records_and_logs_go_after_the_history_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry.open(tmp_path / "registry.sqlite", policy=SessionPolicy(), now=T0)
    logs = tmp_path / "sessions"
    logs.mkdir()
    live = user_session(reg, "live", "kiosk-1", now=T0)
    ended_long_ago = user_session(reg, "old", "kiosk-2", now=T0)
    reg.end(ended_long_ago, EndReason.LOGOUT, T0 + 1 * DAY)
    ended_lately = user_session(reg, "recent", "kiosk-3", now=T0)
    reg.end(ended_lately, EndReason.LOGOUT, T0 + 39 * DAY)
    now = T0 + 40 * DAY
    kept = [
        aged(logs / f"{live}.log", "a live session, quiet for 40 days", T0),
        aged(logs / f"{ended_lately}.log", "ended yesterday", T0 + 39 * DAY),
        aged(logs / "notes.txt", "the operator's", T0),
    ]
    outside = aged(tmp_path / "elsewhere.log", "not the server's", T0)
    link = logs / "0000000000000000.log"
    link.symlink_to(outside)
    os.utime(link, (T0, T0), follow_symlinks=False)
    gone = [
        aged(logs / f"{ended_long_ago}.log", "ended 39 days ago", T0 + DAY),
        aged(logs / f"{ended_long_ago}.log.old", "the part before", T0),
        aged(logs / "0123456789abcdef.log", "a session the registry forgot", T0),
    ]
    assert reg.audit(ended_long_ago)

    with caplog.at_level(logging.INFO, logger="wayray.server"):
        records, files = forget_ended(reg, logs, 30 * DAY, now)

    assert (records, files) == (1, 3)
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert link.is_symlink() and outside.read_text() == "not the server's"
    assert reg.audit(ended_long_ago) == []  # its audit trail went with it
    assert reg.audit(ended_lately)  # the recent one's stays
    assert reg.find(live) is not None
    assert "forgot what is older than 30 days: 1 ended sessions' records" in caplog.text
    # A second round finds nothing more and says nothing.
    caplog.clear()
    assert forget_ended(reg, logs, 30 * DAY, now) == (0, 0)
    assert "forgot" not in caplog.text
    reg.close()


def test_no_log_directory_is_no_error(tmp_path: Path) -> None:
    reg = Registry.open(":memory:", policy=SessionPolicy(), now=T0)
    assert forget_ended(reg, tmp_path / "missing", 30 * DAY, T0) == (0, 0)
    assert forget_ended(reg, None, 30 * DAY, T0) == (0, 0)
