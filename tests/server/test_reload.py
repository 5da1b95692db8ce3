"""A running ``wrsrvd --instance``'s configuration, as an operator changes it: `wradm reload` (what
`systemctl reload` and SMF's refresh run) takes a valid change, refuses a broken one with its
file:line:col errors while the server keeps the configuration it has, and says what needs a
restart; a broken configuration at start stops wrsrvd with status 78 and the errors, once; and it
judges only the files it reads (a kiosk's client.toml neither stops nor reloads it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, script
from tests.e2e.harness import Harness, admin_status, free_udp_port, kill_sessions
from tests.supervisor.test_notify import NotifySocket
from wayray.config import load
from wayray.config.effect import server_digests

pytestmark = pytest.mark.slow

SERVERS = """[server.lab]
listen = ["127.0.0.1"]
port = {port}
policy = "{policy}"
sessions = "command"  # no login: these tests are about the instance's configuration
session_command = ["true"]

[server.lab.admission]  # no login: viewers present a key, on loopback too
access_key_file = "{key}"
"""


class Instance:
    def __init__(self, tmp: Path) -> None:
        self.h = Harness(tmp)
        self.tmp = tmp
        self.root = tmp / "root"
        self.etc = self.root / "etc" / "wayray"
        self.etc.mkdir(parents=True)
        self.run = self.h.short / "run" / "wayray"
        self.port = free_udp_port()
        self.key = tmp / "state" / "lab" / "access.key"
        (self.etc / "host.toml").write_text(
            f'[host]\nstate_dir = "{tmp / "state"}"\nruntime_dir = "{self.run}"\n'
        )
        self.servers(policy="default")
        self.log = tmp / "wrsrvd.log"
        self.notify: NotifySocket | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def servers(self, **values: Any) -> None:
        (self.etc / "servers.toml").write_text(
            SERVERS.format(**{"port": self.port, "key": self.key, **values})
        )

    def start(self) -> subprocess.Popen[bytes]:
        self.notify = NotifySocket(str(self.tmp / "notify"))
        self.proc = subprocess.Popen(
            [script("wrsrvd"), "--instance", "lab", "--root", str(self.root)],
            env={**self.h.env, "NOTIFY_SOCKET": str(self.tmp / "notify")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )
        assert self.notify.receive()[1].get("READY") == "1"
        return self.proc

    def status(self) -> dict[str, Any]:
        assert self.proc is not None
        return admin_status(self.proc, self.run / "lab" / "admin.sock", self.log)

    def wradm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script("wradm"), "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.h.env,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.notify is not None:
            self.notify.close()
        # Sessions outlive wrsrvd by design; the harness's cleanup looks for them at another link path.
        kill_sessions(self.run / "lab" / "link.sock")
        self.h.cleanup()


@contextmanager
def instance(tmp_path: Path) -> Iterator[Instance]:
    inst = Instance(tmp_path)
    try:
        yield inst
    finally:
        inst.stop()


def test_reload_takes_a_valid_change_and_refuses_a_broken_one(tmp_path: Path) -> None:
    with instance(tmp_path) as inst:
        inst.start()
        first = inst.status()
        assert first["policy"]["idle_timeout_s"] is None
        assert first["config"]["digests"] == server_digests(load(inst.root), load(inst.root).server("lab"))
        assert inst.notify is not None

        # A valid change a reload takes: in effect at once, nothing restarted.
        (inst.etc / "policies.toml").write_text('[policy.default]\nidle_logout = "4h"\n')
        res = inst.wradm("reload", "--instance", "lab")
        assert (res.returncode, res.stdout, res.stderr) == (0, "wrsrvd@lab: configuration reloaded\n", "")
        assert inst.notify.receive()[1].get("RELOADING") == "1"
        assert inst.notify.receive()[1].get("READY") == "1"
        after = inst.status()
        assert after["policy"]["idle_timeout_s"] == 4 * 3600 and after["pid"] == first["pid"]
        assert after["config"]["digests"]["restart"] == first["config"]["digests"]["restart"]
        assert after["config"]["digests"]["reload"] != first["config"]["digests"]["reload"]

        # A typo: refused with its position; the server runs on with the configuration it has.
        inst.servers(policy="ofice")
        res = inst.wradm("reload", "--instance", "lab")
        assert res.returncode == 1
        error = (
            re.escape(f"{inst.etc}/servers.toml:")
            + r"4:10: error: server\.lab\.policy: no policy named \"ofice\""
        )
        assert re.search("^" + error, res.stderr, re.M), res.stderr
        assert (
            "wradm: wrsrvd@lab refused the configuration (1 error) and keeps running with the one it has"
            in (res.stderr)
        )
        assert inst.status()["policy"]["idle_timeout_s"] == 4 * 3600
        log = inst.log.read_text()
        assert re.search(r"configuration not reloaded \(the running one stays\): " + error, log), log
        assert inst.notify.receive()[1].get("RELOADING") == "1"
        assert inst.notify.receive()[1].get("READY") == "1"  # still serving

        # SIGHUP (`kill -HUP`) goes the same way.
        os.kill(first["pid"], signal.SIGHUP)
        assert inst.notify.receive()[1].get("RELOADING") == "1"
        assert inst.notify.receive()[1].get("READY") == "1"
        assert inst.status()["pid"] == first["pid"]

        # A kiosk's file is not the server's business: a broken client.toml does not stop a reload.
        inst.servers(policy="default")
        (inst.etc / "client.toml").write_text('[client]\nkiosk = "yes"\n')
        res = inst.wradm("reload", "--instance", "lab")
        assert res.returncode == 0, res.stderr
        assert "client.toml" not in inst.log.read_text()

        # What a reload cannot change keeps its running value, and the operator is told.
        (inst.etc / "servers.toml").write_text(
            SERVERS.format(port=inst.port + 1, policy="default", key=inst.key)
        )
        res = inst.wradm("reload", "--instance", "lab")
        assert res.returncode == 0
        assert "wrsrvd@lab: changed, but in effect only after a restart: port" in res.stderr
        assert inst.status()["port"] == inst.port


def test_a_broken_configuration_stops_wrsrvd_once_with_status_78(tmp_path: Path) -> None:
    with instance(tmp_path) as inst:
        inst.servers(policy="ofice")
        (inst.etc / "client.toml").write_text('[client]\npool = "x"\n')  # a kiosk's warning: not shown
        res = subprocess.run(
            [script("wrsrvd"), "--instance", "lab", "--root", str(inst.root)],
            env=inst.h.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 78  # EX_CONFIG: RestartPreventExitStatus=78 keeps systemd from looping
        lines = res.stderr.splitlines()
        assert lines[0].startswith(
            f"{inst.etc}/servers.toml:4:10: error: server.lab.policy: no policy named"
        )
        assert lines[-2:] == [
            "wrsrvd: error: wrsrvd@lab not started: the configuration has 1 error (above)",
            "wrsrvd: hint: fix it (`wradm check --instance lab` lists them again), then start it: "
            "systemctl start wrsrvd@lab (SMF: svcadm clear wrsrvd:lab)",
        ]
        assert "client.toml" not in res.stderr
        # The same configuration, but the broken file is the kiosk's: the server starts.
        inst.servers(policy="default")
        (inst.etc / "client.toml").write_text('[client]\nkiosk = "yes"\n')
        inst.start()
        assert inst.status()["name"] == "lab"
        assert "client.toml" not in inst.log.read_text()


def test_a_disabled_instance_started_by_hand_is_checked_like_an_enabled_one(tmp_path: Path) -> None:
    # `wradm check` leaves a disabled table's open door alone (nothing starts it), but
    # `systemctl start wrsrvd@lab` starts it all the same: it must stop as a configuration error
    # (78, no restart every 2 s) with the position, not as a failure that systemd retries.
    with instance(tmp_path) as inst:
        (inst.etc / "servers.toml").write_text(
            f'[server.lab]\nenabled = false\nsessions = "command"\nport = {inst.port}\n'
            'session_command = ["true"]\n'
        )
        assert inst.wradm("check", "--quiet").returncode == 0
        res = subprocess.run(
            [script("wrsrvd"), "--instance", "lab", "--root", str(inst.root)],
            env=inst.h.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 78, res.stderr
        assert res.stderr.startswith(
            f'{inst.etc}/servers.toml:3:12: error: server.lab.sessions: sessions = "command" on :: '
        ), res.stderr
        assert "wrsrvd@lab not started: the configuration has 1 error (above)" in res.stderr


def test_the_smf_refresh_method_reports_a_refused_configuration_and_keeps_the_instance(
    tmp_path: Path,
) -> None:
    # The method script as SMF runs it (svc-wrsrvd refresh INSTANCE), with its paths pointed here.
    with instance(tmp_path) as inst:
        inst.start()
        method = (REPO / "smf/svc-wrsrvd").read_text()
        method = method.replace(". /lib/svc/share/smf_include.sh", "SMF_EXIT_OK=0; SMF_EXIT_ERR_CONFIG=96")
        method = method.replace("/opt/wayray/bin/wradm", f"{script('wradm')} --root {inst.root}")
        (tmp_path / "svc-wrsrvd").write_text(method)
        env = {**inst.h.env, "SMF_FMRI": "svc:/application/wayray/wrsrvd:lab"}
        inst.servers(policy="ofice")
        res = subprocess.run(
            ["sh", str(tmp_path / "svc-wrsrvd"), "refresh", "lab"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # svc.startd would put the instance into maintenance (stopping the server) on a failed refresh.
        assert res.returncode == 0
        assert "servers.toml:4:10: error: server.lab.policy" in res.stderr
        assert "fix them, then: svcadm refresh svc:/application/wayray/wrsrvd:lab" in res.stderr
        assert inst.proc is not None and inst.status()["pid"] == inst.proc.pid
        inst.servers(policy="default")
        (inst.etc / "policies.toml").write_text('[policy.default]\nidle_logout = "1h"\n')
        res = subprocess.run(
            ["sh", str(tmp_path / "svc-wrsrvd"), "refresh", "lab"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (res.returncode, res.stderr) == (0, "")
        assert inst.status()["policy"]["idle_timeout_s"] == 3600


def _changed_value(setting: Any) -> Any:
    """A valid value other than the default, for each kind of setting of servers.toml/host.toml."""
    from wayray.config import types as t

    vt = setting.type
    samples: dict[type, Any] = {
        t.Bool: not setting.default if isinstance(setting.default, bool) else True,
        t.Number: 2.0,
        t.IPAddress: ["192.0.2.7"],
        t.Command: ["sh", "-c", "true"],
        t.String: "lab2",
        t.Size: "1G",
        t.Percent: "50%",
        t.Bitrate: "4M",
        t.AbsPath: "/var/lib/elsewhere/x.pem",
        t.UserName: "someone",
    }
    if isinstance(vt, t.ListOf):
        return samples.get(type(vt.item), [vt.item.values[-1]] if isinstance(vt.item, t.Choice) else None)
    if isinstance(vt, t.Choice):
        return next((v for v in vt.values if v != str(setting.default)), None)
    if isinstance(vt, t.Integer):
        value = (vt.minimum or 0) + 1
        return value if value != setting.default else value + 1
    return samples.get(type(vt))


def test_what_the_reference_says_a_reload_takes_is_what_wrsrvd_reloads() -> None:
    # For every key of the files wrsrvd reads: change it, make the server's settings from both
    # configurations, and compare with FrontDoor.RESTART_ONLY (what a reload leaves at its running
    # value). A key the reference calls "reload" must change nothing restart-only; one it calls
    # "restart" must change something that is.
    from wayray.config.model import FILES_BY_NAME, HostConfig, ServerConfig
    from wayray.config.schema import Applies, applied_settings
    from wayray.server.frontdoor import FrontDoor
    from wayray.server.settings import instance_settings

    def settings(server: ServerConfig, host: HostConfig) -> Any:
        from wayray.config import PolicyConfig

        return instance_settings(server, PolicyConfig(name="default"), host)

    import dataclasses

    from wayray.config.model import TLSSettings

    pem = Path("/var/lib/wayray/lab/tls")
    # On loopback: a command instance elsewhere needs an access key or client certificates.
    base_server = ServerConfig(
        name="lab",
        listen=("127.0.0.1",),
        tls=TLSSettings(cert=pem / "cert.pem", key=pem / "key.pem"),  # type: ignore[arg-type]
    )
    base_host = HostConfig(
        launcher_socket=Path("/run/wayray/wrsessd.sock"), admin_socket="/run/wayray/{instance}/a"
    )  # type: ignore[arg-type]
    checked = 0
    for table, record, base in (("server", ServerConfig, base_server), ("host", HostConfig, base_host)):
        spec = FILES_BY_NAME["servers.toml" if table == "server" else "host.toml"]
        for item in applied_settings(record, frozenset({spec.applies})):
            value = _changed_value(item.setting)
            if value is None or item.key == "admin_socket":
                continue
            raw = item.setting.type.parse(value)  # type: ignore[union-attr]
            changed: Any = base
            if len(item.attrs) == 1:
                changed = dataclasses.replace(base, **{item.attrs[0]: raw})
            else:
                inner = getattr(base, item.attrs[0])
                changed = dataclasses.replace(
                    base, **{item.attrs[0]: dataclasses.replace(inner, **{item.attrs[1]: raw})}
                )
            before = settings(base_server, base_host)
            after = settings(changed, base_host) if table == "server" else settings(base_server, changed)
            fields = {
                f.name
                for f in dataclasses.fields(before)
                if getattr(before, f.name) != getattr(after, f.name)
            }
            restart_only = fields & set(FrontDoor.RESTART_ONLY)
            if Applies.RESTART in item.applies and Applies.RELOAD not in item.applies:
                if Applies.LAUNCHER in item.applies or Applies.UNIT in item.applies:
                    continue  # read by more than wrsrvd (the launcher, the unit): its own test
                assert restart_only, (
                    f"{table}.{item.key} is 'restart' but a reload would apply it ({fields})"
                )
            if Applies.RELOAD in item.applies:
                assert not restart_only, f"{table}.{item.key} is 'reload' but a reload keeps {restart_only}"
            checked += 1
    assert checked >= 15
