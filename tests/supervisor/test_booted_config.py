"""Configuration changes as an operator makes them on a real, booted systemd (systemd-nspawn): a
first `wradm apply` touches nothing that already runs the files; a policy change is reloaded, not
restarted; apply leaves no "changed on disk" warning behind; `systemctl reload` with a broken file
fails with the file:line:col error while the server keeps running; a configuration error stops the
unit once (status 78, no restart loop); a FIFO among the files does not hold up daemon-reload; and
`wradm status` works with a disabled instance configured.

The package is built without its Python dependencies (see nspawn.build_deb); wrsrvd needs them to
serve, so the container gets this checkout's own environment's site-packages, read-only, on the
private environment's path. What is tested is the package's units, generator, wradm and wrsrvd.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.supervisor.nspawn import Container, available, booted_with_package

pytestmark = [pytest.mark.nspawn, pytest.mark.slow]
WHY_NOT = available()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

DEADLINE = 90.0
UNIT = "wrsrvd@main.service"
SITE = Path(sys.executable).parent.parent / "lib" / "python3.11" / "site-packages"
STALE = "changed on disk. Run 'systemctl daemon-reload'"

SERVERS = """[server.main]
port = 7100
listen = ["127.0.0.1"]
policy = "{policy}"
sessions = "command"      # no login screens here: the tests are about the configuration
session_command = ["true"]
admission.access_key_file = "/var/lib/wayray/main/access.key"  # no login: a key, on loopback too
{extra}
"""
POLICIES = '[policy.office]\ndetached_timeout = "{timeout}"\n'


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    with booted_with_package(tmp_path_factory.mktemp("box"), "wrcfg", binds={SITE: "/mnt/deps"}) as c:
        c.write("/opt/wayray/lib/python3.11/site-packages/zz-test-dependencies.pth", "/mnt/deps\n")
        # The state of a machine that booted with this configuration: the generator enabled main, the
        # services started with these files, and nobody ran `wradm apply` yet.
        c.run(["systemctl", "stop", "wayray.target", "wrsrvd@main.service", "wrsessd.service"], check=False)
        c.write("/etc/wayray/servers.toml", SERVERS.format(policy="office", extra=""))
        c.write("/etc/wayray/policies.toml", POLICIES.format(timeout="8h"))
        c.run(["rm", "-f", "/var/lib/wayray/wradm-applied.json"])
        c.run(["systemctl", "daemon-reload"])
        c.run(["systemctl", "reset-failed"], check=False)
        c.run(["systemctl", "start", "wayray.target", UNIT, "wrsessd.service"], check=False)
        until(lambda: prop(c, UNIT, "ActiveState") == "active", "wrsrvd@main to run", c)
        yield c


def until(condition: object, what: str, box: Container | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            journal = box.run(["journalctl", "-n", "60", "--no-pager"], check=False).stdout if box else ""
            raise AssertionError(f"gave up waiting for {what}\n{journal}")
        time.sleep(0.2)


def prop(box: Container, unit: str, name: str) -> str:
    return box.run(["systemctl", "show", "-P", name, unit]).stdout.strip()


def status(box: Container, unit: str = UNIT) -> str:
    res = box.run(["systemctl", "status", "--no-pager", "-l", "-n", "30", unit], check=False)
    return res.stdout + res.stderr


def test_a_first_apply_touches_nothing_that_runs_the_files_already(box: Container) -> None:
    main_pid = prop(box, UNIT, "MainPID")
    launcher_pid = prop(box, "wrsessd.service", "MainPID")
    dry = box.run(["wradm", "apply", "--dry-run"])
    assert "nothing to do: the services match the configuration" in dry.stdout, dry.stdout + dry.stderr
    res = box.run(["wradm", "apply"])
    assert "nothing to do" in res.stdout, res.stdout
    assert (prop(box, UNIT, "MainPID"), prop(box, "wrsessd.service", "MainPID")) == (main_pid, launcher_pid)


def test_wradm_status_does_not_count_a_disabled_instance(box: Container) -> None:
    box.write("/etc/wayray/servers.toml.d/50-lab.toml", "[server.lab]\nenabled = false\nport = 7101\n")
    try:
        res = box.run(["wradm", "status"], check=False)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("wrsrvd main (instance)")
        assert "detached timeout 8 h" in res.stdout
    finally:
        box.run(["rm", "-rf", "/etc/wayray/servers.toml.d"])


def test_a_policy_change_is_reloaded_not_restarted(box: Container) -> None:
    main_pid = prop(box, UNIT, "MainPID")
    box.write("/etc/wayray/policies.toml", POLICIES.format(timeout="2h"))
    res = box.run(["wradm", "apply"])
    assert "systemctl reload wrsrvd@main.service" in res.stdout, res.stdout
    assert "restart" not in res.stdout, res.stdout
    assert prop(box, UNIT, "MainPID") == main_pid
    assert "detached timeout 2 h" in box.run(["wradm", "status"]).stdout


def test_apply_leaves_systemd_without_the_changed_on_disk_warning(box: Container) -> None:
    # A change of servers.toml that needs no command (a comment): systemd still knows the file changed
    # (SourcePath=) and says so on every systemctl command until its units are reloaded.
    box.write("/etc/wayray/servers.toml", SERVERS.format(policy="office", extra="# reviewed"))
    assert STALE in status(box)
    res = box.run(["wradm", "apply"])
    assert "systemctl daemon-reload" in res.stdout, res.stdout
    assert prop(box, UNIT, "NeedDaemonReload") == "no"
    assert STALE not in status(box)
    assert "nothing to do" in box.run(["wradm", "apply"]).stdout


def test_a_reload_with_a_broken_file_fails_and_the_server_keeps_its_configuration(box: Container) -> None:
    main_pid = prop(box, UNIT, "MainPID")
    box.write("/etc/wayray/servers.toml", SERVERS.format(policy="ofice", extra=""))
    box.run(["systemctl", "daemon-reload"])
    res = box.run(["systemctl", "reload", UNIT], check=False)
    assert res.returncode != 0
    error = '/etc/wayray/servers.toml:4:10: error: server.main.policy: no policy named "ofice"'
    shown = status(box)
    assert error in shown, shown
    assert prop(box, UNIT, "ActiveState") == "active" and prop(box, UNIT, "MainPID") == main_pid
    assert "detached timeout 2 h" in box.run(["wradm", "status"]).stdout
    journal = box.run(["journalctl", "-u", UNIT, "-o", "cat", "--no-pager"]).stdout
    assert f"configuration not reloaded (the running one stays): {error}" in journal


def test_a_configuration_error_stops_the_unit_once(box: Container) -> None:
    # servers.toml still names the policy "ofice". A restart takes the server down (systemd has no way
    # to check before it stops: `wradm apply` and `systemctl reload` do) and it stays down, once.
    res = box.run(["systemctl", "restart", UNIT], check=False)
    assert res.returncode != 0
    assert prop(box, UNIT, "ActiveState") == "failed", prop(box, UNIT, "SubState")
    assert prop(box, UNIT, "ExecMainStatus") == "78"
    assert prop(box, UNIT, "NRestarts") == "0"
    shown = status(box)
    assert "status=78/CONFIG" in shown, shown
    assert "/etc/wayray/servers.toml:4:10: error: server.main.policy: no policy named" in shown, shown
    journal = box.run(["journalctl", "-u", UNIT, "-o", "cat", "--no-pager", "-n", "50"]).stdout
    assert "Scheduled restart job" not in journal
    assert not re.search(r"client\.toml:\d+:\d+: warning", journal), journal  # a kiosk's file
    # Fixed: apply starts the enabled instance that does not run.
    box.write("/etc/wayray/servers.toml", SERVERS.format(policy="office", extra=""))
    res = box.run(["wradm", "apply"])
    assert "systemctl start wrsrvd@main.service" in res.stdout, res.stdout
    until(lambda: prop(box, UNIT, "ActiveState") == "active", "wrsrvd@main to run again", box)


def test_a_fifo_among_the_files_does_not_hold_up_daemon_reload(box: Container) -> None:
    box.run(["mkdir", "-p", "/etc/wayray/servers.toml.d"])
    box.run(["mkfifo", "/etc/wayray/servers.toml.d/40-fifo.toml"])
    try:
        box.run(["systemctl", "daemon-reload"], timeout=DEADLINE)  # the generator reads around it
        assert UNIT in prop(box, "wayray.target", "Wants").split()
        res = box.run(["wradm", "check"], check=False)
        assert res.returncode == 1
        assert "40-fifo.toml:1:1: error: is a FIFO (named pipe), not a regular file" in res.stderr
    finally:
        box.run(["rm", "-rf", "/etc/wayray/servers.toml.d"])
        box.run(["systemctl", "daemon-reload"])
