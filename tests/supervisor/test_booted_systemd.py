"""The package under a real, booted systemd (systemd-nspawn): installed with dpkg, the generator
enables exactly the configured instances at daemon-reload, the per-instance limits reach the units,
a broken configuration stops an instance once with the file:line:col message in its journal, and
the sd_notify helper's readiness, status and watchdog are what systemd acts on.

The package is built without the daemons' dependencies (wradm, the generator, the notify helper and
wrsrvd's configuration check need only the standard library), so wrsrvd does not serve here:
test_booted_config.py gives it this checkout's dependencies, and tests/appliance/
test_booted_appliance.py installs the full package with apt and runs it, logins included.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.supervisor.nspawn import Container, available, booted_with_package

pytestmark = [pytest.mark.nspawn, pytest.mark.slow]
WHY_NOT = available()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

DEADLINE = 90.0


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    with booted_with_package(tmp_path_factory.mktemp("box"), "wrtest") as container:
        # The operator's first edit: the shipped servers.toml enables no instance.
        container.run(["sed", "-i", "0,/^enabled = false/s//enabled = true/", "/etc/wayray/servers.toml"])
        container.run(["systemctl", "daemon-reload"])
        yield container


def until(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def prop(box: Container, unit: str, name: str) -> str:
    return box.run(["systemctl", "show", "-P", name, unit]).stdout.strip()


def test_the_package_installs_users_and_enables_the_target(box: Container) -> None:
    assert box.run(["systemctl", "is-enabled", "wayray.target"]).stdout.strip() == "enabled"
    assert box.run(["id", "-nG", "wayray-greeter"]).stdout.split() == ["wayray-greeter", "wayray"]
    assert box.run(["wradm", "check"]).stdout.startswith("configuration OK")
    # postinst compiled the private environment (the sandboxed daemons could not write byte-code).
    cache = "/opt/wayray/lib/python3.11/site-packages/wayray/config/__pycache__"
    assert box.run(["ls", cache]).stdout.split()


def test_the_generator_enables_exactly_the_configured_instances(box: Container) -> None:
    wants = box.run(["ls", "/run/systemd/generator/wayray.target.wants"]).stdout.split()
    assert wants == ["wrsrvd@main.service"]  # lab has enabled = false in the shipped servers.toml
    assert "wrsrvd@main.service" in prop(box, "wayray.target", "Wants").split()
    assert prop(box, "wrsrvd@main.service", "MemoryMax") == str(16 * 1024**3)
    assert prop(box, "wrsrvd@main.service", "CPUQuotaPerSecUSec") == "4s"
    assert prop(box, "wrsrvd@main.service", "SourcePath") == "/etc/wayray/servers.toml"

    box.write("/etc/wayray/servers.toml.d/50-lab.toml", "[server.lab]\nenabled = true\n")
    try:
        dry = box.run(["wradm", "apply", "--dry-run"]).stdout
        assert "+++ /run/systemd/generator/wayray.target.wants/wrsrvd@lab.service" in dry
        assert "systemctl daemon-reload" in dry
        box.run(["systemctl", "daemon-reload"])
        wanted = set(prop(box, "wayray.target", "Wants").split())
        assert {"wrsrvd@main.service", "wrsrvd@lab.service"} <= wanted
    finally:
        box.run(["rm", "/etc/wayray/servers.toml.d/50-lab.toml"])
        box.run(["systemctl", "daemon-reload"])
    assert "wrsrvd@lab.service" not in prop(box, "wayray.target", "Wants").split()


def test_the_instance_checks_its_configuration_under_the_sandbox_and_stops_once(box: Container) -> None:
    # wrsrvd reads its configuration as user wayray, fully sandboxed, before anything else (this
    # package has no dependencies to serve with: test_booted_config.py runs a serving instance).
    box.run(["systemctl", "stop", "wrsrvd@main.service"], check=False)
    box.run(["systemctl", "reset-failed", "wrsrvd@main.service"], check=False)
    box.write("/etc/wayray/servers.toml.d/60-bad.toml", '[server.main]\nport = "x"\n')
    try:
        res = box.run(["systemctl", "start", "wrsrvd@main.service"], check=False)
        assert res.returncode != 0
        assert prop(box, "wrsrvd@main.service", "ExecMainStatus") == "78"
        assert prop(box, "wrsrvd@main.service", "ActiveState") == "failed"  # not auto-restart
        assert prop(box, "wrsrvd@main.service", "NRestarts") == "0"
        journal = box.run(["journalctl", "-u", "wrsrvd@main.service", "-o", "cat", "--no-pager"]).stdout
        expected = "/etc/wayray/servers.toml.d/60-bad.toml:2:8: error: server.main.port: expected integer"
        assert f'{expected}, got string "x"' in journal
    finally:
        box.run(["rm", "/etc/wayray/servers.toml.d/60-bad.toml"])
        box.run(["systemctl", "reset-failed", "wrsrvd@main.service"], check=False)


NOTIFYING = """
import asyncio, sys
from wayray.common.notify import Notifier

notifier = Notifier.from_environment(unset=True)
healthy = sys.argv[1] == "healthy"

async def main():
    notifier.ready("serving 0 sessions")
    notifier.start_watchdog(healthy=lambda: healthy)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def run_notifying(box: Container, unit: str, mode: str) -> None:
    box.run(
        ["systemd-run", f"--unit={unit}", "-p", "Type=notify", "-p", "WatchdogSec=2s",
         "/opt/wayray/bin/python", "-c", NOTIFYING, mode]
    )  # fmt: skip


def test_readiness_status_and_watchdog_pings_reach_systemd(box: Container) -> None:
    run_notifying(box, "wr-notify-ok", "healthy")
    try:
        # systemd-run returns once a Type=notify unit has sent READY=1.
        assert prop(box, "wr-notify-ok", "ActiveState") == "active"
        assert prop(box, "wr-notify-ok", "StatusText") == "serving 0 sessions"
        first = int(prop(box, "wr-notify-ok", "WatchdogTimestampMonotonic"))
        until(lambda: int(prop(box, "wr-notify-ok", "WatchdogTimestampMonotonic")) > first, "a second ping")
        assert prop(box, "wr-notify-ok", "ActiveState") == "active"
    finally:
        box.run(["systemctl", "stop", "wr-notify-ok"], check=False)


def test_a_daemon_that_stops_pinging_is_killed_by_the_watchdog(box: Container) -> None:
    run_notifying(box, "wr-notify-hung", "unhealthy")
    try:
        until(lambda: prop(box, "wr-notify-hung", "Result") == "watchdog", "the watchdog to fire")
    finally:
        box.run(["systemctl", "stop", "wr-notify-hung"], check=False)
        box.run(["systemctl", "reset-failed", "wr-notify-hung"], check=False)
