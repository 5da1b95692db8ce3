"""What the tests of wayray/common share."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

NOBODY = 65534
NOGROUP = 65534
#: What runs a program as nobody, group and all. With ``user=`` alone the child keeps root's groups,
#: and a directory whose group is root is then judged by its group bits: a ``mktemp -d`` (0700, opened
#: o+x for the run by tests/conftest.py) stays closed to it, though nobody itself may pass.
AS_NOBODY: dict[str, Any] = {"user": NOBODY, "group": NOGROUP, "extra_groups": []}


@pytest.fixture
def nobody_can_run_wayray() -> None:
    """Skip unless root may run this checkout's Python with wayray as nobody: a checkout inside a
    directory only root may enter (a mktemp -d) cannot be run as another user at all."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs code as nobody")
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import wayray.common"], capture_output=True, timeout=60, **AS_NOBODY
        )
    except PermissionError:
        pytest.skip(f"nobody may not run {sys.executable} (a directory above it is closed to others)")
    if done.returncode != 0:
        pytest.skip(f"nobody cannot import this checkout's wayray: {done.stderr.decode()[-200:]}")
