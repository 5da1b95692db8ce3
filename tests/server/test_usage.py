"""What a session costs (``wayray.server.usage``, for ``wradm sessions``): a session in a cgroup of
its own is read from its cgroup's counters; one in wrsrvd's cgroup from its keeper's process tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import eventually
from wayray.server import usage


def test_a_session_in_a_cgroup_of_its_own_is_read_from_its_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = tmp_path / "wayray.slice" / "wayray-session-3f1c.scope"
    scope.mkdir(parents=True)
    (scope / "memory.current").write_text("47395000\n")
    (scope / "cpu.stat").write_text("usage_usec 754250000\nuser_usec 700000000\nsystem_usec 54250000\n")
    monkeypatch.setattr(usage, "CGROUP_ROOT", tmp_path)
    groups = {4343: "/wayray.slice/wayray-session-3f1c.scope", "self": "/system.slice/wrsrvd@lab.service"}
    monkeypatch.setattr(usage, "cgroup_of", lambda pid="self": groups.get(pid))
    assert usage.session_usage(4343) == usage.Usage(754.25, 47395000, "cgroup")
    # Login mode: wrsrvd cannot see the user's processes (ProtectProc=invisible), wrsessd named the scope.
    monkeypatch.setattr(usage, "cgroup_of", lambda pid="self": None)
    assert usage.session_usage(None, "wayray-session-3f1c.scope") == usage.Usage(754.25, 47395000, "cgroup")
    logind = tmp_path / "user.slice" / "user-1000.slice" / "session-7.scope"
    logind.mkdir(parents=True)
    (logind / "memory.current").write_text("1048576\n")
    (logind / "cpu.stat").write_text("usage_usec 1500000\n")
    assert usage.session_usage(None, "session-7.scope", 1000) == usage.Usage(1.5, 1048576, "cgroup")
    assert usage.session_usage(None, "../../etc", 1000) is None  # a name, never a path
    # A hybrid host (systemd's v1 controllers, the unified hierarchy without them, as in nspawn here).
    hybrid = tmp_path / "hybrid"
    (hybrid / "unified" / "wayray.slice" / "wayray-session-9.scope").mkdir(parents=True)
    (hybrid / "unified" / "wayray.slice" / "wayray-session-9.scope" / "cpu.stat").write_text(
        "usage_usec 250000\n"
    )
    (hybrid / "memory" / "wayray.slice" / "wayray-session-9.scope").mkdir(parents=True)
    (hybrid / "memory" / "wayray.slice" / "wayray-session-9.scope" / "memory.usage_in_bytes").write_text(
        "8192\n"
    )
    monkeypatch.setattr(usage, "CGROUP_ROOT", hybrid)
    assert usage.session_usage(None, "wayray-session-9.scope") == usage.Usage(0.25, 8192, "cgroup")
    monkeypatch.setattr(usage, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(usage, "cgroup_of", lambda pid="self": groups.get(pid))
    # Counters it cannot read: the process tree instead (here: no such process, so nothing).
    (scope / "cpu.stat").write_text("garbage\n")
    monkeypatch.setattr(usage, "_tree_usage", lambda pid: None)
    assert usage.session_usage(4343) is None


def test_a_session_in_wrsrvds_cgroup_is_its_keeper_and_everything_below_it() -> None:
    # "keeper": a shell whose children are the "compositor" (the first sleep) and a program below it.
    keeper = subprocess.Popen(["sh", "-c", "sleep 60 & sh -c 'sleep 61' & wait"])
    try:
        below = eventually(
            lambda: len(psutil.Process(keeper.pid).children(recursive=True)) >= 3 and keeper.pid,
            "the keeper's children",
        )
        compositor = next(p for p in psutil.Process(below).children() if p.name() == "sleep")
        used = usage.session_usage(compositor.pid)
        assert used is not None and used.measured_by == "processes"
        alone = psutil.Process(compositor.pid).memory_full_info().pss
        assert used.memory_bytes > 2 * alone  # the keeper, both shells and both sleeps, not just one
        assert usage.session_usage(999_999_999) is None
    finally:
        keeper.kill()
        keeper.wait()
