"""Real-PAM, real-process test harness for wrsessd.

Creates throwaway local accounts (useradd + chpasswd), installs PAM service files in /etc/pam.d
that use pam_unix with ``nodelay`` plus a pam_exec hook that logs every open/close of a PAM session,
and runs the real ``wrsessd`` console script on a socket in a private directory. Everything is
removed afterwards, also when a test fails. Needs root (pam_unix checks other users' passwords only
as root, and sessions switch uid).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO, script
from wayray.launcher import protocol
from wayray.launcher.client import LauncherClient, LauncherError

STANDINS = Path(__file__).resolve().parent / "standins"
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by the test users, unlike the venv's interpreter


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; return its value. Generous deadline, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def _run(*cmd: str, input: str | None = None) -> None:
    subprocess.run(cmd, input=input, text=True, check=True, capture_output=True)


@dataclass
class Accounts:
    user: str
    password: str
    greeter: str
    group: str
    created: list[str] = field(default_factory=list)

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.user).pw_uid

    @property
    def greeter_uid(self) -> int:
        return pwd.getpwnam(self.greeter).pw_uid

    def add_user(self, name: str, password: str | None = None) -> str:
        _run("useradd", "--create-home", "--shell", "/bin/sh", name)
        self.created.append(name)
        if password is not None:
            _run("chpasswd", input=f"{name}:{password}\n")
        return name


#: Letters for the throwaway names' random tag: tests read the user's name off the screen (OCR), and
#: a hex tag's 0, 1, b, 8 read as O, l, 6, B now and then ("wrt7a3a0bu" was read "wrt7a3aO0Obu").
#: No digits, no i/l/o/r/n/m/u/v/w (confused with each other or with digits, or forming "rn" → "m").
TAG_LETTERS = "acdefhkpstxyz"


def _name_tag() -> str:
    return "".join(secrets.choice(TAG_LETTERS) for _ in range(6))


@contextlib.contextmanager
def throwaway_accounts() -> Iterator[Accounts]:
    tag = _name_tag()
    acc = Accounts(
        user=f"wrt{tag}u", password=f"pw-{secrets.token_hex(6)}", greeter=f"wrt{tag}g", group=f"wrt{tag}s"
    )
    try:
        _run("groupadd", acc.group)
        acc.add_user(acc.user, acc.password)
        _run(
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "-G",
            acc.group,
            acc.greeter,
        )
        acc.created.append(acc.greeter)
        yield acc
    finally:
        for name in reversed(acc.created):
            kill_user_processes(name)
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        subprocess.run(["groupdel", acc.group], capture_output=True)


def kill_user_processes(name: str) -> None:
    """SIGKILL leftover processes of a throwaway account, by pid (tests clean up after themselves)."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)


def user_pids(uid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    status = Path(entry.path, "status").read_text()
                    if "\nState:\tZ" not in status:
                        out.append(int(entry.name))
    return out


class Sandbox:
    """A private directory tree, the PAM service files and the settings for one wrsessd."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.tag = secrets.token_hex(3)
        self.base = Path(tempfile.mkdtemp(prefix="wrsessd-test-", dir="/tmp"))
        os.chmod(self.base, 0o755)
        self.runtime_base = self.base / "run-user"
        self.state = self.base / "state"
        self.reports = self.base / "reports"
        self.reports.mkdir()
        os.chmod(self.reports, 0o1777)
        self.socket = self.base / "sessd.sock"
        self.pam_log = self.base / "pam-sessions.log"
        self.pam_log.touch()
        self.hook = self.base / "pam-hook.sh"
        self.hook.write_text(
            f'#!/bin/sh\necho "$PAM_TYPE $PAM_SERVICE $PAM_USER rhost=$PAM_RHOST" >> {self.pam_log}\n'
        )
        os.chmod(self.hook, 0o755)
        self.service = f"wayray-test-{self.tag}"
        self.greeter_service = f"wayray-test-{self.tag}-greeter"
        self.pam_files: list[Path] = []
        self.settings_file = self.base / "wrsessd.toml"
        #: The configuration root wrsessd reads (``--root``): empty unless a test writes session.toml.
        self.config_root = self.base / "config-root"
        (self.config_root / "etc" / "wayray").mkdir(parents=True)
        self.greeter_script = self.base / "greeter-script.json"

    def install_pam(
        self, *, auth: str = "auth     required pam_unix.so nodelay\n", account_extra: str = ""
    ) -> None:
        """Install the user and greeter PAM services; ``auth`` replaces the user stack's auth lines."""
        user_stack = (
            "# installed by a WayRay test; removed when it ends\n"
            "auth     optional pam_echo.so Welcome to WayRay (test)\n"
            f"{auth}"
            f"{account_extra}"
            "account  required pam_unix.so\n"
            "password required pam_unix.so yescrypt\n"
            "session  required pam_unix.so\n"
            f"session  optional pam_exec.so quiet {self.hook}\n"
            "session  optional pam_systemd.so\n"
        )
        greeter_stack = (
            "# installed by a WayRay test; removed when it ends\n"
            "auth     sufficient pam_rootok.so\n"
            "auth     required pam_deny.so\n"
            "account  sufficient pam_rootok.so\n"
            "account  required pam_deny.so\n"
            "session  required pam_unix.so\n"
            f"session  optional pam_exec.so quiet {self.hook}\n"
        )
        for name, text in ((self.service, user_stack), (self.greeter_service, greeter_stack)):
            path = Path("/etc/pam.d") / name
            path.write_text(text)
            self.pam_files.append(path)

    def install_faillock_pam(self, deny: int = 2) -> None:
        """Replace the PAM services with ones where pam_faillock locks the account after ``deny``
        failed logins (its tally kept in this sandbox)."""
        tally = self.base / "faillock"
        tally.mkdir()
        opts = f"deny={deny} unlock_time=600 dir={tally}"
        for path in self.pam_files:
            path.unlink()
        self.pam_files.clear()
        self.install_pam(
            auth=(
                f"auth     required pam_faillock.so preauth {opts}\n"
                "auth     [success=1 default=bad] pam_unix.so nodelay\n"
                f"auth     [default=die] pam_faillock.so authfail {opts}\n"
                f"auth     sufficient pam_faillock.so authsucc {opts}\n"
            ),
            account_extra=f"account  required pam_faillock.so dir={tally}\n",
        )

    def settings(self, **overrides: Any) -> dict[str, Any]:
        py = SYSTEM_PYTHON
        report = f"{self.reports}/{{session_id}}"
        compositor = [py, str(STANDINS / "fake_compositor.py"), "--name", "{wayland_display}", "--report",
                      f"{report}-compositor.json", "--x-display", ":42"]  # fmt: skip
        data: dict[str, Any] = {
            "socket": str(self.socket),
            "socket_group": self.accounts.group,
            "control_users": [],
            "state_dir": str(self.state),
            "pam_service": self.service,
            "greeter_pam_service": self.greeter_service,
            "greeter_user": self.accounts.greeter,
            "runtime_dir_base": str(self.runtime_base),
            "stop_timeout_s": 3.0,
            "compositor_start_timeout_s": 30.0,
            "greeter_linger_s": 120.0,
            "rate_limit": {"max_failures": 3, "window_s": 600.0, "base_delay_s": 60.0, "max_delay_s": 600.0},
            "user_session": {
                "compositor": compositor,
                "components": [
                    {
                        "name": "wm",
                        "argv": [py, str(STANDINS / "fake_component.py"), "--report", f"{report}-wm.json"],
                    },
                    {
                        "name": "panel",
                        "argv": [
                            py,
                            str(STANDINS / "fake_component.py"),
                            "--report",
                            f"{report}-panel.json",
                        ],
                    },  # fmt: skip
                ],
            },
            "greeter_session": {
                "compositor": compositor,
                "components": [
                    {
                        "name": "greeter",
                        "argv": [
                            py,
                            str(STANDINS / "fake_wrlogin.py"),
                            "--script",
                            str(self.greeter_script),
                            "--transcript",
                            f"{report}-greeter.json",
                        ],
                    },  # fmt: skip
                ],
            },
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return data

    def write_greeter_script(self, text: str) -> None:
        """Give the stand-in greeter its script: written whole, then renamed into place (the greeter
        polls for the file and reads it as soon as it exists)."""
        part = self.greeter_script.with_suffix(".part")
        part.write_text(text)
        os.chmod(part, 0o644)
        part.rename(self.greeter_script)

    def write_session_toml(self, text: str) -> None:
        """The system's session.toml (what every user session starts after the settings' components)."""
        (self.config_root / "etc" / "wayray" / "session.toml").write_text(text)

    def write_settings(self, data: dict[str, Any]) -> None:
        self.settings_file.write_text(to_toml(data))

    def report(self, session_id: str, what: str) -> dict[str, Any]:
        path = self.reports / f"{session_id}-{what}.json"
        wait_for(path.exists, what=f"{path.name}")
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def pam_events(self) -> list[str]:
        return self.pam_log.read_text().splitlines()

    def cleanup(self) -> None:
        for path in self.pam_files:
            path.unlink(missing_ok=True)
        shutil.rmtree(self.base, ignore_errors=True)


def to_toml(data: dict[str, Any]) -> str:
    """Just enough TOML for settings files (tomli-w is a dependency, but this keeps key order readable)."""
    import tomli_w

    return tomli_w.dumps(data)


class Daemon:
    """The real wrsessd console script, running as a child of the test."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = sandbox.base / "wrsessd.log"

    def start(self, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        # Append: workers of an earlier daemon (sessions outlive it) still write to this file.
        log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the daemon
        self.proc = subprocess.Popen(
            [
                script("wrsessd"),
                "--root",
                str(self.sandbox.config_root),
                "--settings",
                str(self.sandbox.settings_file),
                "-v",
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"wrsessd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with LauncherClient(self.sandbox.socket, timeout=5) as c:
                    c.list_sessions()
                return True
            except (OSError, LauncherError):
                return False

        wait_for(ready, what="wrsessd to accept connections")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def client(self, timeout: float = 60.0) -> LauncherClient:
        return LauncherClient(self.sandbox.socket, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def end_all_sessions(self) -> None:
        with contextlib.suppress(Exception), self.client() as c:
            for s in c.list_sessions():
                c.request(protocol.KillSession(session_id=s.session_id))


def answer_with(
    *answers: str, seen: list[tuple[str, str]] | None = None
) -> Callable[[protocol.AuthMessage], str | None]:
    """An answerer for LauncherClient.login: prompts get ``answers`` in order; records every message."""
    queue = list(answers)

    def answer(msg: protocol.AuthMessage) -> str | None:
        if seen is not None:
            seen.append((msg.auth_message_type.value, msg.auth_message))
        if msg.auth_message_type.is_prompt:
            return queue.pop(0)
        return None

    return answer


def mode_of(path: str | Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def as_user(uid: int, gid: int, groups: list[int], fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child with the given credentials; return its JSON-able result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                result: Any = {"ok": fn()}
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                result = {"error": f"{type(err).__name__}: {err}"}
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)
