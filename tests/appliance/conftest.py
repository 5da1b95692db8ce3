"""The full Debian package (WayRay with its pinned Python dependencies), built once per test run
and shared by the appliance tests that need the daemons to run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.supervisor.nspawn import build_deb

#: The booted tier's time per step, shown at the end of the run.
TIMINGS = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if TIMINGS in config.stash:
        terminalreporter.write_sep("-", "appliance tier")
        terminalreporter.write_line(config.stash[TIMINGS])


@pytest.fixture(scope="session")
def full_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``wayray_<version>-1_<arch>.deb`` with its dependencies (pip fetches the pinned versions;
    uncompressed, as tests build it: about 30 s)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    return build_deb(tmp_path_factory.mktemp("full-deb"), dependencies=True)


@pytest.fixture(scope="session")
def full_tree(full_deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full package's files, extracted."""
    root = tmp_path_factory.mktemp("full-tree")
    subprocess.run(["dpkg-deb", "-x", str(full_deb), str(root)], check=True, timeout=300)
    return root
