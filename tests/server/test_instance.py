"""``wrsrvd --instance NAME``: the configured server, as systemd or SMF runs it (readiness, status,
reload, stop), serving a real session to a real viewer."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, free_udp_port, kill_sessions, processes_with_link
from tests.supervisor.test_notify import NotifySocket
from wayray.server.admin import AdminClient

pytestmark = pytest.mark.slow


def _tree(root: Path, port: int, state: Path, run: Path) -> None:
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "host.toml").write_text(f'[host]\nstate_dir = "{state}"\nruntime_dir = "{run}"\n')
    (etc / "servers.toml").write_text(
        f"""[server.lab]
listen = ["127.0.0.1"]
port = {port}
max_sessions = 4
session_command = ["foot", "--window-size-chars=80x24", "sh"]

[server.lab.output]
width = 1024
height = 768
"""
    )


def test_instance_reports_ready_status_reload_and_stopping(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    port = free_udp_port()
    state, run = tmp_path / "var" / "lib" / "wayray", h.short / "run" / "wayray"
    _tree(tmp_path / "root", port, state, run)
    notify = NotifySocket(str(tmp_path / "notify"))
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "lab", "--root", str(tmp_path / "root")],
        env={**h.env, "NOTIFY_SOCKET": str(tmp_path / "notify")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "wrsrvd.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        pid, ready = notify.receive()
        assert pid == proc.pid and ready == {"READY": "1", "STATUS": "0 sessions, 0 viewers"}
        assert (state / "lab" / "tls" / "key.pem").exists()  # the configured identity paths
        with AdminClient(run / "lab" / "admin.sock") as admin:
            status = admin.request("status")
        assert status["name"] == "lab" and status["mode"] == "instance" and status["port"] == port
        viewer = subprocess.run(
            [
                script("wrclient"),
                f"127.0.0.1:{port}",
                "--fingerprint",
                status["fingerprint"],
                "--headless",
                "--token",
                "instance-token",
                "--snapshot",
                str(tmp_path / "shot.png"),
            ],
            env=h.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert viewer.returncode == 0, viewer.stderr
        statuses: list[str] = []
        while "1 session, 1 viewer" not in statuses or statuses[-1] != "1 session, 0 viewers":
            statuses.append(notify.receive()[1].get("STATUS", ""))
        os.kill(proc.pid, signal.SIGHUP)
        reload_ = notify.receive()[1]
        assert reload_["RELOADING"] == "1"
        assert notify.receive()[1] == {"READY": "1", "STATUS": "1 session, 0 viewers"}
        os.kill(proc.pid, signal.SIGTERM)
        assert notify.receive()[1]["STOPPING"] == "1"
        assert proc.wait(60) == 0
        # SIGTERM stops the front door only: the session lives on and would come back.
        assert processes_with_link(run / "lab" / "link.sock")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        kill_sessions(run / "lab" / "link.sock")
        h.cleanup()
