"""Sessions outlive every stop of wrsessd under a real, booted systemd (systemd-nspawn), with and
without pam_systemd in the PAM stack, and carry their resource limits on their scope.

Without pam_systemd nothing moves a session out of ``wrsessd.service``'s cgroup, and stopping the
service (``systemctl restart wrsessd``, ``systemctl stop wayray.target``, a package upgrade's
``try-restart``) SIGKILLs every process left in it: wrsessd asks systemd for a scope of the session's
own (``wayray-session-<id>.scope`` in ``wayray.slice``). With pam_systemd the session is in logind's
``session-N.scope``, and its limits are set there.

The package is installed with dpkg as an operator would, built without the daemons' heavy
dependencies; the session compositor, its components and the greeter are the launcher tests'
stand-ins (stdlib only, the greeter stand-in run by the package's own interpreter so that it finds
wrsessd's client library), named in a ``wrsessd --settings`` drop-in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.launcher.harness import STANDINS, wait_for
from tests.supervisor.nspawn import Container, available, booted_with_package

pytestmark = [pytest.mark.nspawn, pytest.mark.slow, pytest.mark.root]
WHY_NOT = available()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

USER, PASSWORD = "alice", "wayray-test-pw-8"
PY = "/usr/bin/python3.11"
SETTINGS = f"""\
control_users = []
stop_timeout_s = 5.0
[user_session]
compositor = ["{PY}", "/mnt/standins/fake_compositor.py", "--name", "{{wayland_display}}",
              "--report", "/var/tmp/reports/{{session_id}}-compositor.json"]
components = [{{name = "wm", argv = ["{PY}", "/mnt/standins/fake_component.py", "--report",
               "/var/tmp/reports/{{session_id}}-wm.json"]}}]
[greeter_session]
compositor = ["{PY}", "/mnt/standins/fake_compositor.py", "--name", "{{wayland_display}}",
              "--report", "/var/tmp/reports/{{session_id}}-compositor.json"]
components = [{{name = "greeter", argv = ["/opt/wayray/bin/python", "/mnt/standins/fake_wrlogin.py",
               "--script", "/var/tmp/reports/greeter-script.json",
               "--transcript", "/var/tmp/reports/{{session_id}}-greeter.json"]}}]
"""
#: Runs inside, as root (a control client); prints JSON.
CLIENT = """
import json, sys
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient
what = sys.argv[1]
with LauncherClient("/run/wayray/wrsessd.sock") as c:
    if what == "login":
        create = p.CreateSession(username=sys.argv[2], token="tok-1", token_kind="badge", rhost="10.0.0.7")
        assert isinstance(c.login(create, lambda m: sys.argv[3] if m.auth_message_type.is_prompt else None),
                          p.Success)
        print(json.dumps(c.call(p.StartSession()).session.to_json()))
    elif what == "greeter":
        limits = json.loads(sys.argv[2])
        print(json.dumps(c.call(p.CreateGreeterSession(token="tok-2", token_kind="badge", rhost="10.0.0.8",
                                                       **limits)).session.to_json()))
    elif what == "list":
        print(json.dumps([s.to_json() for s in c.list_sessions()]))
    elif what == "kill":
        c.kill_session(sys.argv[2])
        print("{}")
"""


@pytest.fixture(scope="module", params=["without-pam_systemd", "with-pam_systemd"])
def box(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    with booted_with_package(
        tmp_path_factory.mktemp("box"), "wrscope", binds={STANDINS: "/mnt/standins"}
    ) as container:
        container.run(["useradd", "--create-home", "--shell", "/bin/sh", USER])
        container.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n")
        container.run(["install", "-d", "-m", "1777", "/var/tmp/reports"])
        container.write("/etc/wayray/wrsessd-test.toml", SETTINGS)
        container.write(
            "/etc/systemd/system/wrsessd.service.d/50-test.conf",
            "[Service]\nExecStart=\n"
            "ExecStart=/opt/wayray/bin/wrsessd --settings /etc/wayray/wrsessd-test.toml -v\n",
        )
        container.write("/var/tmp/client.py", CLIENT)
        if request.param == "without-pam_systemd":
            # As on a system whose administrator took pam_systemd out of the common stack.
            container.run(["pam-auth-update", "--package", "--disable", "systemd"])
            assert "pam_systemd" not in container.run(["cat", "/etc/pam.d/common-session"]).stdout
        else:
            assert "pam_systemd" in container.run(["cat", "/etc/pam.d/common-session"]).stdout
        container.run(["systemctl", "daemon-reload"])
        container.logind = request.param == "with-pam_systemd"  # type: ignore[attr-defined]
        yield container


def client(box: Container, *args: str) -> object:
    res = box.run(["/opt/wayray/bin/python", "/var/tmp/client.py", *args], check=False, timeout=120)
    assert res.returncode == 0, f"{res.stderr}\n{journal(box, '-u', 'wrsessd')[-4000:]}"
    return json.loads(res.stdout)


def journal(box: Container, *args: str) -> str:
    return box.run(["journalctl", "--no-pager", "-o", "cat", *args], check=False).stdout


def process(box: Container, pid: int) -> tuple[str, str] | None:
    """(start time, cgroup) of a live process inside, or None when it is gone (or a zombie)."""
    res = box.run(["cat", f"/proc/{pid}/stat", f"/proc/{pid}/cgroup"], check=False)
    if res.returncode != 0:
        return None
    stat, _, cgroup = res.stdout.partition("\n")
    fields = stat.rpartition(")")[2].split()
    if fields[0] == "Z":
        return None
    return fields[19], cgroup


def expected_unit(box: Container, info: dict[str, object]) -> str:
    if box.logind:  # type: ignore[attr-defined]
        assert re.fullmatch(r"session-\w+\.scope", str(info["unit"])), info
        return str(info["unit"])
    assert info["unit"] == f"wayray-session-{info['session_id']}.scope", info
    return str(info["unit"])


def test_sessions_outlive_every_stop_of_wrsessd(box: Container) -> None:
    user = client(box, "login", USER, PASSWORD)
    greeter = client(box, "greeter", "{}")
    assert isinstance(user, dict) and isinstance(greeter, dict)
    pids = {}
    for info in (user, greeter):
        for key in ("worker_pid", "compositor_pid"):
            seen = process(box, int(info[key]))  # type: ignore[call-overload]
            assert seen is not None, info
            pids[int(info[key])] = seen[0]  # type: ignore[call-overload]

    actions = [
        ["systemctl", "restart", "wrsessd.service"],
        ["sh", "-c", "systemctl stop wayray.target && systemctl start wayray.target"],
        # A package upgrade: postinst's try-restart of wrsessd.service (and of the server instances).
        ["sh", "-c", "dpkg -i /mnt/pkg/*.deb"],
    ]
    for action in actions:
        cursor = box.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager"]).stdout.split()[-1]
        box.run(action, timeout=300)
        listed = client(box, "list")
        assert isinstance(listed, list)
        assert {s["session_id"]: s.get("adopted") for s in listed} == {
            user["session_id"]: True,
            greeter["session_id"]: True,
        }, (action, journal(box, "-u", "wrsessd", f"--after-cursor={cursor}"))
        for pid, started in pids.items():
            now = process(box, pid)
            assert now is not None and now[0] == started, (action, pid)
        since = journal(box, f"--after-cursor={cursor}")
        assert "SIGKILL" not in since and "was not closed" not in since, (action, since)
        assert "2 running session(s) keep running (each in a scope of its own)" in since, (action, since)

    # Where they are: out of wrsessd's cgroup, in a scope of their own.
    for info in (user, greeter):
        unit = expected_unit(box, info)
        for key in ("worker_pid", "compositor_pid"):
            seen = process(box, int(info[key]))  # type: ignore[call-overload]
            assert seen is not None and f"/{unit}" in seen[1] and "wrsessd.service" not in seen[1], seen
    if not box.logind:  # type: ignore[attr-defined]
        assert (
            box.run(["systemctl", "show", "-P", "Slice", str(user["unit"])]).stdout.strip() == "wayray.slice"
        )

    for info in (user, greeter):
        client(box, "kill", str(info["session_id"]))
        wait_for(
            lambda info=info: (
                box.run(["systemctl", "is-active", str(info["unit"])], check=False).stdout.strip()
                != "active"
            ),
            what=f"{info['unit']} to stop",
        )


def test_a_sessions_limits_are_on_its_scope(box: Container) -> None:
    """limits.session_memory_max / session_cpu_quota reach wrsessd with create_greeter_session; the
    greeter's scope and the scope of the user session its login starts both carry them."""
    box.write(
        "/var/tmp/reports/greeter-script.json",
        json.dumps({"username": USER, "answers": [PASSWORD], "start": True}),
    )
    try:
        greeter = client(box, "greeter", json.dumps({"memory_max": 768 * 2**20, "cpu_quota": 150}))
        assert isinstance(greeter, dict)

        def user_session() -> dict[str, object] | None:
            listed = client(box, "list")
            assert isinstance(listed, list)
            return next((s for s in listed if s.get("replaces") == greeter["session_id"]), None)

        user = wait_for(user_session, what="the greeter's login to start alice's session")
        for info in (greeter, user):
            unit = expected_unit(box, info)
            assert (info["memory_max"], info["cpu_quota"]) == (768 * 2**20, 150), info
            shown = box.run(
                ["systemctl", "show", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec", unit]
            ).stdout
            assert sorted(shown.split()) == ["CPUQuotaPerSecUSec=1.500000s", f"MemoryMax={768 * 2**20}"], (
                shown
            )
        for info in (user, greeter):
            client(box, "kill", str(info["session_id"]))
    finally:
        box.run(["rm", "-f", "/var/tmp/reports/greeter-script.json"])
