"""The appliance as an operator meets it, in a booted Debian 12 (systemd-nspawn, no network):

the full package (WayRay and its pinned Python dependencies) installed with ``apt install
./wayray.deb`` from apt's cache (so its Depends and Recommends are what gets installed), serving
nothing until the operator enables an instance in /etc/wayray and runs ``wradm apply``; then a real
user badges in at a headless kiosk (``wrclient --kiosk --headless`` inside the container), logs in
through the real greeter (wrlogin, real PAM with pam_systemd), works in the session (foot, started
by the shipped session.toml), hot-desks to a second kiosk and unlocks with the password; the session
survives restarts of wrsessd and wrsrvd@main, a policy change that `wradm apply` reloads (and a
`systemctl reload` refused for a typo) and an in-place upgrade; a syntax error at boot stops the
instance once, status 78, with the error in `systemctl status`; the server comes back after a
reboot with the same identity; ``dpkg -r`` ends everything and leaves no byte-code, ``dpkg -P``
removes configuration and state and keeps a copy of the TLS identity.

One container and one package for the whole module: the tests are its steps, in order.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appliance.conftest import TIMINGS
from tests.conftest import REPO
from tests.supervisor.nspawn import (
    Container,
    available,
    build_deb,
    package_depends,
    persistent_root,
    rootfs,
)

pytestmark = [pytest.mark.nspawn, pytest.mark.slow, pytest.mark.root]
WHY_NOT = available()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))

DEADLINE = 90.0
USER, PASSWORD, BADGE = "alice", "correct-horse-7", "BADGE-ALICE-0042"
PKG = "/mnt/pkg"

#: The operator's helper: lines to a kiosk's badge or control socket, one reply line each.
KSEND = """\
import socket, sys
with socket.socket(socket.AF_UNIX) as s:
    s.settimeout(120)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    for line in sys.argv[2:]:
        f.write(line.encode() + b"\\n"); f.flush()
        reply = f.readline().decode().rstrip("\\n")
        print(reply)
        if not reply.startswith("ok"):
            sys.exit(1)
"""


#: What wrsrvd does with a device its rules allow (wayray.server.usb): its socket to the attach helper.
ASK_ATTACH = """
import asyncio, socket
from pathlib import Path
from wayray.usb.attach_client import AttachClient, AttachError
async def main():
    ours, theirs = socket.socketpair()
    try:
        print("port", await AttachClient(Path("/run/wayray/usb-attach.sock")).attach(theirs, 3, 0x10002))
    except AttachError as err:
        print("refused:", err)
asyncio.run(main())
"""


REGISTRY_DUMP = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for row in db.execute("SELECT id, state, coalesce(end_reason, '') FROM sessions"):
    print("\\t".join(row))
"""


class Appliance:
    """The booted container and what the steps share."""

    def __init__(self, box: Container, pkg: Path, deb: Path) -> None:
        self.box = box
        self.pkg = pkg
        self.deb = deb
        self.steps: dict[str, float] = {}

    def run(self, *argv: str, check: bool = True, timeout: float = DEADLINE * 2) -> str:
        return self.box.run(list(argv), check=check, timeout=timeout).stdout

    def until(self, condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}\n{self.diagnostics()}")
            time.sleep(0.2)

    def diagnostics(self) -> str:
        journal = self.run(
            "journalctl", "-b", "--no-pager", "-n", "120", "-o", "short-monotonic", check=False
        )
        units = self.run("systemctl", "--all", "--no-pager", "list-units", "wrsrvd@*", "wrsessd*", "kiosk*",
                         check=False)  # fmt: skip
        return f"--- units\n{units}\n--- journal\n{journal}"

    # --- kiosks ------------------------------------------------------------------------------------
    def start_kiosk(self, name: str, server: str, size: str = "1280x800") -> None:
        # Two kiosks are two machines, each with its own identity (its terminal token, kept in its
        # state directory): here they share one container, so each gets a state directory of its own.
        self.run(
            "systemd-run", f"--unit=kiosk-{name}", "--collect", "-p", f"RuntimeDirectory=kiosk-{name}",
            "-p", f"StateDirectory=kiosk-{name}", f"--setenv=XDG_STATE_HOME=/var/lib/kiosk-{name}",
            "/opt/wayray/bin/wrclient", server, "--kiosk", "--headless", "--size", size,
            "--keymap-layout", "us", "--known-hosts", "/root/kiosk/known_hosts",
            "--badge-socket", f"/run/kiosk-{name}/badge.sock",
            "--state-file", f"/run/kiosk-{name}/state.json",
            "--control-socket", f"/run/kiosk-{name}/ctl.sock", "--timeout", "60", "-v",
        )  # fmt: skip
        self.wait(name, lambda s: s.get("state") == "idle", "the idle screen")
        sock = f"/run/kiosk-{name}/ctl.sock"
        self.until(lambda: self.box.run(["test", "-S", sock], check=False).returncode == 0, f"{sock}")

    def stop_kiosk(self, name: str) -> None:
        self.run("systemctl", "stop", f"kiosk-{name}", check=False)

    def state(self, name: str) -> dict[str, Any]:
        text = self.run("cat", f"/run/kiosk-{name}/state.json", check=False)
        try:
            data: dict[str, Any] = json.loads(text)
            return data
        except ValueError:
            return {}

    def wait(self, name: str, pred: Callable[[dict[str, Any]], Any], what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            st = self.state(name)
            if pred(st):
                found.append(st)
                return True
            return False

        try:
            self.until(check, f"kiosk {name}: {what}")
        except AssertionError as err:
            log = self.run("journalctl", "-u", f"kiosk-{name}", "--no-pager", "-n", "60", check=False)
            raise AssertionError(f"{err}\nkiosk {name} shows {self.state(name)}\n{log}") from None
        return found[0]

    def wait_screen(self, name: str, screen: str) -> dict[str, Any]:
        return self.wait(name, lambda s: s.get("state") == "session" and s.get("screen") == screen, screen)

    def badge(self, name: str, *lines: str) -> None:
        self.run("/opt/wayray/bin/python", "/usr/local/bin/ksend", f"/run/kiosk-{name}/badge.sock", *lines)

    def keys(self, name: str, *lines: str) -> None:
        self.run("/opt/wayray/bin/python", "/usr/local/bin/ksend", f"/run/kiosk-{name}/ctl.sock", *lines,
                 timeout=DEADLINE * 3)  # fmt: skip

    def type_in_session(self, name: str, command: str) -> None:
        """A command typed into the session's terminal (foot, which has the keyboard)."""
        self.keys(name, "settle 300", f"type {command}", "key Return", "settle 300")

    def proof(self) -> list[str]:
        """What the user's commands wrote into ~/proof (as the user)."""
        return self.run("cat", f"/home/{USER}/proof", check=False).split()

    def recorded_sessions(self) -> dict[str, tuple[str, str | None]]:
        """The main instance's registry: each session's state and end reason (what the journal's
        "session ... ended (REASON)" line and the audit trail say)."""
        out = self.run("/opt/wayray/bin/python", "-c", REGISTRY_DUMP, "/var/lib/wayray/main/registry.sqlite")
        rows = (line.split("\t") for line in out.splitlines() if line)
        return {sid: (state, reason or None) for sid, state, reason in rows}

    def session_pids(self) -> dict[str, int]:
        """The user's session programs (compositor, foot), by name. Not the services the user's
        systemd starts on demand and stops when idle (its pulseaudio.service exits 20 s after its
        last client): they are not the session's, and may come and go while it runs."""
        out = self.run("ps", "-u", USER, "-o", "pid=,cgroup:200=,comm=", check=False)
        pids = {}
        for line in out.splitlines():
            pid, cgroup, comm = (line.split(None, 2) + ["", ""])[:3]
            if "/user@" in cgroup and not cgroup.endswith("/init.scope"):
                continue
            pids.setdefault(comm.strip(), int(pid))
        return pids

    def wayray_processes(self) -> str:
        """Every process running a program of /opt/wayray (or anything of the user's)."""
        out = self.run("ps", "-eo", "pid=,user=,args=", check=False)
        return "\n".join(line for line in out.splitlines() if "/opt/wayray" in line or f" {USER} " in line)

    def picture_colours(self, kiosk: str) -> int:
        """How many colours the kiosk's screen has now (one: nothing drawn on the background yet)."""
        from PIL import Image

        self.keys(kiosk, "snapshot /root/kiosk/probe.png")
        with Image.open(self.box.root / "root/kiosk/probe.png") as im:
            colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
        return len(colours) if colours is not None else 1 << 16

    def screen_shows(self, kiosk: str, phrase: str) -> bool:
        """Whether a person reads ``phrase`` on the kiosk's screen now (OCR)."""
        from tests.ocr import shows

        self.keys(kiosk, "snapshot /root/kiosk/read.png")
        return shows((self.box.root / "root/kiosk/read.png").read_bytes(), phrase)

    def wait_shows(self, kiosk: str, *phrases: str) -> None:
        """Until one of ``phrases`` can be read on the kiosk's screen."""
        self.until(
            lambda: any(self.screen_shows(kiosk, p) for p in phrases), f"kiosk {kiosk} to show {phrases}"
        )

    def wait_drawn(self, kiosk: str, what: str) -> None:
        """Until a window with text is on the screen (a person waits to see it before typing)."""
        self.until(lambda: self.picture_colours(kiosk) > 16, f"kiosk {kiosk}: {what} drawn")

    def log_in(self, kiosk: str) -> dict[str, Any]:
        self.badge(kiosk, f"insert {BADGE}")
        self.wait_screen(kiosk, "greeter")
        self.wait_drawn(kiosk, "the login screen")
        # As a person types: the password right after the user name's Enter.
        self.keys(kiosk, f"type {USER}", "key Return", f"type {PASSWORD}", "key Return")
        desktop = self.wait_screen(kiosk, "desktop")
        # The shipped session.toml starts foot; its shell is ready for what the user types.
        self.until(lambda: "bash" in self.session_pids(), "the terminal's shell, as the user")
        self.wait_drawn(kiosk, "the terminal")  # its window mapped: it has the keyboard
        self.keys(kiosk, "settle 500")
        return desktop


@pytest.fixture(scope="module")
def appliance(
    tmp_path_factory: pytest.TempPathFactory, full_deb: Path, request: pytest.FixtureRequest
) -> Iterator[Appliance]:
    started = time.monotonic()
    workdir = Path(tmp_path_factory.mktemp("appliance"))
    pkg = full_deb.parent
    # Nothing of the package is installed: its Depends and Recommends wait in apt's cache, for apt.
    lower = rootfs((), downloaded=(*package_depends(), *package_depends("Recommends")))
    with persistent_root(lower, workdir / "overlay") as root:
        box = Container(root, f"wrapp-{os.getpid()}", {pkg: PKG}, workdir / "console.log", volatile=False)
        try:
            box.start()
            state = box.run(["systemctl", "is-system-running", "--wait"], check=False).stdout.strip()
            assert state == "running", box.run(["systemctl", "--failed", "--no-pager"], check=False).stdout
            app = Appliance(box, pkg, full_deb)
            app.steps["set-up (root file system, boot)"] = time.monotonic() - started
            yield app
        finally:
            box.stop()
            total = sum(app.steps.values()) if "app" in locals() else 0.0
            if "app" in locals():
                report = "\n".join(f"  {k}: {v:.1f} s" for k, v in app.steps.items())
                (workdir / "timings.txt").write_text(report + "\n")
                request.config.stash[TIMINGS] = (
                    f"appliance tier, {total:.1f} s (the package built before):\n{report}"
                )


@pytest.fixture
def step(appliance: Appliance, request: pytest.FixtureRequest) -> Iterator[Appliance]:
    started = time.monotonic()
    yield appliance
    appliance.steps[request.node.name] = time.monotonic() - started


def udp_ports(app: Appliance) -> set[int]:
    """Local UDP ports something is bound to, from /proc/net/udp{,6}."""
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in app.run("cat", table, check=False).splitlines()[1:]:
            local = line.split()[1]
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


# Each step may take as long as its own commands are given (apt's install and dpkg's upgrade: 600 s
# each), not the suite's 300 s default: with suites running beside it, apt took longer than that.
# The first one also builds the cached root file system when its recipe is new (debootstrap with
# the package's dependencies: up to 1800 s of its own, minutes on a fresh machine).
@pytest.mark.timeout(2400)
def test_apt_installs_the_package_with_its_dependencies_and_nothing_listens(step: Appliance) -> None:
    app = step
    out = app.run(
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", f"{PKG}/{app.deb.name}",
        timeout=600,
    )  # fmt: skip
    assert "wayray" in out
    for package in ("libpam-systemd", "fonts-dejavu-core", "foot", "xkb-data", "python3.11"):
        assert app.run("dpkg-query", "-W", "-f", "${Status}", package) == "install ok installed", package
    assert (
        app.run("dpkg-query", "-W", "-f", "${Status}", "avahi-daemon", check=False) != "install ok installed"
    )
    # The target is enabled and up, and serves nothing: no instance, no UDP port, no warning.
    assert app.run("systemctl", "is-enabled", "wayray.target").strip() == "enabled"
    assert app.run("systemctl", "is-active", "wayray.target").strip() == "active"
    assert app.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "wrsrvd@*").strip() == ""
    assert 7100 not in udp_ports(app) and 7101 not in udp_ports(app)
    assert "wrsrvd" not in app.run("ps", "-eo", "args=")
    res = app.box.run(["wradm", "check"])
    assert res.stdout.startswith("configuration OK (no problems)") and res.stderr == "", (
        res.stdout + res.stderr
    )
    # Every command tells the package's version.
    version = app.run("dpkg-query", "-W", "-f", "${Version}", "wayray")
    for command in ("wrsrvd", "wrclient", "wrsessd", "wrlogin", "wradm", "wayray-generator", "wrusbattach"):
        assert app.run(f"/opt/wayray/bin/{command}", "--version") == f"{command} (WayRay) {version}\n"


def test_the_operator_enables_main_and_applies(step: Appliance) -> None:
    app = step
    app.run("sed", "-i", "0,/^enabled = false/s//enabled = true/", "/etc/wayray/servers.toml")
    applied = app.box.run(["wradm", "apply"], timeout=DEADLINE * 2)
    assert "wrsrvd@main.service" in applied.stdout, applied.stdout + applied.stderr
    app.until(lambda: app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active",
              "wrsrvd@main to be active")  # fmt: skip
    assert 7100 in udp_ports(app)

    # The shipped files are clean: the instance's start (check included) prints no warning. (Its
    # lines reach the journal through its output stream, maybe after "active": wait for the last.)
    def serving() -> str | None:
        journal = app.run("journalctl", "-u", "wrsrvd@main", "--no-pager", "-o", "cat")
        return journal if "serving on UDP port 7100" in journal else None

    journal = app.until(serving, "wrsrvd@main's 'serving on UDP port 7100' in the journal")
    assert "warning" not in journal.lower(), journal
    status = json.loads(app.run("wradm", "status", "--instance", "main", "--json"))
    assert status, status


def test_the_usb_attach_helper_answers_wrsrvds_user_only(step: Appliance) -> None:
    """wrusbattach.socket listens after the install, wrsrvd's user's alone (0600); asked as wrsrvd asks,
    the socket-activated helper answers from its sandbox. This container's kernel has no vhci_hcd, so
    the answer is that one, in the helper's words (its hint names Debian's kernels); wrsrvd's own
    fallback for an unreachable helper does not say that."""
    app = step
    assert app.run("systemctl", "is-enabled", "wrusbattach.socket").strip() == "enabled"
    assert app.run("systemctl", "is-active", "wrusbattach.socket").strip() == "active"
    assert (
        app.run("stat", "-c", "%F %U %G %a", "/run/wayray/usb-attach.sock").strip()
        == "socket wayray wayray 600"
    )
    script = "/run/ask-attach.py"
    app.box.run(["tee", script], input=ASK_ATTACH)
    asked = app.run("runuser", "-u", "wayray", "--", "/opt/wayray/bin/python", script)
    assert (
        asked.startswith("refused: vhci_hcd is not loaded on this host") and "Debian's kernels" in asked
    ), asked
    journal = app.until(
        lambda: "refused a request: vhci_hcd is not loaded" in (
            j := app.run("journalctl", "-u", "wrusbattach.service", "--no-pager", "-o", "cat")
        ) and j, "the helper's log line")  # fmt: skip
    assert "answering wayray" in journal, journal
    assert app.run("systemctl", "is-active", "wrusbattach.service").strip() == "active"
    # Where it tells udev whose device is where (docs/usb.md section 5, "udev"): its runtime directory,
    # made in its sandbox; the rule where Debian's udev reads packages' rules, and the setfacl it runs.
    assert app.run("stat", "-c", "%F %U %a", "/run/wayray-usb").strip() == "directory root 755"
    rule = app.run("cat", "/lib/udev/rules.d/70-wayray-usb.rules")
    assert rule == (REPO / "packaging/udev/70-wayray-usb.rules").read_text()
    assert app.run("sh", "-c", "command -v setfacl").strip() == "/usr/bin/setfacl"
    # Anyone else: the socket's mode keeps them out before the helper's own uid check.
    other = app.box.run(["runuser", "-u", "nobody", "--", "/opt/wayray/bin/python", script], check=False)
    assert "Permission denied" in other.stdout + other.stderr, other


def test_a_user_badges_in_and_logs_in_through_the_greeter(step: Appliance) -> None:
    app = step
    app.run("useradd", "--create-home", "--shell", "/bin/bash", USER)
    app.box.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n")
    app.box.write("/usr/local/bin/ksend", KSEND)
    app.run("mkdir", "-p", "/root/kiosk")
    app.start_kiosk("a", "127.0.0.1:7100")
    desktop = app.log_in("a")
    assert desktop["detail"] == f"{USER} logged in", desktop
    # The shipped session.toml started foot, as the user, in a logind session of the user's.
    assert "foot" in app.session_pids()
    sessions = app.run("loginctl", "list-sessions", "--no-legend")
    assert re.search(rf"\b{USER}\b", sessions), sessions
    app.type_in_session("a", "echo hello from $(id -un) on $(hostname)")
    app.wait_shows("a", f"hello from {USER} on wayray-test")
    app.type_in_session("a", "id -un > ~/proof; hostname >> ~/proof")
    app.until(lambda: len(app.proof()) == 2, "the command's output in ~/proof")
    assert app.proof() == [USER, "wayray-test"]
    owner = app.run("stat", "-c", "%U", f"/home/{USER}/proof").strip()
    assert owner == USER
    # What the session costs, read by wrsrvd (ProtectProc=invisible: it cannot see the user's processes)
    # from the logind scope wrsessd named: its cgroup's counters.
    rows = json.loads(app.run("wradm", "sessions", "--instance", "main", "--json"))
    (mine,) = [row for row in rows if row["user"] == USER]
    scopes = app.run("find", "/sys/fs/cgroup", "-maxdepth", "5", "-name", "session-*.scope", check=False)
    assert mine["measured_by"] == "cgroup", (mine, scopes)
    assert mine["cpu_s"] > 0 and mine["sent_bytes"] > 0, mine
    if mine["memory_bytes"] is None:  # honest only where no memory controller holds the scope (hybrid)
        counted = app.box.run(["test", "-e", "/sys/fs/cgroup/user.slice/memory.current"], check=False)
        assert "/sys/fs/cgroup/memory/" not in scopes and counted.returncode != 0, (mine, scopes)
    else:
        assert mine["memory_bytes"] > 4 * 2**20, mine
    app.keys("a", "snapshot /root/kiosk/desktop-a.png")


def test_the_badge_at_a_second_kiosk_asks_for_the_password_and_brings_the_session(step: Appliance) -> None:
    app = step
    sid = app.state("a")["session_id"]
    app.start_kiosk("b", "[::1]:7100", size="1024x768")
    app.badge("b", f"insert {BADGE}")
    unlock = app.wait_screen("b", "greeter")
    assert unlock["session_id"] == sid
    app.wait_drawn("b", "the unlock screen")
    app.keys("b", "type wrong-password", "key Return")
    # As a person waits to read the refusal before typing again (the unlock screen's wording).
    app.wait_shows("b", "Wrong password", "Login incorrect")
    assert app.state("b")["screen"] == "greeter"  # still locked
    app.keys("b", f"type {PASSWORD}", "key Return")
    shown = app.wait_screen("b", "desktop")
    assert shown["session_id"] == sid
    assert (
        "moved to another kiosk"
        in app.wait("a", lambda s: s.get("state") == "idle", "the idle screen after the move")["detail"]
    )
    app.type_in_session("b", "echo at-b >> ~/proof")
    app.until(lambda: app.proof()[-1:] == ["at-b"], "the line typed at kiosk B")


def test_restarting_wrsessd_and_wrsrvd_keeps_the_session(step: Appliance) -> None:
    app = step
    before = app.session_pids()
    sid = app.state("b")["session_id"]
    app.run("systemctl", "restart", "wrsessd.service")
    # The service's lines reach the journal through its output stream, later than systemd's own
    # "Starting …": wait for the line, do not read the journal once (a loaded host lags).
    app.until(
        lambda: (
            "re-adopted session"
            in app.run("journalctl", "-u", "wrsessd", "--no-pager", "-o", "cat", "-n", "50")
        ),
        "wrsessd to say it re-adopted the session",
    )
    assert app.session_pids() == before
    app.run("systemctl", "restart", "wrsrvd@main.service")
    app.until(lambda: app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active",
              "wrsrvd@main to come back")  # fmt: skip
    shown = app.wait("b", lambda s: s.get("state") == "session" and s.get("screen") == "desktop"
                     and s.get("session_id") == sid, "the same desktop after the restart")  # fmt: skip
    assert shown["session_id"] == sid
    assert app.session_pids() == before
    app.type_in_session("b", "echo after-restarts >> ~/proof")
    app.until(lambda: app.proof()[-1:] == ["after-restarts"], "the line typed after the restarts")


def test_a_policy_change_is_reloaded_and_a_broken_reload_keeps_the_server(step: Appliance) -> None:
    """The operator changes a policy: `wradm apply` reloads (ExecReload= runs `wradm reload`, as the
    instance's user) instead of restarting, and the kiosk showing the session notices nothing. A
    typo then makes `systemctl reload` fail with the file:line:col error, and the server runs on."""
    app = step
    sid = app.state("b")["session_id"]

    def main_pid() -> str:
        return app.run("systemctl", "show", "-p", "MainPID", "--value", "wrsrvd@main").strip()

    pid = main_pid()
    app.run("mkdir", "-p", "/etc/wayray/policies.toml.d")
    app.box.write("/etc/wayray/policies.toml.d/50-idle.toml", '[policy.default]\nidle_logout = "8h"\n')
    applied = app.box.run(["wradm", "apply"], timeout=DEADLINE * 2).stdout
    assert "systemctl reload wrsrvd@main.service" in applied and "restart" not in applied, applied
    assert main_pid() == pid
    status = json.loads(app.run("wradm", "status", "--instance", "main", "--json"))
    assert status["policy"]["idle_timeout_s"] == 8 * 3600, status["policy"]

    good = app.run("cat", "/etc/wayray/servers.toml")
    app.box.write("/etc/wayray/servers.toml", good.replace('policy = "default"', 'policy = "defualt"', 1))
    try:
        res = app.box.run(["systemctl", "reload", "wrsrvd@main"], check=False)
        assert res.returncode != 0
        shown = app.run("systemctl", "status", "--no-pager", "-n", "30", "wrsrvd@main", check=False)
        assert re.search(
            r"/etc/wayray/servers\.toml:\d+:\d+: error: server\.main\.policy: no policy named", shown
        ), shown
        assert app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active"
        assert main_pid() == pid
    finally:
        app.box.write("/etc/wayray/servers.toml", good)
    app.run("rm", "-r", "/etc/wayray/policies.toml.d")  # the operator's own files: purge keeps them
    app.box.run(["wradm", "apply"], timeout=DEADLINE * 2)
    assert main_pid() == pid
    # The kiosk kept its session all along, and the session takes input.
    assert app.state("b")["session_id"] == sid and app.state("b")["screen"] == "desktop"
    app.type_in_session("b", "echo after-reloads >> ~/proof")
    app.until(lambda: app.proof()[-1:] == ["after-reloads"], "the line typed after the reloads")


@pytest.mark.timeout(900)
def test_an_upgrade_in_place_keeps_the_session_and_the_configuration(
    step: Appliance, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = step
    second = build_deb(app.pkg, dependencies=True, revision=2)
    before = app.session_pids()
    assert {"foot", "python"} <= set(before), before  # the session's own programs are compared
    sid = app.state("b")["session_id"]
    out = app.box.run(["dpkg", "-i", f"{PKG}/{second.name}"], timeout=600)
    assert "conffile" not in out.stdout + out.stderr, out.stdout + out.stderr  # no prompt: edits kept
    assert app.run("dpkg-query", "-W", "-f", "${Version}", "wayray").endswith("-2")
    assert app.run("/opt/wayray/bin/wrsrvd", "--version").strip().endswith("-2")
    assert "enabled = true" in app.run("cat", "/etc/wayray/servers.toml")
    app.until(lambda: app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active",
              "wrsrvd@main after the upgrade")  # fmt: skip
    app.wait("b", lambda s: s.get("state") == "session" and s.get("screen") == "desktop"
             and s.get("session_id") == sid, "the same desktop after the upgrade")  # fmt: skip
    assert app.session_pids() == before
    app.type_in_session("b", "echo after-upgrade >> ~/proof")
    app.until(lambda: app.proof()[-1:] == ["after-upgrade"], "the line typed after the upgrade")


def test_a_configuration_error_at_boot_shows_in_the_instances_status(step: Appliance) -> None:
    """A typo that breaks servers.toml's syntax, then a reboot: the instance does not serve, and
    where an operator looks first (systemctl status wrsrvd@main) says why, with file:line:col."""
    app = step
    good = app.run("cat", "/etc/wayray/servers.toml")
    live = [sid for sid, (state, _) in app.recorded_sessions().items() if state != "ended"]
    assert live, "a session runs before the reboot"
    app.box.write("/etc/wayray/servers.toml", good.replace('sessions = "login"', 'sessions = "login'))
    try:
        app.box.reboot()
        # The shutdown ended the user's session: its record says so (not that its command exited).
        # wrsrvd and the sessions stop at the same time: a wrsrvd that stopped first records it at its
        # next start (which this broken file prevents until it is fixed, below); none records it
        # as anything else.
        ended = app.recorded_sessions()
        journal = app.run(
            "journalctl", "-b", "-1", "--no-pager", "-n", "60", "-u", "wrsrvd@main", check=False
        )
        assert all(ended[sid] == ("ended", "shutdown") or ended[sid][0] != "ended" for sid in live), (
            ended,
            journal,
        )

        # wrsrvd checks its files at start: it stops once with status 78 (EX_CONFIG; no restart
        # every 2 s), and the status shows why.
        def status() -> str:
            return app.box.run(
                ["systemctl", "status", "--no-pager", "-n", "30", "wrsrvd@main"], check=False
            ).stdout

        error = re.compile(r"/etc/wayray/servers\.toml:\d+:\d+: error: invalid TOML")
        app.until(lambda: error.search(status()), "the syntax error in systemctl status wrsrvd@main")
        assert "active (running)" not in status()
        app.until(lambda: app.run("systemctl", "is-failed", "wrsrvd@main", check=False).strip() == "failed",
                  "wrsrvd@main failed")  # fmt: skip
        shown = app.run("systemctl", "show", "-p", "ExecMainStatus", "-p", "NRestarts", "wrsrvd@main")
        assert sorted(shown.split()) == ["ExecMainStatus=78", "NRestarts=0"], shown
        assert 7100 not in udp_ports(app)
    finally:
        app.box.write("/etc/wayray/servers.toml", good)
    # Fixed: the instance is back at its next try (or at once, after a reset of a failed one).
    app.run("systemctl", "daemon-reload")
    app.run("systemctl", "reset-failed", "wrsrvd@main", check=False)
    app.run("systemctl", "start", "wayray.target")
    app.until(lambda: app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active",
              "wrsrvd@main once the file is fixed")  # fmt: skip
    assert app.run("systemctl", "is-active", "wrsrvd@lab", check=False).strip() != "active"  # lab stays off
    # By now every session the reboot ended is recorded as ended by the shutdown.
    app.until(lambda: all(app.recorded_sessions()[sid] == ("ended", "shutdown") for sid in live),
              "the sessions the reboot ended recorded as ended by the shutdown")  # fmt: skip


def test_after_a_reboot_the_server_is_back_with_the_same_identity(step: Appliance) -> None:
    app = step
    cert = app.run("sha256sum", "/var/lib/wayray/main/tls/cert.pem")
    app.box.reboot()
    assert app.run("systemctl", "is-system-running", "--wait", check=False).strip() == "running"
    app.until(lambda: app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active",
              "wrsrvd@main after the reboot")  # fmt: skip
    assert app.run("sha256sum", "/var/lib/wayray/main/tls/cert.pem") == cert
    # A kiosk that trusted the server before trusts it still (known_hosts), and a login works.
    app.start_kiosk("a", "127.0.0.1:7100")
    app.log_in("a")
    assert "foot" in app.session_pids()


def test_a_reboot_while_the_server_is_stopped_is_recorded_as_the_shutdown(step: Appliance) -> None:
    """wrsrvd stopped (sessions outlive it), then a reboot ends the session: the server, back after
    the boot, records that the machine restarted, not that the compositor was lost."""
    app = step
    live = [sid for sid, (state, _) in app.recorded_sessions().items() if state != "ended"]
    assert live, "a session runs before the reboot"
    app.run("systemctl", "stop", "wrsrvd@main")
    app.box.reboot()
    app.until(lambda: app.run("systemctl", "is-active", "wrsrvd@main", check=False).strip() == "active",
              "wrsrvd@main after the reboot")  # fmt: skip
    ended = app.recorded_sessions()
    assert {sid: ended[sid] for sid in live} == {sid: ("ended", "shutdown") for sid in live}, app.run(
        "journalctl", "--no-pager", "-n", "60", "-u", "wrsrvd@main", check=False
    )
    app.start_kiosk("a", "127.0.0.1:7100")
    app.log_in("a")
    assert "foot" in app.session_pids()


def test_remove_ends_every_session_and_leaves_nothing_running_nor_compiled(step: Appliance) -> None:
    app = step
    assert app.session_pids(), "a session is running before the removal"
    # The kiosks are this test's, not the package's (a wrclient someone runs is theirs to stop).
    for kiosk in ("a", "b"):
        app.stop_kiosk(kiosk)
    res = app.box.run(["dpkg", "-r", "wayray"], timeout=300)
    output = res.stdout + res.stderr
    assert "not empty" not in output, output
    assert "wayray: ended 1 session(s) before removing the package" in output, output
    app.until(lambda: not app.wayray_processes(), "every WayRay process and the user's to end", timeout=60)
    app.until(lambda: USER not in app.run("loginctl", "list-sessions", "--no-legend"),
              "the user's logind session to close", timeout=60)  # fmt: skip
    assert app.box.run(["test", "-e", "/opt/wayray"], check=False).returncode != 0
    # (Only active ones: the enablement links stay until purge, as deb-systemd-helper keeps them.)
    running = ["systemctl", "list-units", "--state=active", "--plain", "--no-legend", "wrsrvd@*", "wrsessd*"]
    assert app.run(*running) == ""
    # Kept on remove: the configuration and the server's identity (a reinstall is the same server).
    assert "enabled = true" in app.run("cat", "/etc/wayray/servers.toml")
    assert app.box.run(["test", "-s", "/var/lib/wayray/main/tls/key.pem"], check=False).returncode == 0


def test_purge_removes_configuration_and_state_and_keeps_a_copy_of_the_identity(step: Appliance) -> None:
    app = step
    cert = app.run("cat", "/var/lib/wayray/main/tls/cert.pem")
    res = app.box.run(["dpkg", "--purge", "wayray"], timeout=300)
    output = res.stdout + res.stderr
    assert "not empty" not in output, output
    m = re.search(r"a copy is in (/var/backups/wayray-tls-[0-9-]+\.tar)", output)
    assert m, output
    for gone in ("/etc/wayray", "/var/lib/wayray", "/opt/wayray", "/etc/pam.d/wayray"):
        assert app.box.run(["test", "-e", gone], check=False).returncode != 0, gone
    assert app.run("stat", "-c", "%a %U", m[1]).strip() == "600 root"
    listed = app.run("tar", "-tf", m[1]).split()
    assert "wayray/main/tls/cert.pem" in listed and "wayray/main/tls/key.pem" in listed
    assert app.run("tar", "-xOf", m[1], "wayray/main/tls/cert.pem") == cert
    assert "wayray" not in app.run("systemctl", "list-unit-files", "--no-legend")
    # Purge also forgets that the target and the socket were enabled.
    assert not app.run("find", "/etc/systemd/system", "-name", "wayray*", "-o", "-name", "wrsessd*").strip()
