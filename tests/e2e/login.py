"""The whole chain through real processes, for the login end-to-end tests (root only).

    wrclient --kiosk --headless ──QUIC──► wrsrvd --instance lab (sessions = "login", its own user)
                                             │ launcher IPC
                                             ▼
                                          wrsessd (root; real PAM: pam_unix, a service file the test
                                             │     installs, a throwaway user and password)
                                             ├─ login screen, as the greeter user: our compositor + greeter
                                             └─ the user's session, as the user: our compositor + foot

Everything is made for the test and removed afterwards: accounts (tests.launcher.harness), PAM
service files, wrsessd's sandbox, a configuration tree for wrsrvd, its state and runtime
directories, kiosks. Programs that run as the throwaway accounts cannot use this venv's interpreter
(it lives below /root): they run Debian's /usr/bin/python3 with the repository and the venv's
site-packages on PYTHONPATH — the same Python minor version, so the same compiled wheels.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.e2e.harness import DEADLINE, eventually, free_udp_port
from tests.e2e.kiosk import KioskProc
from tests.launcher.harness import STANDINS, SYSTEM_PYTHON, Accounts, Daemon, Sandbox, kill_user_processes
from wayray.server.admin import AdminClient, AdminError

SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
PYTHONPATH = f"{REPO}:{SITE_PACKAGES}"
#: Our session compositor as wrsessd starts it for the throwaway accounts.
COMPOSITOR = ["/usr/bin/env", f"PYTHONPATH={PYTHONPATH}", SYSTEM_PYTHON, "-m", "wayray.server", "session"]
#: The real greeter, wrlogin, as the greeter user.
WRLOGIN = ["/usr/bin/env", f"PYTHONPATH={PYTHONPATH}", SYSTEM_PYTHON, "-m", "wayray.greeter"]
FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def real_wrlogin_available() -> bool:
    """wrlogin is the toolkit branch's; until it is merged the greeter is a scripted stand-in."""
    from importlib.util import find_spec

    return find_spec("wayray.greeter.app") is not None


def run_as(user: str, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


@dataclass
class Processes:
    """Processes of one uid, by command name."""

    uid: int
    found: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, uid: int) -> Processes:
        out = cls(uid)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid != uid:
                    continue
                status = (entry / "status").read_text()
                if "\nState:\tZ" in status:
                    continue
                out.found[int(entry.name)] = (entry / "comm").read_text().strip()
        return out

    def named(self, name: str) -> list[int]:
        return [pid for pid, comm in self.found.items() if comm == name]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode(errors="replace").split("\0") if "=" in entry)


class LoginRig:
    """wrsessd, a wrsrvd instance in login mode, kiosks; see the module docs."""

    def __init__(self, accounts: Accounts, sandbox: Sandbox, tmp: Path) -> None:
        self.accounts = accounts
        self.sandbox = sandbox
        self.tmp = tmp
        self.tag = secrets.token_hex(3)
        # wrsrvd's own account (what `wayray` is on a real host): a member of wrsessd's socket group.
        self.service = f"wrt{self.tag}d"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", accounts.group,
             self.service],
            check=True, capture_output=True,
        )  # fmt: skip
        accounts.created.append(self.service)
        pw = pwd.getpwnam(self.service)
        self.service_uid, self.service_gid = pw.pw_uid, pw.pw_gid
        # Socket paths are short: wrsrvd's directories live in a short path, open to the session users.
        self.short = Path(tempfile.mkdtemp(prefix="wrl-", dir="/tmp"))
        os.chmod(self.short, 0o755)
        self.state = self.short / "state"
        self.run = self.short / "run"
        for d in (self.state, self.run):
            d.mkdir(mode=0o755)
            os.chown(d, self.service_uid, self.service_gid)
        self.root = self.short / "config"  # readable by wrsrvd's account (pytest's tmp is root-only)
        self.port = free_udp_port()
        self.daemon: Daemon | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = tmp / "wrsrvd.log"
        self.kiosks: list[KioskProc] = []
        #: More of wrsrvd's arguments (``--usb-sockets DIR``).
        self.server_args: list[str] = []
        self.fingerprint = ""
        self.greeter_script = sandbox.greeter_script

    # --- configuration -----------------------------------------------------------------------------

    def configure(
        self, *, policy: str = "", server: str = "", session_toml: str | None = None, **launcher: Any
    ) -> None:
        """wrsrvd's configuration tree, the system session.toml, and wrsessd's settings. ``server``:
        more of servers.toml, after the [server.lab] tables (give table headers)."""
        etc = self.root / "etc" / "wayray"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "host.toml").write_text(
            f'[host]\nstate_dir = "{self.state}"\nruntime_dir = "{self.run}"\n'
            f'launcher_socket = "{self.sandbox.socket}"\n'
        )
        (etc / "servers.toml").write_text(
            # Two addresses, so kiosks can come from two hosts (two sources for the admission limits).
            f'[server.lab]\nlisten = ["127.0.0.1", "::1"]\nport = {self.port}\nsessions = "login"\n'
            'policy = "test"\n[server.lab.output]\nwidth = 1024\nheight = 768\n' + server
        )
        (etc / "policies.toml").write_text("[policy.test]\n" + policy)
        for d in (self.root, self.root / "etc", etc):
            os.chmod(d, 0o755)
        for f in etc.iterdir():
            os.chmod(f, 0o644)
        autostart = ", ".join(f'"{a}"' for a in FOOT)
        self.sandbox.write_session_toml(
            session_toml if session_toml is not None else f"[session]\nautostart = [[{autostart}]]\n"
        )
        greeter = (
            WRLOGIN
            if real_wrlogin_available()
            else [SYSTEM_PYTHON, str(STANDINS / "fake_wrlogin.py"), "--script", str(self.greeter_script),
                  "--transcript", f"{self.sandbox.reports}/{{session_id}}-greeter.json"]
        )  # fmt: skip
        settings = self.sandbox.settings(
            control_users=[self.service],
            user_session={"compositor": COMPOSITOR, "components": []},
            greeter_session={"compositor": COMPOSITOR, "components": [{"name": "greeter", "argv": greeter}]},
            greeter_linger_s=30.0,
            **launcher,
        )
        self.sandbox.write_settings(settings)

    # --- processes ---------------------------------------------------------------------------------

    def start(self) -> LoginRig:
        if self.daemon is None:
            self.daemon = Daemon(self.sandbox)
        self.daemon.start()
        self.start_server()
        return self

    def start_server(self) -> None:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": PYTHONPATH,
        }
        with open(self.server_log, "ab") as out:
            self.server = subprocess.Popen(
                ["setpriv", f"--reuid={self.service_uid}", f"--regid={self.service_gid}", "--init-groups",
                 SYSTEM_PYTHON, "-m", "wayray.server", "--instance", "lab", "--root", str(self.root), "-v",
                 *self.server_args],
                env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

        def ready() -> dict[str, Any] | None:
            assert self.server is not None
            if self.server.poll() is not None:
                raise AssertionError(f"wrsrvd exited ({self.server.returncode}):\n{self.server_text()}")
            with contextlib.suppress(OSError, AdminError):
                st = self.admin("status")
                if st["launcher"]["connected"]:
                    return st
            return None

        st = eventually(ready, "wrsrvd in login mode to be ready")
        self.fingerprint = st["fingerprint"]

    def stop_server(self, sig: int = signal.SIGTERM) -> None:
        if self.server is not None and self.server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, sig)
            self.server.wait(30)

    @property
    def admin_socket(self) -> Path:
        return self.run / "lab" / "admin.sock"

    def admin(self, request: str, **fields: Any) -> dict[str, Any]:
        with AdminClient(self.admin_socket) as c:
            return c.request(request, **fields)

    def sessions(self) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = self.admin("sessions")["sessions"]
        return sessions

    def kiosk(self, name: str, host: str = "127.0.0.1", *, size: str = "1024x768") -> KioskProc:
        """A headless kiosk; ``host`` "[::1]" makes it another host as far as wrsrvd can tell. Each
        name is a machine of its own: its own state directory, so its own terminal identity (a kiosk
        started again under the same name is the same kiosk)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_", "NOTIFY_"))}
        env.update(
            HOME=str(self.tmp),
            XDG_CONFIG_HOME=str(self.tmp / "kiosk-config"),
            XDG_STATE_HOME=str(self.tmp / f"kiosk-{name}-state"),
            LANG="C.UTF-8",
        )
        k = KioskProc(self.short, name, f"{host}:{self.port}", self.fingerprint, env=env, size=size)
        self.kiosks.append(k)
        return k.start()

    def server_text(self) -> str:
        return self.server_log.read_text(errors="replace") if self.server_log.exists() else ""

    def logs(self) -> dict[str, str]:
        """Every log of the run: wrsrvd, wrsessd (with its workers), the output of the users' sessions
        (their ~/.local/state/wayray/session.log: never wrsessd's log), the kiosks, the registry
        database."""
        out = {"wrsrvd": self.server_text()}
        if self.daemon is not None:
            out["wrsessd"] = self.daemon.log()
        for name in self.accounts.created:
            with contextlib.suppress(KeyError):
                for path in Path(pwd.getpwnam(name).pw_dir, ".local", "state", "wayray").glob(
                    "session.log*"
                ):
                    out[str(path)] = path.read_bytes().decode("latin-1")
        for k in self.kiosks:
            out[f"kiosk {k.name}"] = k.log_text()
        for path in self.state.rglob("*"):
            if path.is_file():
                out[str(path)] = path.read_bytes().decode("latin-1")
        return out

    # --- logging in --------------------------------------------------------------------------------

    def log_in(self, kiosk: KioskProc, user: str, password: str) -> dict[str, Any]:
        """At a kiosk that shows the login screen: log in as ``user``; returns the desktop's state."""
        kiosk.wait_screen("greeter")
        self.type_login(kiosk, user, password)
        desktop = kiosk.wait_screen("desktop")
        kiosk.wait_window("the session's first window")
        return desktop

    def type_login(self, kiosk: KioskProc, user: str | None, password: str) -> None:
        """Type a user name (None: an unlock screen has it already) and a password at the greeter."""
        if real_wrlogin_available():
            # As a person does: once the login (or unlock) screen can be read. The kiosk shows the
            # greeter session's picture before wrlogin has mapped its window (a loaded machine takes
            # seconds to start it), and keys typed before then reach no window.
            self.shows(kiosk, "Log in" if user is not None else "Unlock")
            # Then as a person types: the password right after the user name's Enter, without waiting
            # for the password prompt (the greeter keeps it for the prompt that comes).
            name = [f"type {user}", "key Return"] if user is not None else []
            kiosk.run("settle 500", *name, f"type {password}", "key Return")
        else:
            import json

            self.sandbox.write_greeter_script(json.dumps({"username": user, "answers": [password]}))

    def shows(self, kiosk: KioskProc, phrase: str, timeout: float = DEADLINE) -> bytes:
        """Wait until ``phrase`` can be read on the kiosk's screen (tesseract); the screenshot."""
        from tests.ocr import ocr, shows

        end = time.monotonic() + timeout
        n = 0
        while True:
            path = self.tmp / f"{kiosk.name}-ocr-{n}.png"
            idle = kiosk.state()["state"] == "idle"  # the idle screen: no session to settle
            kiosk.run(*([] if idle else ["settle 300"]), f"snapshot {path}")
            png = path.read_bytes()
            if shows(png, phrase):
                return png
            if time.monotonic() > end:
                raise AssertionError(f"kiosk {kiosk.name} does not show {phrase!r}; it reads:\n{ocr(png)}")
            n += 1

    def user_processes(self, name: str | None = None) -> Processes:
        return Processes.of(pwd.getpwnam(name or self.accounts.user).pw_uid)

    def wait_no_processes_of(self, name: str, what: str) -> None:
        """Wait until ``name`` runs nothing; if it never comes, the failure names what is left (pid,
        parent, command line), so that a run under load says what lingered."""
        try:
            until(lambda: not self.user_processes(name).found, what)
        except AssertionError as err:
            left = [describe_process(pid) for pid in self.user_processes(name).found]
            raise AssertionError(f"{err}; still running as {name}: {left}") from None

    # --- cleaning up -------------------------------------------------------------------------------

    def cleanup(self) -> None:
        for k in self.kiosks:
            k.stop()
        if self.daemon is not None and self.daemon.proc is not None:
            self.daemon.end_all_sessions()
        self.stop_server(signal.SIGKILL)
        if self.daemon is not None:
            self.daemon.stop()
        kill_user_processes(self.service)
        shutil.rmtree(self.short, ignore_errors=True)


@contextlib.contextmanager
def login_rig(accounts: Accounts, tmp: Path) -> Iterator[LoginRig]:
    sandbox = Sandbox(accounts)
    sandbox.install_pam()
    rig = LoginRig(accounts, sandbox, tmp)
    try:
        yield rig
    finally:
        rig.cleanup()
        if list((sandbox.state / "sessions").glob("*.json")):
            leftover = Daemon(sandbox)  # sessions a stopped daemon left behind: end them
            with contextlib.suppress(Exception):
                leftover.start()
                leftover.end_all_sessions()
            leftover.stop()
        sandbox.cleanup()


def wait_gone(pids: list[int], what: str, timeout: float = DEADLINE) -> None:
    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() and "\nState:\tZ" not in _status(pid) for pid in pids)

    eventually(gone, what, timeout)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def describe_process(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        parent = re.search(r"\nPPid:\t(\d+)", Path(f"/proc/{pid}/status").read_text())
        state = re.search(r"\nState:\t(.*)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return f"{pid} (gone)"
    where = f"parent {parent[1] if parent else '?'}, {state[1] if state else '?'}"
    return f"{pid} ({where}): {argv.strip()[:200]}"


def until(check: Any, what: str, timeout: float = DEADLINE) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
