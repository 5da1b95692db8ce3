"""wrsessd under a real, booted systemd with pam_systemd (systemd-nspawn): every session it starts is a
logind session (remote, seat-less, of class user or greeter, type wayland) in a scope of its own —
not in wrsessd's cgroup, nor any server instance's — so restarting wrsessd ends none of them, and
ending one closes its logind session.

The package is installed as an operator would (dpkg: units, users, the PAM services wayray and
wayray-greeter), built without the daemons' heavy dependencies: the session compositor and the
greeter are the launcher tests' stand-ins (tests/launcher/standins, stdlib only), named in a
``wrsessd --settings`` drop-in. The host of these tests has no systemd as PID 1 (so the other
launcher tests run without pam_systemd); this is where logind registration is shown.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.launcher.harness import STANDINS, wait_for
from tests.supervisor.nspawn import Container, available, booted_with_package

pytestmark = [pytest.mark.nspawn, pytest.mark.slow, pytest.mark.root]
WHY_NOT = available()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

USER, PASSWORD = "alice", "wayray-test-pw-7"
SETTINGS = """\
control_users = []
stop_timeout_s = 5.0
[user_session]
compositor = ["/usr/bin/python3.11", "/mnt/standins/fake_compositor.py", "--name", "{wayland_display}",
              "--report", "/var/tmp/reports/{session_id}-compositor.json"]
components = [{name = "wm", argv = ["/usr/bin/python3.11", "/mnt/standins/fake_component.py", "--report",
               "/var/tmp/reports/{session_id}-wm.json"]}]
[greeter_session]
compositor = ["/usr/bin/python3.11", "/mnt/standins/fake_compositor.py", "--name", "{wayland_display}",
              "--report", "/var/tmp/reports/{session_id}-compositor.json"]
components = [{name = "greeter", argv = ["/usr/bin/python3.11", "/mnt/standins/fake_component.py",
               "--report", "/var/tmp/reports/{session_id}-greeter.json"]}]
"""
#: Runs inside, as root (a control client): a login for alice, or a greeter, or a kill; prints JSON.
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
        print(json.dumps(c.call(p.CreateGreeterSession(token="tok-2", token_kind="badge",
                                                       rhost="10.0.0.8")).session.to_json()))
    elif what == "list":
        print(json.dumps([s.to_json() for s in c.list_sessions()]))
    elif what == "kill":
        c.kill_session(sys.argv[2])
        print("{}")
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    # libpam-systemd: pam_systemd.so in common-session, as on any Debian system with systemd.
    with booted_with_package(
        tmp_path_factory.mktemp("box"), "wrlogind", extra_packages=("libpam-systemd",),
        binds={STANDINS: "/mnt/standins"},
    ) as container:  # fmt: skip
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
        container.run(["systemctl", "daemon-reload"])
        yield container


def client(box: Container, *args: str) -> object:
    def journal() -> str:
        return box.run(["journalctl", "-u", "wrsessd", "--no-pager"], check=False).stdout[-4000:]

    try:
        res = box.run(["/opt/wayray/bin/python", "/var/tmp/client.py", *args], check=False, timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the client got no answer in 120 s\n{journal()}") from None
    assert res.returncode == 0, f"{res.stderr}\n{journal()}"
    return json.loads(res.stdout)


def logind_session(box: Container, pid: int) -> dict[str, str]:
    """The logind session ``pid`` belongs to, by its cgroup (session-N.scope), with its properties."""
    cgroup = box.run(["cat", f"/proc/{pid}/cgroup"]).stdout
    m = re.search(r"/session-(\w+)\.scope", cgroup)
    assert m, f"pid {pid} is in no session scope: {cgroup}"
    props = box.run(
        ["loginctl", "show-session", m[1], "-p", "Name", "-p", "Remote", "-p", "RemoteHost", "-p", "Class",
         "-p", "Type", "-p", "Service", "-p", "Seat", "-p", "State"]
    ).stdout  # fmt: skip
    return {"Id": m[1], "cgroup": cgroup.strip(), **dict(line.split("=", 1) for line in props.splitlines())}


def test_sessions_are_remote_logind_sessions_in_scopes_of_their_own(box: Container) -> None:
    info = client(box, "login", USER, PASSWORD)
    assert isinstance(info, dict)
    session = logind_session(box, info["compositor_pid"])
    assert session["Name"] == USER and session["Service"] == "wayray"
    assert (session["Remote"], session["RemoteHost"], session["Seat"]) == ("yes", "10.0.0.7", "")
    assert (session["Class"], session["Type"]) == ("user", "wayland")
    assert "wrsessd.service" not in session["cgroup"] and "wrsrvd" not in session["cgroup"]
    uid = box.run(["id", "-u", USER]).stdout.strip()
    # pam_systemd made the runtime directory: wrsessd used logind's, not its own.
    assert info["runtime_dir"] == f"/run/user/{uid}"

    greeter = client(box, "greeter")
    assert isinstance(greeter, dict)
    g = logind_session(box, greeter["compositor_pid"])
    assert (g["Name"], g["Class"], g["Service"], g["Remote"]) == (
        "wayray-greeter",
        "greeter",
        "wayray-greeter",
        "yes",
    )

    # Restarting the launcher ends no session: they are not in its cgroup, and it re-adopts them.
    box.run(["systemctl", "restart", "wrsessd.service"])
    listed = client(box, "list")
    assert isinstance(listed, list)
    assert {s["session_id"]: s.get("adopted") for s in listed} == {
        info["session_id"]: True,
        greeter["session_id"]: True,
    }
    assert logind_session(box, info["compositor_pid"])["State"] in ("active", "online")

    # Ending a session ends its logind session (PAM's close_session through pam_systemd).
    for s in (info, greeter):
        client(box, "kill", s["session_id"])
    for s in (session, g):
        state = box.run(["loginctl", "show-session", s["Id"], "-p", "State"], check=False)
        assert state.returncode != 0 or state.stdout.strip() == "State=closing", state.stdout


#: Shaped like wrsessd's own lines, printed by a session.toml program on stdout and on stderr.
FORGED = "login 000000000000: root authenticated"


def test_a_sessions_output_has_a_journal_stream_of_its_own(box: Container) -> None:
    """Under journald a session's programs write to a stream wrsessd opened for them, with the
    identifier wayray-session and the user's uid: ``journalctl -t wrsessd`` never shows their lines."""
    original = box.run(["cat", "/etc/wayray/session.toml"], check=False).stdout
    box.write(
        "/etc/wayray/session.toml",
        '[session]\nautostart = [["/bin/sh", "-c", '
        f"\"echo '{FORGED} (stdout)'; echo '<0>{FORGED} (stderr)' >&2; exec sleep 600\"]]\n",
    )
    try:
        info = client(box, "login", USER, PASSWORD)
        assert isinstance(info, dict)

        def journal(*args: str) -> str:
            return box.run(["journalctl", "--no-pager", "-o", "cat", *args], check=False).stdout

        uid = box.run(["id", "-u", USER]).stdout.strip()
        wait_for(
            lambda: "(stderr)" in journal("-t", "wayray-session"), what="the session's lines in the journal"
        )
        session_lines = journal("-t", "wayray-session", f"_UID={uid}")
        assert f"{FORGED} (stdout)" in session_lines
        # Taken as text: a user does not choose the priority (here: emerg) of their lines.
        assert f"<0>{FORGED} (stderr)" in session_lines
        assert FORGED not in journal("-t", "wrsessd") and FORGED not in journal("-u", "wrsessd", "_UID=0")
        assert (
            f"session {info['session_id']} of {USER}: its programs write to the journal as wayray-session"
            in (journal("-t", "wrsessd"))
        )
        client(box, "kill", info["session_id"])
    finally:
        box.write("/etc/wayray/session.toml", original)
