from collections.abc import Iterator

import pytest

from tests.conftest import attach_log
from tests.e2e.harness import harness, keeper_kind

__all__ = ["harness", "keeper_kind"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed login test's report carries every log of its rig (wrsrvd, wrsessd with its workers,
    the kiosks, the sessions' own): the rig removes them when it cleans up."""
    from tests.e2e.login import LoginRig

    report: pytest.TestReport = yield
    rig = getattr(item, "funcargs", {}).get("rig")
    if report.failed and isinstance(rig, LoginRig):
        try:
            logs = rig.logs()
        except Exception as err:  # noqa: BLE001 - a report must not fail for its logs
            logs = {"(the rig's logs)": f"cannot be read: {err!r}"}
        for name, text in logs.items():
            attach_log(report, name, "(binary: not shown)" if "\0" in text else text)
    return report
