"""Shared pytest fixtures and paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
VENV_BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """Path of one of WayRay's installed console scripts (wrsrvd, wradm, ...) in this venv."""
    path = VENV_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: console script missing; run ./tools/bootstrap")
    return str(path)


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    """A private XDG_RUNTIME_DIR (mode 0700) for Wayland sockets."""
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    return d
