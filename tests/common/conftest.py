"""What the tests of wayray/common share."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NOBODY = 65534


@pytest.fixture
def nobody_can_run_wayray() -> None:
    """Skip unless root may run this checkout's Python with wayray as nobody: a checkout inside a
    directory only root may enter (a mktemp -d) cannot be run as another user at all."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs code as nobody")
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import wayray.common"], capture_output=True, user=NOBODY, timeout=60
        )
    except PermissionError:
        pytest.skip(f"nobody may not run {sys.executable} (a directory above it is closed to others)")
    if done.returncode != 0:
        pytest.skip(f"nobody cannot import this checkout's wayray: {done.stderr.decode()[-200:]}")
