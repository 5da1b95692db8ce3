"""Protocol 1.2 added the access key and the terminal identity to Hello. Real peers of 1.1 (the code of
the last commit that spoke it, from this repository's history) still work with 1.2 ones: a 1.2 viewer
falls back to a 1.1 Hello for a 1.1 server, and a 1.1 viewer is served by a 1.2 server that does
not ask for an access key (client certificates instead), or told clearly, once, that it must be
upgraded to present one (a standalone server asks for its key, on loopback too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, script
from tests.e2e.harness import (
    DEADLINE,
    LISTENING,
    Harness,
    admin_status,
    failure,
    free_udp_port,
    kill_sessions,
)
from tests.e2e.test_frontdoor_trust import _instance_tree
from tests.transport.helpers import ThrowawayCA

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``wayray`` package as of the newest commit that spoke protocol 1.1."""
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout: no older WayRay to talk to")
    commits = _git("rev-list", "HEAD", "--", "wayray/wire/messages.py").stdout.decode().split()
    for commit in commits:
        text = _git("show", f"{commit}:wayray/wire/messages.py").stdout.decode()
        if re.search(r"^PROTOCOL_MINOR = 1$", text, re.M):
            break
    else:
        pytest.skip("no commit of protocol 1.1 in this checkout's history")
    archive = _git("archive", "--format=tar", commit, "wayray")
    assert archive.returncode == 0, archive.stderr
    root = tmp_path_factory.mktemp("wayray-1.1")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(root)  # our own repository's archive
    return root


def _old_env(harness: Harness, old: Path) -> dict[str, str]:
    # PYTHONPATH comes before the venv's editable install of this checkout.
    return {**harness.env, "PYTHONPATH": str(old)}


def test_a_1_2_viewer_talks_to_a_1_1_server(harness: Harness, old_tree: Path) -> None:
    runtime, state = harness.short / "old-run", harness.tmp / "old-state"
    log = harness.tmp / "old-wrsrvd.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "wayray.server", "--standalone", "--port", str(harness.port), "--listen",
         "127.0.0.1", "--state-dir", str(state), "--runtime-dir", str(runtime),
         *(["--allow-root"] if os.geteuid() == 0 else []), "--", *FOOT],
        env=_old_env(harness, old_tree), cwd=harness.home, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=log.open("wb"), text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = ""
        end = time.monotonic() + DEADLINE
        while "Ctrl-C" not in banner and time.monotonic() < end and server.poll() is None:
            banner += server.stdout.readline()
        fingerprint = re.search(r"fingerprint\s+(sha256:[0-9a-f]{64})", banner)
        assert fingerprint, banner + log.read_text()
        where = re.search(LISTENING, banner)  # --port 0: the server picked its port
        assert where, banner
        viewer = subprocess.run(
            [script("wrclient"), f"127.0.0.1:{where[1]}", "--fingerprint", fingerprint[1], "--headless",
             "--token", "new-viewer", "--snapshot", str(harness.tmp / "old.png")],
            env=harness.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert viewer.returncode == 0, failure(viewer)
        assert "speaks protocol 1.1" in viewer.stderr
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 2)
            server.wait(30)
        kill_sessions(runtime / "link.sock")


def _old_wrclient(
    harness: Harness, old: Path, srv_port: int, fingerprint: str, token: str, *extra: str
) -> Any:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from wayray.client.cli import main; sys.exit(main())",
         f"127.0.0.1:{srv_port}", "--fingerprint", fingerprint, "--headless", "--token", token,
         "--snapshot", str(harness.tmp / f"{token}.png"), "--timeout", "60", *extra],
        env=_old_env(harness, old), cwd=harness.home, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_a_1_1_viewer_is_served_and_told_clearly_when_it_needs_an_access_key(
    harness: Harness, old_tree: Path
) -> None:
    # A standalone server asks for its access key on loopback too, which 1.1 cannot send.
    srv = harness.server(FOOT)
    started = time.monotonic()
    refused = _old_wrclient(harness, old_tree, srv.port, srv.fingerprint, "old-viewer")
    assert refused.returncode == 1, failure(refused)
    assert "cannot present" in refused.stderr and "upgrade wrclient" in refused.stderr, refused.stderr
    assert time.monotonic() - started < 60  # a final refusal: it did not keep trying until --timeout
    assert len(srv.sessions()) == 0
    srv.stop()
    # A server that asks for a client certificate instead serves it (1.1 viewers present those).
    ca = ThrowawayCA(harness.tmp / "ca")
    kiosk = ca.issue("old-kiosk")
    root, state, run = harness.tmp / "root", harness.tmp / "instance-state", harness.short / "instance-run"
    port = free_udp_port()
    _instance_tree(root, port, state, run, f'[server.demo.tls]\nclient_ca = "{ca.path}"\n')
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "demo", "--root", str(root)],
        env=harness.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(harness.tmp / "instance.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        fingerprint = admin_status(proc, run / "demo" / "admin.sock")["fingerprint"]
        served = _old_wrclient(
            harness, old_tree, port, fingerprint, "old-viewer-2",
            "--client-cert", str(kiosk.cert), "--client-key", str(kiosk.key),
        )  # fmt: skip
        assert served.returncode == 0, failure(served)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        kill_sessions(run / "demo" / "link.sock")
