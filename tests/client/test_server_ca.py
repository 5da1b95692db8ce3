"""client.toml's ``[client.tls] ca`` with real processes: a ``wrsrvd --instance`` presenting a
CA-issued certificate through ``[server.NAME.tls] cert/key``, and headless ``wrclient`` processes
reading their client.toml under ``--root``, over real QUIC on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import script
from tests.e2e.harness import Harness, admin_status, free_udp_port, kill_sessions, png_pixels
from tests.transport.helpers import ThrowawayCA
from wayray.server.admin import AdminClient
from wayray.transport import ServerIdentity

pytestmark = pytest.mark.slow


def _client_root(root: Path, ca: Path, extra: str = "") -> Path:
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "client.toml").write_text(f'[client]\n{extra}\n[client.tls]\nca = "{ca}"\n')
    return root


def _wrclient(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("wrclient"), *args, "--headless", "--no-reconnect", "--timeout", "60"],
        env=h.env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_server_certificate_from_the_configured_ca_is_trusted_and_others_are_refused(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    port = free_udp_port()
    state, run = tmp_path / "var" / "lib" / "wayray", h.short / "run" / "wayray"
    site_ca = ThrowawayCA(tmp_path / "site-ca", name="Example site CA")
    other_ca = ThrowawayCA(tmp_path / "other-ca", name="Someone else's CA")
    issued = site_ca.issue(
        "lab.example", usage=ExtendedKeyUsageOID.SERVER_AUTH, names=("lab.example", "127.0.0.1")
    )
    key = state / "lab" / "access.key"  # no login: viewers present the key (client.toml's access_key_file)
    etc = tmp_path / "root" / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "host.toml").write_text(f'[host]\nstate_dir = "{state}"\nruntime_dir = "{run}"\n')
    (etc / "servers.toml").write_text(
        f"""[server.lab]
listen = ["127.0.0.1"]
port = {port}
sessions = "command"
session_command = ["foot", "--window-size-chars=80x24", "sh"]

[server.lab.tls]
cert = "{issued.cert}"
key = "{issued.key}"

[server.lab.admission]
access_key_file = "{key}"
"""
    )
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "lab", "--root", str(tmp_path / "root")],
        env=h.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "wrsrvd.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        sock = run / "lab" / "admin.sock"
        status = admin_status(proc, sock, tmp_path / "wrsrvd.log")
        # The instance presents the configured, CA-issued certificate, not a self-signed one of its own.
        expected = ServerIdentity.load_or_create_files(issued.cert, issued.key).fingerprint
        assert status["fingerprint"] == expected

        good = _client_root(
            tmp_path / "client-good",
            site_ca.path,
            f'servers = ["127.0.0.1:{port}"]\naccess_key_file = "{key}"',
        )
        shot = tmp_path / "shot.png"
        signed = _wrclient(h, "--root", str(good), "--token", "ca-token", "--snapshot", str(shot))
        assert signed.returncode == 0, signed.stderr
        assert png_pixels(shot).shape == (720, 1280, 3)  # the session's picture, at the size asked for
        # The CA decided; nothing was trusted on first use.
        assert not (tmp_path / "config-home" / "wayray" / "known_hosts").exists()
        with AdminClient(sock) as admin:
            assert len(admin.request("sessions")["sessions"]) == 1

        other = _client_root(tmp_path / "client-other", other_ca.path)
        refused = _wrclient(h, f"127.0.0.1:{port}", "--root", str(other), "--token", "ca-token")
        assert refused.returncode == 1
        assert (
            f"127.0.0.1:{port} presented the certificate 'CN=lab.example' ({expected}), which is not "
            f"issued by the CA in {other_ca.path}" in refused.stderr
        )
        assert "tls.ca" in refused.stderr  # what to do about it

        wrong_name = _wrclient(h, f"localhost:{port}", "--root", str(good), "--token", "ca-token")
        assert wrong_name.returncode == 1
        assert f"issued by the CA in {site_ca.path} but not for 'localhost'" in wrong_name.stderr
        assert "lab.example, 127.0.0.1" in wrong_name.stderr  # the names it does carry

        # Pins in client.toml must hold as well.
        pinned = _client_root(
            tmp_path / "client-pinned", site_ca.path, f'fingerprints = ["sha256:{"0" * 64}"]'
        )
        mispinned = _wrclient(h, f"127.0.0.1:{port}", "--root", str(pinned), "--token", "ca-token")
        assert mispinned.returncode == 1 and "not among the fingerprints" in mispinned.stderr
        with AdminClient(sock) as admin:  # none of the refused viewers got a session
            assert len(admin.request("sessions")["sessions"]) == 1
    finally:
        proc.kill()
        proc.wait()
        kill_sessions(run / "lab" / "link.sock")
        h.cleanup()


def test_a_server_with_its_own_self_signed_identity_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    site_ca = ThrowawayCA(tmp_path / "site-ca", name="Example site CA")
    try:
        srv = h.server(["foot"])
        root = _client_root(tmp_path / "client", site_ca.path)
        r = _wrclient(h, f"127.0.0.1:{srv.port}", "--root", str(root), "--token", "ca-token")
        assert r.returncode == 1
        assert f"127.0.0.1:{srv.port} presented the certificate" in r.stderr
        assert srv.fingerprint in r.stderr and f"not issued by the CA in {site_ca.path}" in r.stderr
        assert srv.sessions() == []  # refused before the Hello: no session was started
        # --ca on the command line does the same without a client.toml.
        r = _wrclient(h, f"127.0.0.1:{srv.port}", "--ca", str(site_ca.path), "--token", "ca-token")
        assert r.returncode == 1 and "not issued by the CA" in r.stderr
    finally:
        h.cleanup()
