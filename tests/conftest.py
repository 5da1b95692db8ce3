"""Shared pytest fixtures and paths."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
VENV_BIN = Path(sys.executable).parent


# Property tests must not depend on the machine's speed: a run on a loaded two-core machine took 340 ms
# for one example of a 200 ms deadline. No deadline, and no health check that times the examples;
# everything else (how many examples, the example database) stays as each test or Hypothesis sets it.
# Loaded here, before any test module builds its own ``settings(...)`` on top of the default.
settings.register_profile(
    "wayray", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("wayray")


#: Directories above the checkout that the tests opened for traversal (path, mode before).
_OPENED: list[tuple[Path, int]] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests running as root start programs from this checkout as throwaway users (sessions,
    greeters, stand-ins). A checkout under a private directory (``mktemp -d`` makes it 0700) is out
    of their reach: give the directories above it search permission for others (o+x, not listing)
    for the run, and take it back at the end. In a parallel run (xdist) the controller does this
    once, around all its workers: a worker that finished first must not take it back from the others."""
    if os.geteuid() != 0 or _is_xdist_worker(session.config):
        return
    for d in reversed(REPO.parents):
        mode = stat.S_IMODE(d.stat().st_mode)
        if not mode & stat.S_IXOTH:
            os.chmod(d, mode | stat.S_IXOTH)
            _OPENED.append((d, mode))
    if _OPENED:
        names = ", ".join(str(d) for d, _ in _OPENED)
        sys.stderr.write(f"tests: {names}: search permission for other users while the tests run\n")
    unreadable = [
        p for p in (REPO, REPO / "wayray", REPO / "wayray" / "__init__.py") if not p.stat().st_mode & 0o004
    ]
    if unreadable:
        raise pytest.UsageError(
            f"{unreadable[0]} is not readable by other users (a checkout made under umask 077?); "
            "the tests run parts of WayRay as throwaway users: clone it with umask 022"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_xdist_worker(session.config):
        return
    while _OPENED:
        d, mode = _OPENED.pop()
        os.chmod(d, mode)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


#: How much of each log a failed test's report shows (its end: where the failure is).
REPORT_LOG_CHARS = 40_000


def attach_log(report: pytest.TestReport, name: str, source: Path | str) -> None:
    """Add a log (a file, or its text) to a failed test's report, as a section of its own; its last
    REPORT_LOG_CHARS characters. For logs the test's harness removes when it cleans up."""
    if isinstance(source, Path):
        try:
            text = source.read_bytes().decode(errors="replace")
        except OSError as err:
            text = f"({source}: {err.strerror})"
    else:
        text = source
    if len(text) > REPORT_LOG_CHARS:
        left_out = len(text) - REPORT_LOG_CHARS
        text = f"[… the first {left_out} characters left out]\n{text[-REPORT_LOG_CHARS:]}"
    report.sections.append((f"log: {name}", text))


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
