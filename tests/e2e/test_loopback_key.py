"""A standalone server asks for its access key on loopback too: on a machine several people use, any of
them could reach 127.0.0.1 and get a session running the command as whoever started the server (QUIC
over UDP tells a server nothing about the local user behind a datagram). wrclient presents its own
user's standalone key to servers on loopback, so the one-user case needs nothing more: the user who
started the server connects without passing anything, another local user is refused and told what
to do, and the key never goes to a server elsewhere."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import DEADLINE, LISTENING, Harness, failure, kill_sessions
from tests.e2e.test_frontdoor_trust import lan_address
from tests.launcher.harness import kill_user_processes
from wayray.server.admin import AdminClient

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


@dataclass
class LocalUser:
    """A throwaway account of this machine, with a home and a runtime directory of its own."""

    name: str
    uid: int
    gid: int
    home: Path
    runtime: Path

    @property
    def env(self) -> dict[str, str]:
        # What a login gives: no XDG_STATE_HOME, so everything is in the default places (~/.local/state).
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PS1": "$ ",
            "ENV": "",
        }

    def argv(self, *argv: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", *argv]

    def run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv),
            env=env or self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )

    def write_private(self, relative: str, text: str) -> Path:
        """A file of this user's, mode 0600, in directories of theirs (0700)."""
        path = self.home / relative
        for parent in reversed(path.relative_to(self.home).parents):
            d = self.home / parent
            if not d.exists():
                d.mkdir(mode=0o700)
                os.chown(d, self.uid, self.gid)
        path.write_text(text)
        os.chown(path, self.uid, self.gid)
        path.chmod(0o600)
        return path


@contextmanager
def local_users(count: int) -> Iterator[list[LocalUser]]:
    tag = secrets.token_hex(3)
    made: list[LocalUser] = []
    try:
        for i in range(count):
            name = f"wrk{tag}{i}"
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True
            )
            pw = pwd.getpwnam(name)
            runtime = Path(tempfile.mkdtemp(prefix=f"wrk-{name}-", dir="/tmp"))
            os.chown(runtime, pw.pw_uid, pw.pw_gid)
            runtime.chmod(0o700)
            made.append(LocalUser(name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir), runtime))
        yield made
    finally:
        for user in made:
            kill_user_processes(user.name)
            subprocess.run(["userdel", "--remove", user.name], capture_output=True)
            shutil.rmtree(user.runtime, ignore_errors=True)


class StandaloneAs:
    """``wrsrvd --standalone`` started by a local user the way they would: no options but the command."""

    def __init__(self, user: LocalUser, *options: str) -> None:
        self.user = user
        self.log = user.runtime / "wrsrvd.log"
        self.lines: list[str] = []
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                user.argv(script("wrsrvd"), "--standalone", "--port", "0", *options, "--", *FOOT),
                env=user.env, cwd=user.home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=err, text=True, start_new_session=True,
            )  # fmt: skip
        assert self.proc.stdout is not None
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        end = time.monotonic() + DEADLINE
        while not any("Ctrl-C" in line for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"wrsrvd did not start:\n{''.join(self.lines)}\n{self.log.read_text()}")
            time.sleep(0.05)
        self.banner = "".join(self.lines)
        fingerprint, where = (
            re.search(r"fingerprint\s+(sha256:[0-9a-f]{64})", self.banner),
            re.search(LISTENING, self.banner),
        )
        assert fingerprint and where, self.banner
        self.fingerprint, self.port = fingerprint[1], int(where[1])
        self.state = user.home / ".local" / "state" / "wayray" / "standalone"
        self.runtime = user.runtime / "wayray" / "standalone"

    def sessions(self) -> list[dict[str, object]]:
        with AdminClient(self.runtime / "admin.sock") as admin:  # root may ask
            return list(admin.request("sessions")["sessions"])

    def viewer(
        self, who: LocalUser, name: str, *extra: str, host: str = "localhost"
    ) -> subprocess.CompletedProcess[str]:
        """``wrclient localhost:PORT --token T`` as ``who``, as the banner says (a snapshot, then exit)."""
        return who.run(
            script("wrclient"), f"{host}:{self.port}", "--fingerprint", self.fingerprint, "--headless",
            "--token", f"token-of-{name}", "--no-reconnect", "--timeout", "60",
            "--snapshot", str(who.home / f"{name}.png"), *extra,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C: the sessions end too
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        kill_sessions(self.runtime / "link.sock")


@pytest.fixture
def two_users() -> Iterator[list[LocalUser]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: throwaway local users")
    with local_users(2) as users:
        yield users


def test_another_local_user_gets_no_session_from_a_users_loopback_standalone_server(
    two_users: list[LocalUser],
) -> None:
    alice, bob = two_users
    srv = StandaloneAs(alice)
    bobs: StandaloneAs | None = None
    try:
        # The banner says plainly who can connect.
        assert re.search(r"who can connect\s+you", srv.banner), srv.banner
        assert "other users of this machine need the key" in srv.banner, srv.banner
        # The user who started it: `wrclient localhost --token x`, nothing else.
        own = srv.viewer(alice, "alice")
        assert own.returncode == 0, failure(own)
        assert len(srv.sessions()) == 1
        # Another user of the same machine: refused before anything starts, and told what to do.
        other = srv.viewer(bob, "bob")
        assert other.returncode == 1, failure(other)
        assert "this server requires an access key: ask whoever started it for it" in other.stderr, (
            other.stderr
        )
        assert "--access-key-file" in other.stderr, other.stderr
        assert not (bob.home / "bob.png").exists()
        assert len(srv.sessions()) == 1
        # Bob runs a standalone server of his own as well: his wrclient presents its key to it, and to
        # no other (presented to alice's, it would be "the access key is wrong").
        bobs = StandaloneAs(bob)
        at_home = bobs.viewer(bob, "bob-at-home")
        assert at_home.returncode == 0, failure(at_home)
        assert len(bobs.sessions()) == 1
        other_again = srv.viewer(bob, "bob-2")
        assert other_again.returncode == 1, failure(other_again)
        assert "this server requires an access key" in other_again.stderr, other_again.stderr
        assert len(srv.sessions()) == 1
        # What the message says to do works: with the key alice gave him, bob gets a session.
        given = bob.write_private("alice.key", (srv.state / "access.key").read_text())
        allowed = srv.viewer(bob, "bob-3", "--access-key-file", str(given))
        assert allowed.returncode == 0, failure(allowed)
        assert len(srv.sessions()) == 2
        key = (srv.state / "access.key").read_text().strip()
        assert key not in srv.log.read_text()
    finally:
        srv.stop()
        if bobs is not None:
            bobs.stop()


def test_the_own_key_goes_to_loopback_servers_only(two_users: list[LocalUser]) -> None:
    """Dialled at a network address, the same server gets no key: wrclient presents the user's own
    key only where the address it connects to is loopback."""
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no network address besides loopback")
    alice = two_users[0]
    srv = StandaloneAs(alice, "--listen", "::")  # on every address: its key is required there too
    try:
        assert re.search(r"who can connect\s+whoever has the access key", srv.banner), srv.banner
        # Here, as alice: nothing to give; from elsewhere: the key.
        here = (
            f"connect with    wrclient localhost:{srv.port} --fingerprint {srv.fingerprint}   (you, here)\n"
        )
        assert here in srv.banner, srv.banner
        assert re.search(rf":{srv.port} --fingerprint {srv.fingerprint} --access-key-file FILE ", srv.banner)
        far = srv.viewer(alice, "alice-lan", host=lan)
        assert far.returncode == 1, failure(far)
        assert "requires an access key" in far.stderr, far.stderr  # none was presented
        near = srv.viewer(alice, "alice-local", host="127.0.0.1")
        assert near.returncode == 0, failure(near)
        assert len(srv.sessions()) == 1
    finally:
        srv.stop()


def test_a_standalone_key_others_may_read_is_refused_with_what_to_do(harness: Harness) -> None:
    srv = harness.server(FOOT)
    key = srv.state / "access.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    ok = harness.run_client(srv, "--snapshot", str(harness.tmp / "ok.png"), token="own")
    assert ok.returncode == 0, failure(ok)
    key.chmod(0o640)
    leaked = harness.run_client(srv, "--snapshot", str(harness.tmp / "leaked.png"), token="leaked")
    assert leaked.returncode == 1, failure(leaked)
    assert f"{key}: the access key is readable by others (mode 0640)" in leaked.stderr, leaked.stderr
    assert f"chmod 600 {key}" in leaked.stderr, leaked.stderr
    key.chmod(0o600)
    if os.geteuid() == 0:  # a key of someone else's (a HOME that is not one's own)
        os.chown(key, 65534, 65534)
        foreign = harness.run_client(srv, "--snapshot", str(harness.tmp / "foreign.png"), token="foreign")
        os.chown(key, 0, 0)
        assert foreign.returncode == 1, failure(foreign)
        assert f"{key}: the access key belongs to uid 65534" in foreign.stderr, foreign.stderr
    assert not (harness.tmp / "leaked.png").exists() and not (harness.tmp / "foreign.png").exists()
    assert len(srv.sessions()) == 1


def test_a_command_instance_on_loopback_without_an_authenticator_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    """Every local user could get a session running as the service's user, who owns the server's state
    (its TLS key too) and may ask every instance's admin socket for screenshots."""
    h = Harness(tmp_path)
    try:
        root, state, run = tmp_path / "root", tmp_path / "state", h.short / "run"
        etc = root / "etc" / "wayray"
        etc.mkdir(parents=True)
        (etc / "host.toml").write_text(f'[host]\nstate_dir = "{state}"\nruntime_dir = "{run}"\n')
        servers = etc / "servers.toml"
        servers.write_text(
            '[server.lab]\nlisten = ["127.0.0.1", "::1"]\nport = 7355\nsessions = "command"\n'
            'session_command = ["foot"]\n'
        )
        check = subprocess.run(
            [script("wradm"), "--root", str(root), "check"], env=h.env, capture_output=True, text=True
        )
        assert check.returncode == 1, check.stdout + check.stderr
        # Positioned at the setting, saying who would get what, and what to do.
        assert f"{servers}:4:12: error: server.lab.sessions:" in check.stderr, check.stderr
        assert "every user of this machine" in check.stderr, check.stderr
        assert "admission.access_key_file" in check.stderr and "tls.client_ca" in check.stderr, check.stderr
        started = subprocess.run(
            [script("wrsrvd"), "--instance", "lab", "--root", str(root)],
            env=h.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert started.returncode == 78, started.stdout + started.stderr
        assert f"{servers}:4:12:" in started.stderr and "every user of this machine" in started.stderr
        assert not (run / "lab" / "link.sock").exists()
        # With an access key it serves (the key file is made on first start).
        with open(servers, "a") as f:
            f.write(f'\n[server.lab.admission]\naccess_key_file = "{state}/lab.key"\n')
        check = subprocess.run(
            [script("wradm"), "--root", str(root), "check"], env=h.env, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        h.cleanup()
