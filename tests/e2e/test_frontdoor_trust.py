"""Who may open a session at the front door: a standalone server stays on this machine unless told
otherwise, and anywhere else it asks for its access key before anything starts; a `sessions =
"command"` instance does not serve strangers without an authenticator (security review C1)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, admin_status, failure, free_udp_port, kill_sessions
from wayray.server.admin import AdminClient

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def bound_udp_addresses(port: int) -> set[str]:
    """The local addresses UDP sockets are bound to on ``port`` (from /proc/net/udp and udp6)."""
    import ipaddress

    found = set()
    for name, size in (("udp", 4), ("udp6", 16)):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local = line.split()[1]
            hexaddr, hexport = local.split(":")
            if int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(hexaddr)
            # The kernel prints the address as host-order 32-bit words.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
            found.add(str(ipaddress.ip_address(raw)))
    return found


def lan_address() -> str | None:
    """A global (non-loopback) IPv4 address of this machine, if it has one."""
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    if out.returncode != 0:
        return None
    for link in json.loads(out.stdout or "[]"):
        for a in link.get("addr_info", []):
            if a.get("local"):
                return str(a["local"])
    return None


def test_standalone_listens_on_this_machine_only_unless_told_otherwise(harness: Harness) -> None:
    srv = harness.server(FOOT, listen=None)
    assert re.search(rf"listening on\s+udp 127\.0\.0\.1:{srv.port}, \[::1\]:{srv.port}\n", srv.banner), (
        srv.banner
    )
    assert bound_udp_addresses(srv.port) == {"127.0.0.1", "::1"}
    lan = lan_address()
    if lan is not None:  # a stranger on the network: nothing answers there
        stranger = subprocess.run(
            [script("wrclient"), f"{lan}:{srv.port}", "--fingerprint", srv.fingerprint, "--headless",
             "--token", "stranger", "--no-reconnect", "--timeout", "5", "--snapshot",
             str(harness.tmp / "stranger.png")],
            env=harness.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert stranger.returncode == 1, failure(stranger)
        assert not (harness.tmp / "stranger.png").exists()
    assert srv.sessions() == []
    shot = harness.tmp / "local.png"
    local = harness.run_client(srv, "--snapshot", str(shot), token="local-viewer")
    assert local.returncode == 0, failure(local)
    assert len(srv.sessions()) == 1


def _access_key(banner: str) -> str:
    m = re.search(r"access key\s+(\S+)", banner)
    assert m, banner
    return m[1]


def test_standalone_on_every_address_asks_for_the_access_key_its_banner_shows(harness: Harness) -> None:
    srv = harness.server(FOOT, listen=("::",))
    key = _access_key(srv.banner)
    assert len(key) >= 32
    assert "anyone who has it" in srv.banner  # the banner says what the key is worth
    # Without the key (someone else: the harness's own wrclient would present it): refused before any
    # session starts, with what to do.
    stranger_env = {**harness.env, "XDG_STATE_HOME": str(harness.tmp / "stranger-state")}
    none = subprocess.run(
        harness.client_argv(srv, "--snapshot", str(harness.tmp / "none.png"), token="stranger-1"),
        env=stranger_env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert none.returncode == 1, failure(none)
    assert "access key" in none.stderr and "--access-key-file" in none.stderr, none.stderr
    wrong_env = {**harness.env, "WAYRAY_ACCESS_KEY": "not-the-key-" + key[:4]}
    wrong = subprocess.run(
        harness.client_argv(srv, "--snapshot", str(harness.tmp / "wrong.png"), token="stranger-2"),
        env=wrong_env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert wrong.returncode == 1, failure(wrong)
    assert "access key" in wrong.stderr, wrong.stderr
    assert srv.sessions() == []
    assert "stranger" not in srv.log_text()  # nothing of a token in the log either
    # With the key, from a file: a session.
    key_file = harness.tmp / "access-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    ok = harness.run_client(
        srv, "--access-key-file", str(key_file), "--snapshot", str(harness.tmp / "ok.png"), token="friend"
    )
    assert ok.returncode == 0, failure(ok)
    assert len(srv.sessions()) == 1
    assert key not in srv.log_text()
    # The key is kept with the server's state: a restart keeps it, so viewers need not be told again.
    state_key = srv.state / "access.key"
    assert state_key.read_text().strip() == key and (state_key.stat().st_mode & 0o777) == 0o600


def _instance_tree(root: Path, port: int, state: Path, run: Path, extra: str = "") -> Path:
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "host.toml").write_text(f'[host]\nstate_dir = "{state}"\nruntime_dir = "{run}"\n')
    (etc / "servers.toml").write_text(
        f'[server.demo]\nlisten = ["::"]\nport = {port}\nsessions = "command"\n'
        f'session_command = ["foot", "--window-size-chars=80x24", "sh"]\n{extra}'
    )
    return etc / "servers.toml"


def test_command_instance_on_every_address_refuses_to_start_without_an_authenticator(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        port = free_udp_port()
        root = tmp_path / "root"
        state, run = tmp_path / "state", h.short / "run"
        servers = _instance_tree(root, port, state, run)
        check = subprocess.run(
            [script("wradm"), "--root", str(root), "check"], env=h.env, capture_output=True, text=True
        )
        assert check.returncode == 1, check.stdout + check.stderr
        assert f"{servers}:" in check.stderr and "access_key_file" in check.stderr, check.stderr
        started = subprocess.run(
            [script("wrsrvd"), "--instance", "demo", "--root", str(root)],
            env=h.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        # A configuration error: status 78 (EX_CONFIG), which systemd does not restart in a loop.
        assert started.returncode == 78, started.stdout + started.stderr
        err = started.stderr
        assert f"{servers}:" in err, err  # file:line:col, as wradm check says it
        assert "anyone" in err and "access_key_file" in err and "tls.client_ca" in err, err
        assert not (run / "demo" / "link.sock").exists()  # it never served
    finally:
        h.cleanup()


def test_command_instance_with_an_access_key_serves_only_viewers_that_present_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    port = free_udp_port()
    root = tmp_path / "root"
    state, run = tmp_path / "state", h.short / "run"
    key_file = tmp_path / "demo.key"
    _instance_tree(root, port, state, run, f'[server.demo.admission]\naccess_key_file = "{key_file}"\n')
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "demo", "--root", str(root)],
        env=h.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "wrsrvd.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )  # fmt: skip
    try:
        status = admin_status(proc, run / "demo" / "admin.sock")
        key = key_file.read_text().strip()  # made on first start, for the operator to hand out
        assert len(key) >= 32 and (key_file.stat().st_mode & 0o777) == 0o600

        def viewer(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [script("wrclient"), f"127.0.0.1:{port}", "--fingerprint", status["fingerprint"],
                 "--headless", "--token", "instance-viewer", "--snapshot", str(tmp_path / "s.png"), *extra],
                env=env or h.env, capture_output=True, text=True, timeout=180,
            )  # fmt: skip

        refused = viewer()
        assert refused.returncode == 1 and "access key" in refused.stderr, failure(refused)
        with AdminClient(run / "demo" / "admin.sock") as admin:
            assert admin.request("sessions")["sessions"] == []
        ok = viewer(env={**h.env, "WAYRAY_ACCESS_KEY": key})
        assert ok.returncode == 0, failure(ok)
        log = (tmp_path / "wrsrvd.log").read_text()
        assert key not in log
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        kill_sessions(run / "demo" / "link.sock")
        h.cleanup()
