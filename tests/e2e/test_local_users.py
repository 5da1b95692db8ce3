"""Another local user cannot take a standalone server's sessions over (review finding H1).

Two throwaway accounts, a victim who runs ``wrsrvd --standalone`` and an attacker on the same host.
The attacker may create directories in /tmp before the victim starts (as in the review, where a
``/tmp/wayray-<uid>`` made 0777 by the attacker let them rename the victim's runtime directory, listen
on its link socket, receive a new session's link secret and type into the victim's terminal). Real
wrsrvd and session compositors as the victim, a real wrclient, a real socket as the attacker.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest

from tests.conftest import REPO
from tests.e2e.harness import DEADLINE, Harness, WrServer, eventually, failure, kill_sessions
from tests.e2e.login import PYTHONPATH, run_as
from tests.launcher.harness import SYSTEM_PYTHON, Accounts, throwaway_accounts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: throwaway users"),
]

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


class Users:
    def __init__(self, accounts: Accounts) -> None:
        self.victim = accounts.user
        self.attacker = accounts.add_user(f"{accounts.user}x")

    @staticmethod
    def ids(name: str) -> tuple[int, int]:
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid

    @staticmethod
    def home(name: str) -> Path:
        return Path(pwd.getpwnam(name).pw_dir)


@pytest.fixture(scope="module")
def users() -> Iterator[Users]:
    with throwaway_accounts() as accounts:
        yield Users(accounts)


def as_user(user: str, argv: list[str], *, runtime: Path | None = None) -> list[str]:
    """``argv`` as ``user``, in a clean environment like cron's or sudo's: no XDG_RUNTIME_DIR unless
    given. Debian's python3 runs WayRay from the checkout (the venv is root's)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(Users.home(user)),
        "USER": user,
        "LANG": "C.UTF-8",
        "PYTHONPATH": PYTHONPATH,
        "NO_AT_BRIDGE": "1",
        "PS1": "$ ",
        "ENV": "",
    }
    if runtime is not None:
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return [
        "setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
        "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv,
    ]  # fmt: skip


def wrsrvd_argv(h: Harness, *, state: Path, runtime: Path | None) -> list[str]:
    argv = [SYSTEM_PYTHON, "-m", "wayray.server", "--standalone", "--port", str(h.port),
            "--listen", "127.0.0.1", "--state-dir", str(state)]  # fmt: skip
    if runtime is not None:
        argv += ["--runtime-dir", str(runtime)]
    return [*argv, "--", *FOOT]


class VictimServer(WrServer):
    """The victim's wrsrvd (the harness's server runs as root)."""

    def __init__(self, h: Harness, user: str, *, state: Path, runtime: Path) -> None:
        super().__init__(h, FOOT, port=h.port, extra=[])
        self.user = user
        self.state = state
        self.runtime = runtime
        h.servers.append(self)

    def argv(self) -> list[str]:
        return as_user(self.user, wrsrvd_argv(self.h, state=self.state, runtime=self.runtime))


def outcome(argv: list[str], h: Harness) -> subprocess.CompletedProcess[str]:
    """Run wrsrvd until it exits; one that starts serving instead is stopped, and the test fails."""
    proc = subprocess.Popen(
        argv, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    out: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True).start()  # type: ignore[union-attr]
    end = time.monotonic() + DEADLINE
    while proc.poll() is None and time.monotonic() < end:
        if any("Ctrl-C" in line for line in list(out)):
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)
            raise AssertionError(f"wrsrvd started:\n{''.join(out)}")
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("wrsrvd neither started nor stopped")
    return subprocess.CompletedProcess(argv, proc.returncode, "".join(out), proc.stderr.read())


def error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one ``wrsrvd: error:`` line (followed by a hint), and nothing that looks like a crash."""
    errors = [line for line in r.stderr.splitlines() if line.startswith("wrsrvd: error: ")]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.stderr and "wrsrvd: hint: " in r.stderr, r.stderr
    return errors[0]


def squatted_dir(attacker: str) -> Path:
    """A directory in /tmp the attacker made, writable by everyone (not sticky)."""
    path = Path(tempfile.mktemp(prefix="wr-squat-", dir="/tmp"))
    made = run_as(attacker, ["mkdir", "-m", "0777", str(path)])
    assert made.returncode == 0, made.stderr
    return path


def test_without_a_runtime_directory_wrsrvd_refuses_rather_than_use_a_name_in_tmp(
    harness: Harness, users: Users
) -> None:
    """Under sudo, su or cron XDG_RUNTIME_DIR is unset. wrsrvd used /tmp/wayray-<uid>, which anyone
    can create first; now it asks for a runtime directory instead."""
    uid, _gid = users.ids(users.victim)
    squat = Path(f"/tmp/wayray-{uid}")
    shutil.rmtree(squat, ignore_errors=True)
    made = run_as(users.attacker, ["mkdir", "-m", "0777", str(squat)])
    assert made.returncode == 0, made.stderr
    try:
        state = Users.home(users.victim) / "state-fallback"
        r = outcome(as_user(users.victim, wrsrvd_argv(harness, state=state, runtime=None)), harness)
        assert r.returncode == 2, failure(r)
        first = error_line(r)
        assert "XDG_RUNTIME_DIR is not set" in first, r.stderr
        assert "--runtime-dir" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert list(squat.iterdir()) == []  # nothing of the victim's in the attacker's directory
    finally:
        shutil.rmtree(squat, ignore_errors=True)


@pytest.mark.parametrize("which", ["runtime", "state"])
def test_a_directory_below_one_that_others_can_change_is_refused(
    harness: Harness, users: Users, which: str
) -> None:
    """Whoever may rename entries in a directory above the runtime (or state) directory can swap it for
    their own: every existing directory above must be root's or the user's, and not writable by others
    (unless sticky, like /tmp)."""
    uid, gid = users.ids(users.victim)
    squat = squatted_dir(users.attacker)
    own = Path(tempfile.mkdtemp(prefix="wr-own-", dir="/tmp"))
    os.chown(own, uid, gid)
    try:
        if which == "runtime":
            state, runtime = Users.home(users.victim) / "state-squat", squat / "run"
        else:
            state, runtime = squat / "state", own
        r = outcome(as_user(users.victim, wrsrvd_argv(harness, state=state, runtime=runtime)), harness)
        assert r.returncode == 1, failure(r)
        first = error_line(r)
        assert first.startswith(f"wrsrvd: error: {squat}: ") and "other users" in first, r.stderr
        assert "mode 0777" in first and f"uid {users.ids(users.attacker)[0]}" in first, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert list(squat.iterdir()) == []
    finally:
        shutil.rmtree(squat, ignore_errors=True)
        shutil.rmtree(own, ignore_errors=True)


def test_a_compositor_gives_its_secret_only_to_a_server_of_the_right_uid(
    harness: Harness, users: Users
) -> None:
    """Should another user ever listen where a session's compositor looks for wrsrvd (the review's
    rename trick, a careless --runtime-dir), the compositor checks who listens (SO_PEERCRED) against
    the uid its spawner named, and registers nowhere else: the secret never leaves it. Once the real
    wrsrvd is back, the session relinks as after any restart."""
    uid, gid = users.ids(users.victim)
    attacker_uid, attacker_gid = users.ids(users.attacker)
    runtime = Path(tempfile.mkdtemp(prefix="wr-vic-", dir="/tmp"))
    os.chown(runtime, uid, gid)
    state = Users.home(users.victim) / "state-relink"
    squatter: subprocess.Popen[str] | None = None
    try:
        srv = VictimServer(harness, users.victim, state=state, runtime=runtime).start(cwd=Path("/"))
        shot = harness.tmp / "before.png"
        # The victim's server asks for its access key (standalone, loopback too): the test's viewer
        # (root) is given the victim's.
        key = ("--access-key-file", str(state / "access.key"))
        result = harness.run_client(srv, "--snapshot", str(shot), *key)
        assert result.returncode == 0, failure(result)
        session = srv.session()
        srv.signal(signal.SIGKILL)
        srv.wait()

        # The attacker holds the directory and listens on the link socket's path.
        (runtime / "link.sock").unlink()
        os.chown(runtime, attacker_uid, attacker_gid)
        os.chmod(runtime, 0o755)
        squat = [SYSTEM_PYTHON, "-m", "tests.e2e.link_squatter", str(runtime / "link.sock")]
        squatter = subprocess.Popen(as_user(users.attacker, squat), cwd=REPO, stdout=PIPE, text=True)
        seen: list[dict[str, object]] = []
        assert squatter.stdout is not None
        threading.Thread(
            target=lambda: seen.extend(json.loads(line) for line in squatter.stdout),  # type: ignore[union-attr]
            daemon=True,
        ).start()
        eventually(lambda: len([c for c in seen if "bytes" in c]) >= 2, "the compositor to try twice", 60)
        tries = [c for c in seen if "bytes" in c]
        assert not any(c["secret"] for c in tries), tries
        assert all(c["bytes"] == 0 for c in tries), tries
        log = (state / "sessions" / f"{session['id']}.log").read_text()
        assert f"uid {attacker_uid}" in log and f"uid {uid}" in log and "not registering" in log, log[-2000:]
        assert Path(f"/proc/{session['pid']}").exists()  # the session lives on, waiting

        squatter.kill()
        squatter.wait(10)
        (runtime / "link.sock").unlink()
        os.chown(runtime, uid, gid)
        os.chmod(runtime, 0o700)
        again = VictimServer(harness, users.victim, state=state, runtime=runtime).start(cwd=Path("/"))
        relinked = again.wait_linked()
        assert (relinked["id"], relinked["pid"]) == (session["id"], session["pid"])
        back = harness.run_client(again, "--snapshot", str(harness.tmp / "after.png"), *key)
        assert back.returncode == 0 and "resumed session" in back.stderr, failure(back)
    finally:
        if squatter is not None and squatter.poll() is None:
            squatter.kill()
        kill_sessions(runtime / "link.sock")
        shutil.rmtree(runtime, ignore_errors=True)


def test_the_link_secret_is_in_no_processs_environment(harness: Harness) -> None:
    """A process's initial environment stays readable in /proc/PID/environ for its whole life: the
    secret reaches the compositor through an inherited pipe instead (review finding I1), and neither
    the compositor nor its programs hold the pipe afterwards."""
    srv = harness.server(FOOT)
    result = harness.run_client(srv, "--snapshot", str(harness.tmp / "s.png"))
    assert result.returncode == 0, failure(result)
    session = srv.session()
    assert session["linked"]  # it did get its secret
    tree = [session["pid"], *descendants(session["pid"])]
    assert len(tree) >= 2, tree  # the compositor and foot (and its shell)
    for pid in tree:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [e for e in environ if e.startswith(b"WAYRAY_LINK_SECRET=")], pid
        if pid != session["pid"]:  # its programs are not even told where it was
            assert not [e for e in environ if e.startswith(b"WAYRAY_LINK")], pid


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, ()))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out
