"""Trace mode: with WAYRAY_TRACE set, a key typed at a viewer is stamped at every hop up to the frame
that shows its echo, in order, by every process it crosses; without it, nothing is written."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench.trace_hops import HOPS, read_traces
from tests.e2e.harness import Harness, failure

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def test_every_hop_of_a_typed_key_is_stamped_in_order_and_no_key_is_named(harness: Harness) -> None:
    traces = harness.tmp / "traces"
    traces.mkdir()
    harness.env["WAYRAY_TRACE"] = str(traces)
    srv = harness.server(FOOT)
    out = harness.home / "typed.txt"
    script = harness.write_script("type.txt", f"settle\ntype echo qz > {out}\nkey Return\nsettle 500\n")
    result = harness.run_script(srv, script)
    assert result.returncode == 0, failure(result)
    assert out.read_text() == "qz\n"

    # The viewer, the front door and the session process each wrote their own file, private.
    files = sorted(traces.glob("*.trace"))
    assert len(files) == 3, [f.name for f in files]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    whole, _unanswered = read_traces(traces)
    # Every typed character echoes in foot: most presses reach the viewer's picture end to end (a key
    # typed while foot is still drawing the last one's echo shares that frame, which is still a frame).
    assert len(whole) >= len("echo qz > ") // 2, whole
    for ident, times in whole.items():
        backwards = [(a, b) for a, b in zip(HOPS, HOPS[1:], strict=False) if times[b] < times[a]]
        assert not backwards, (ident, backwards)
    # What was typed is not in the files: only times, hop names and frame numbers.
    for f in files:
        for line in f.read_text().splitlines():
            _ns, hop, ident, *extra = line.split()
            assert hop in {*HOPS, "frame"}, line
            assert ident[0] in "kf" and ident[1:].replace(".", "").isdigit(), line
            assert all(e.startswith("f") and e[1:].isdigit() for e in extra), line


def test_tracing_is_off_unless_asked_for(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WAYRAY_TRACE"}
    probe = "from wayray.common import trace; trace.mark('viewer_send', 'k1.0'); print(trace.ENABLED)"
    off = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert off.stdout.strip() == "False", off.stderr
    assert not list(tmp_path.iterdir())
    on = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "WAYRAY_TRACE": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert on.stdout.strip() == "True", on.stderr
    assert [p.suffix for p in tmp_path.iterdir()] == [".trace"]
