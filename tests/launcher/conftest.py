"""Fixtures for wrsessd's tests: throwaway accounts, PAM service files, a running wrsessd."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import attach_log
from tests.launcher.harness import Accounts, Daemon, Sandbox, throwaway_accounts

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: throwaway users, PAM, setuid")


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    if os.geteuid() != 0:
        pytest.skip("needs root: throwaway users, PAM, setuid")
    with throwaway_accounts() as acc:
        yield acc


@pytest.fixture
def sandbox(accounts: Accounts) -> Iterator[Sandbox]:
    sb = Sandbox(accounts)
    sb.install_pam()
    try:
        yield sb
    finally:
        sb.cleanup()


@pytest.fixture
def start_daemon(sandbox: Sandbox) -> Iterator[Callable[..., Daemon]]:
    """start_daemon(**settings overrides) -> a running wrsessd; stopped and cleaned up afterwards."""
    daemons: list[Daemon] = []

    def start(**overrides: Any) -> Daemon:
        sandbox.write_settings(sandbox.settings(**overrides))
        daemon = Daemon(sandbox)
        daemon.start()
        daemons.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in daemons:
            if daemon.proc is not None:
                daemon.end_all_sessions()
                daemon.stop()
        if daemons and list((sandbox.state / "sessions").glob("*.json")):
            # Sessions a stopped daemon left behind: a fresh one re-adopts and ends them.
            leftover = Daemon(sandbox)
            try:
                leftover.start()
                leftover.end_all_sessions()
            finally:
                leftover.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries wrsessd's log (its workers' lines included): the sandbox, and
    the log with it, is removed when the test ends, and a failure under load is seldom reproduced."""
    report: pytest.TestReport = yield
    sandbox = getattr(item, "funcargs", {}).get("sandbox")
    if report.failed and isinstance(sandbox, Sandbox):
        attach_log(report, "wrsessd.log", sandbox.base / "wrsessd.log")
    return report
