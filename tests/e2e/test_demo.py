"""The README's demo, run the way CI runs it (`--once`): server, session with foot, viewer, snapshot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import Harness, png_pixels

pytestmark = pytest.mark.slow


def _demo_sessions(tmp: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"WAYRAY_LINK={tmp}".encode() in env:
                found.append(int(entry.name))
    return found


def test_demo_once_types_into_foot_writes_a_snapshot_and_leaves_nothing_running(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    snapshot = tmp_path / "demo.png"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "wayray.demo", "--once", "--headless", "--snapshot", str(snapshot)],
            env={**h.env, "TMPDIR": str(h.short)},  # the demo's sockets live there: keep the path short
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        sessions = _demo_sessions(h.short)
        leftovers = list(h.short.glob("wayray-demo-*"))
        h.cleanup()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the session, as the viewer shows it: {snapshot}" in result.stdout
    # The banner says who can connect: the demo server asks for its key, on loopback too.
    assert re.search(r"who can connect\s+whoever has the access key, on this machine only", result.stdout), (
        result.stdout
    )
    pixels = png_pixels(snapshot)
    assert pixels.shape == (720, 1280, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # a terminal with text, not a blank screen
    assert not sessions  # the session ended with the demo
    assert not leftovers  # and its temporary files are gone


def test_demo_config_checks_renders_and_dry_runs_the_shipped_examples(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wayray.demo", "--config"],
        env={**Harness(tmp_path).env, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "configuration OK (no problems): servers: none" in out  # the embedded defaults
    assert "servers: main (disabled), lab (disabled)" in out  # the shipped examples serve nothing
    assert "servers: main, lab (disabled)" in out  # after the one edit
    assert "warning" not in out  # the shipped examples set no key that is not in effect yet
    for line in ("rendered systemd into", "rendered smf into", "systemctl restart wrsrvd@main.service"):
        assert line in out, out
    assert not list(tmp_path.glob("wayray-demo-*")), "the demo's temporary tree is left behind"
