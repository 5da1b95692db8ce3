"""What carries the session's sound runs at the sound's priority where the system allows it
(wayray.audio.realtime, docs/audio.md §7; tests/e2e/test_audio.py checks the session's threads), and
where it is not allowed, the log says so and how to allow it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_where_realtime_is_not_allowed_the_log_says_how_to_allow_it() -> None:
    """As a user without RLIMIT_RTPRIO or RLIMIT_NICE (nobody): the thread runs at ordinary priority,
    and the log says what that costs and how to grant realtime scheduling."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as nobody")
    code = (
        "import logging, os, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
        "os.setpriority(os.PRIO_PROCESS, 0, 0);"  # not what this test process has
        "from wayray.audio import realtime;"
        "print(realtime.raise_priority(what='the session\\'s microphone feed'));"
        "print(realtime.raise_priority(what='the session\\'s microphone feed'))"  # said once, not twice
    )
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "prlimit", "--rtprio=0:0", "--nice=0:0", "--", sys.executable, "-c", code],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["normal", "normal"]
    assert result.stderr.count("runs at ordinary priority, not realtime") == 1, result.stderr
    assert "LimitRTPRIO=5" in result.stderr and "rtprio 5" in result.stderr, result.stderr
