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
#: A test that needs the full package may be the one whose set-up builds it (pip fetching and
#: installing the pinned dependencies: about 30 s on a quiet machine, over 300 s — the suite's
#: per-test hang guard — with two whole suites on the 2 cores): its own guard covers the build.
BUILDS_THE_PACKAGE_TIMEOUT = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs_package = {"full_deb", "full_tree"} & set(getattr(item, "fixturenames", ()))
        if needs_package and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(BUILDS_THE_PACKAGE_TIMEOUT))


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
