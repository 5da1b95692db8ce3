from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from tests.conftest import attach_log
from tests.e2e.harness import Harness, harness, kill_sessions
from tests.pool.netns import Lan, lan

__all__ = ["harness"]


@pytest.fixture
def net(harness: Harness) -> Iterator[Lan]:
    """A bridge and namespaces for this test; afterwards every session its servers started ends
    (they live in process sessions of their own, and outlive the servers the harness kills)."""
    with lan() as network:
        try:
            yield network
        finally:
            harness.cleanup()
            for srv in harness.servers:
                with suppress(OSError):
                    kill_sessions(srv.runtime / "link.sock")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed pool test's report carries the logs of its members' wrsrvd (each host's, named by it)
    and of the sessions they started, so a failure says what the members saw: the harness removes
    the sessions' logs when it cleans up."""
    report: pytest.TestReport = yield
    rig = getattr(item, "funcargs", {}).get("harness")
    if report.failed and isinstance(rig, Harness):
        for n, srv in enumerate(rig.servers):
            host = getattr(getattr(srv, "host", None), "name", None)
            attach_log(report, f"wrsrvd {host or n} ({srv.log.name})", srv.log)
            args = srv.extra
            state = Path(args[args.index("--state-dir") + 1]) if "--state-dir" in args else srv.state
            for path in sorted(state.glob("sessions/*.log")):
                attach_log(report, f"session {path.stem} on {host or n}", path)
    return report
