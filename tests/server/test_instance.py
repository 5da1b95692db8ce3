"""``wrsrvd --instance NAME``: the configured server, as systemd or SMF runs it (readiness, status,
reload, stop), serving a real session to a real viewer."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import (
    Harness,
    admin_status,
    eventually,
    free_udp_port,
    kill_sessions,
    processes_with_link,
    shows_a_window,
)
from tests.supervisor.test_notify import NotifySocket
from wayray.server.admin import AdminClient

pytestmark = pytest.mark.slow


def _tree(root: Path, port: int, state: Path, run: Path, *, access_key: bool = True) -> None:
    """A `sessions = "command"` instance on loopback; viewers present its access key (``_key``), or
    (``access_key=False``) the test gives it client certificates."""
    etc = root / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "host.toml").write_text(f'[host]\nstate_dir = "{state}"\nruntime_dir = "{run}"\n')
    (etc / "servers.toml").write_text(
        f"""[server.lab]
listen = ["127.0.0.1"]
port = {port}
max_sessions = 4
sessions = "command"  # no login: these tests are about the instance, not wrsessd
session_command = ["foot", "--window-size-chars=80x24", "sh"]

[server.lab.output]
width = 1024
height = 768
"""
        + (f'\n[server.lab.admission]\naccess_key_file = "{_key(state)}"\n' if access_key else "")
    )


def _key(state: Path) -> Path:
    """The instance's access key (made by wrsrvd on its first start)."""
    return state / "lab" / "access.key"


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
        # wradm status says what a viewer must present.
        shown = subprocess.run(
            [script("wradm"), "status", "--root", str(tmp_path / "root"), "--instance", "lab"],
            env=h.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert re.search(rf"viewers need\s+the access key in {_key(state)}\n", shown.stdout), shown.stdout
        viewer = subprocess.run(
            [
                script("wrclient"),
                f"127.0.0.1:{port}",
                "--fingerprint",
                status["fingerprint"],
                "--headless",
                "--token",
                "instance-token",
                "--access-key-file",
                str(_key(state)),
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


def test_instance_requires_client_certificates_and_applies_the_clipboard_policy(tmp_path: Path) -> None:
    from tests.transport.helpers import ThrowawayCA

    h = Harness(tmp_path)
    port = free_udp_port()
    state, run = tmp_path / "var" / "lib" / "wayray", h.short / "run" / "wayray"
    root = tmp_path / "root"
    _tree(root, port, state, run, access_key=False)
    ca = ThrowawayCA(tmp_path / "ca")
    kiosk = ca.issue("thinclient-00:11:22:33:44:55")
    etc = root / "etc" / "wayray"
    with open(etc / "servers.toml", "a") as f:
        f.write(f'\n[server.lab.tls]\nclient_ca = "{ca.path}"\n')
    (etc / "policies.toml").write_text('[policy.default]\nclipboard = "to-client"\n')
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "lab", "--root", str(root)],
        env=h.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "wrsrvd.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        sock = run / "lab" / "admin.sock"
        fingerprint = admin_status(proc, sock)["fingerprint"]
        shown = subprocess.run(
            [script("wradm"), "status", "--admin-socket", str(sock)],
            env=h.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert re.search(rf"viewers need\s+a client certificate from {ca.path}\n", shown.stdout), (
            shown.stdout
        )
        base = [script("wrclient"), f"127.0.0.1:{port}", "--fingerprint", fingerprint, "--headless"]
        base += ["--token", "mtls-token", "--no-reconnect", "--timeout", "60"]
        refused = subprocess.run(
            [*base, "--snapshot", str(tmp_path / "no.png")],
            env=h.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 1 and "requires a client certificate" in refused.stderr
        pasted = h.home / "pasted.txt"
        clip = tmp_path / "clip.txt"
        clip.write_text(
            "settle\ntype printf out-of-session | wl-copy\nkey Return\nexpect-clipboard out-of-session\n"
            f"copy into-session\nwait 300\ntype wl-paste --no-newline > {pasted}; echo done >> {pasted}\n"
            "key Return\nsettle\n"
        )
        certified = [*base, "--client-cert", str(kiosk.cert), "--client-key", str(kiosk.key)]
        viewer = h.gated(
            clip,
            lambda gated: h.start_viewer([*certified, "--script", str(gated)]),
            lambda: shows_a_window(sock),
        )
        allowed = h.finish(viewer)
        assert allowed.returncode == 0, allowed.stderr
        # The script's last settle can come before the typed commands have run (a quiet screen while
        # wl-paste starts); the session carries on without the viewer, so wait for their last word.
        eventually(lambda: pasted.exists() and pasted.read_text().endswith("done\n"), "the pasted text")
        # to-client: the session's copy reached the viewer; the viewer's did not reach the session,
        # whose clipboard still holds its own text.
        assert pasted.read_text() == "out-of-sessiondone\n"
        log = (tmp_path / "wrsrvd.log").read_text()
        assert "client certificate verified: CN=thinclient-00:11:22:33:44:55" in log
    finally:
        proc.kill()
        proc.wait()
        kill_sessions(run / "lab" / "link.sock")
        h.cleanup()


def test_the_detached_timeout_of_the_policy_ends_a_session_nobody_views(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    port = free_udp_port()
    state, run = tmp_path / "var" / "lib" / "wayray", h.short / "run" / "wayray"
    root = tmp_path / "root"
    _tree(root, port, state, run)
    (root / "etc" / "wayray" / "policies.toml").write_text('[policy.default]\ndetached_timeout = "3s"\n')
    proc = subprocess.Popen(
        [script("wrsrvd"), "--instance", "lab", "--root", str(root)],
        env=h.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "wrsrvd.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    link = run / "lab" / "link.sock"
    try:
        sock = run / "lab" / "admin.sock"
        fingerprint = admin_status(proc, sock)["fingerprint"]
        viewer = subprocess.run(
            [script("wrclient"), f"127.0.0.1:{port}", "--fingerprint", fingerprint, "--headless"]
            + [
                "--token",
                "short-lived",
                "--access-key-file",
                str(_key(state)),
                "--snapshot",
                str(tmp_path / "s.png"),
            ],
            env=h.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert viewer.returncode == 0, viewer.stderr
        assert processes_with_link(link)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with AdminClient(sock) as admin:
                if not admin.request("sessions")["sessions"]:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the detached session was not ended")
        deadline = time.monotonic() + 30
        while processes_with_link(link) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_with_link(link), "the session's compositor is still running"
        assert "detached_timeout" in (tmp_path / "wrsrvd.log").read_text()
    finally:
        proc.kill()
        proc.wait()
        kill_sessions(link)
        h.cleanup()
