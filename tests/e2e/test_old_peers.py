"""Protocol 1.2 added the access key and the terminal identity to Hello. Real peers of 1.1 (the code of
the last commit that spoke it, from this repository's history) still work with 1.2 ones: a 1.2 viewer
falls back to a 1.1 Hello for a 1.1 server, and a 1.1 viewer is served by a 1.2 server, or told
clearly, once, that it must be upgraded to present an access key."""

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
from tests.e2e.harness import DEADLINE, LISTENING, Harness, failure, kill_sessions

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


def _old_wrclient(harness: Harness, old: Path, srv_port: int, fingerprint: str, token: str) -> Any:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from wayray.client.cli import main; sys.exit(main())",
         f"127.0.0.1:{srv_port}", "--fingerprint", fingerprint, "--headless", "--token", token,
         "--snapshot", str(harness.tmp / f"{token}.png"), "--timeout", "60"],
        env=_old_env(harness, old), cwd=harness.home, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_a_1_1_viewer_is_served_and_told_clearly_when_it_needs_an_access_key(
    harness: Harness, old_tree: Path
) -> None:
    srv = harness.server(FOOT)  # loopback: no access key
    served = _old_wrclient(harness, old_tree, srv.port, srv.fingerprint, "old-viewer")
    assert served.returncode == 0, failure(served)
    srv.stop()
    open_srv = harness.server(FOOT, listen=("::",))  # everywhere: an access key, which 1.1 cannot send
    started = time.monotonic()
    refused = _old_wrclient(harness, old_tree, open_srv.port, open_srv.fingerprint, "old-viewer-2")
    assert refused.returncode == 1, failure(refused)
    assert "cannot present" in refused.stderr and "upgrade wrclient" in refused.stderr, refused.stderr
    assert time.monotonic() - started < 60  # a final refusal: it did not keep trying until --timeout
    assert len(open_srv.sessions()) == 0
