"""ruff and mypy are part of the suite: a lint or type error fails the tests."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, VENV_BIN


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    res = _run(str(VENV_BIN / "ruff"), "check", "wayray", "tests", "bench", "packaging")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format() -> None:
    res = _run(str(VENV_BIN / "ruff"), "format", "--check", "wayray", "tests", "bench", "packaging")
    assert res.returncode == 0, "run `make fmt`:\n" + res.stdout + res.stderr


def test_mypy() -> None:
    res = _run(sys.executable, "-m", "mypy")
    assert res.returncode == 0, res.stdout + res.stderr
