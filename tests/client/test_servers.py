"""client.toml's ``servers``: without a server on the command line wrclient uses the first, and the
others in turn when the one before does not answer. Real wrsrvd, real headless wrclient, real QUIC
on loopback; the server that is "down" is a UDP port nothing listens on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, free_udp_port

pytestmark = pytest.mark.slow


def _root(root: Path, servers: list[str]) -> Path:
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True)
    listed = ", ".join(f'"{s}"' for s in servers)
    (etc / "client.toml").write_text(f"[client]\nservers = [{listed}]\n")
    return root


def _wrclient(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            script("wrclient"),
            *args,
            "--headless",
            "--no-reconnect",
            "--timeout",
            "60",
            "--token",
            "fallback",
        ],
        env=h.env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_next_server_of_client_toml_is_used_when_one_does_not_answer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        srv = h.server(["foot"])
        down, down_too = free_udp_port(), free_udp_port()
        root = _root(tmp_path / "client", [f"127.0.0.1:{down}", f"127.0.0.1:{srv.port}"])
        shot = tmp_path / "shot.png"
        r = _wrclient(h, "--root", str(root), "--fingerprint", srv.fingerprint, "--snapshot", str(shot))
        assert r.returncode == 0, r.stderr
        assert shot.exists() and len(srv.sessions()) == 1
        assert (
            f"nothing listens on UDP port {down}; trying the next server, 127.0.0.1:{srv.port}" in r.stderr
        )

        # A server named on the command line is the only one tried.
        r = _wrclient(h, f"127.0.0.1:{down}", "--root", str(root), "--fingerprint", srv.fingerprint)
        assert r.returncode == 1 and "trying the next server" not in r.stderr
        assert f"nothing listens on UDP port {down}" in r.stderr

        # None answers: the error names each of them.
        root = _root(tmp_path / "client-down", [f"127.0.0.1:{down}", f"127.0.0.1:{down_too}"])
        r = _wrclient(h, "--root", str(root), "--fingerprint", srv.fingerprint)
        assert r.returncode == 1
        assert "none of the 2 servers answered" in r.stderr
        assert f"UDP port {down};" in r.stderr and f"UDP port {down_too}" in r.stderr
    finally:
        h.cleanup()
