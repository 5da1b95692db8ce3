"""`wradm apply`: the diff and the exact commands, restarting exactly the changed instances, writing
atomically, recording state only when everything worked, and putting files back when a command fails.

PID 1 on the test machine is not systemd (and there is no SMF), so the commands are checked as
`--dry-run` prints them and through the runner the API takes; the real systemctl/svccfg do not run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, snapshot, wradm, write
from wayray import config as wc
from wayray.common.errors import WayRayError
from wayray.config.effect import server_digests
from wayray.supervisor.apply import Observed, Target, execute, plan_apply
from wayray.supervisor.generator import generate


def actions(root: Path, target: str) -> list[str]:
    res = wradm("--root", root, "apply", "--target", target, "--dry-run")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("would run:\n", 1)[1].splitlines() if "would run:" in res.stdout else []
    return [line.split("  #")[0].strip() for line in lines]


def apply_and_reload(root: Path) -> None:
    """What `wradm apply` + `systemctl daemon-reload` leave behind: state recorded, generator re-run."""
    assert wradm("--root", root, "apply", "--target", "systemd").returncode == 0
    gen = root / "run/systemd/generator"
    if gen.exists():
        import shutil

        shutil.rmtree(gen)
    gen.mkdir(parents=True)
    generate(gen, root)


def test_systemd_restarts_exactly_the_changed_instances(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "etc/wayray/servers.toml": '[server.a]\nport = 7100\n[server.b]\nport = 7101\npolicy = "p"\n',
            "etc/wayray/policies.toml": "[policy.p]\naudio = true\n",
        },
    )
    assert actions(root, "systemd") == [
        "systemctl daemon-reload",
        "systemctl restart wrsrvd@a.service wrsrvd@b.service",
        "systemctl restart wrsessd.socket wrsessd.service",
    ]
    apply_and_reload(root)
    assert actions(root, "systemd") == []
    res = wradm("--root", root, "apply", "--target", "systemd", "--dry-run")
    assert "nothing to do" in res.stdout

    # A policy only b uses: b reloads it (nothing is interrupted); a is left alone. Below --root
    # systemd cannot be asked whether the units are older than their sources: it reloads them.
    write(root, {"etc/wayray/policies.toml": '[policy.p]\naudio = false\nidle_logout = "4h"\n'})
    assert actions(root, "systemd") == ["systemctl daemon-reload", "systemctl reload wrsrvd@b.service"]
    apply_and_reload(root)

    # What needs a restart restarts: the port.
    write(
        root, {"etc/wayray/servers.toml": '[server.a]\nport = 7102\n[server.b]\nport = 7101\npolicy = "p"\n'}
    )
    assert actions(root, "systemd") == ["systemctl daemon-reload", "systemctl restart wrsrvd@a.service"]
    write(
        root, {"etc/wayray/servers.toml": '[server.a]\nport = 7100\n[server.b]\nport = 7101\npolicy = "p"\n'}
    )

    # A limit (a drop-in the generator writes) for a, and b disabled.
    write(
        root,
        {
            "etc/wayray/servers.toml": (
                '[server.a]\nport = 7100\nlimits.cpu_quota = "50%"\n[server.b]\nport = 7101\npolicy = "p"\n'
                "enabled = false\n"
            )
        },
    )
    res = wradm("--root", root, "apply", "--target", "systemd", "--dry-run")
    assert "+CPUQuota=50%" in res.stdout
    assert "-symlink to /usr/lib/systemd/system/wrsrvd@.service" in res.stdout
    # The limit is in a's unit: systemd applies it to the running instance at daemon-reload.
    assert actions(root, "systemd") == ["systemctl daemon-reload", "systemctl stop wrsrvd@b.service"]


def test_host_settings_restart_only_what_reads_them(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    apply_and_reload(root)
    # The PAM service is the launcher's: it restarts, with its socket; the server instance does not.
    write(root, {"etc/wayray/host.toml": '[host]\npam_service = "wayray-test"\n'})
    assert actions(root, "systemd") == ["systemctl restart wrsessd.socket wrsessd.service"]
    apply_and_reload(root)
    # The admin socket is the server instances': they restart, the launcher does not.
    write(
        root,
        {
            "etc/wayray/host.toml": '[host]\npam_service = "wayray-test"\n'
            'admin_socket = "/run/wayray/a-{instance}.sock"\n'
        },
    )
    assert actions(root, "systemd") == ["systemctl daemon-reload", "systemctl restart wrsrvd@main.service"]


def test_a_moved_runtime_directory_moves_the_usb_attach_helpers_socket_too(tmp_path: Path) -> None:
    """wrsrvd asks the attach helper at <runtime_dir>/usb-attach.sock: apply moves the helper's socket
    (a drop-in) and restarts it with the rest."""
    root = copy_examples(tmp_path)
    apply_and_reload(root)
    write(root, {"etc/wayray/host.toml": '[host]\nruntime_dir = "/run/wr"\n'})
    planned = actions(root, "systemd")
    assert "systemctl restart wrusbattach.socket wrusbattach.service" in planned, planned
    res = wradm("--root", root, "apply", "--target", "systemd", "--dry-run")
    assert "ListenStream=/run/wr/usb-attach.sock" in res.stdout, res.stdout


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    before = snapshot(root)
    for target in ("systemd", "smf"):
        assert wradm("--root", root, "apply", "--target", target, "--dry-run").returncode == 0
    assert snapshot(root) == before


def test_smf_writes_the_profile_and_refreshes_changed_instances(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    res = wradm("--root", root, "apply", "--target", "smf")
    assert res.returncode == 0, res.stderr
    profile = root / "etc/svc/profile/site/wayray.xml"
    assert b'<instance name="main" enabled="true">' in profile.read_bytes()
    assert (root / "var/lib/wayray/wradm-owned").read_text().splitlines()[1:] == [
        "etc/svc/profile/site/wayray.xml"
    ]
    assert "not run (--root" in res.stdout

    write(root, {"etc/wayray/servers.toml": "[server.main]\nport = 7200\n[server.new]\nport = 7300\n"})
    assert actions(root, "smf") == [
        "svccfg apply /etc/svc/profile/site/wayray.xml",
        "svcadm disable -s svc:/application/wayray/wrsrvd:lab",  # [server.lab] is gone
        "svccfg -s svc:/application/wayray/wrsrvd delete lab",
        "svcadm refresh svc:/application/wayray/wrsrvd:main",
        "svcadm restart svc:/application/wayray/wrsrvd:main",
        "svcadm refresh svc:/application/wayray/wrsrvd:new",
        "svcadm restart svc:/application/wayray/wrsrvd:new",
    ]
    assert wradm("--root", root, "apply", "--target", "smf").returncode == 0
    write(root, {"etc/wayray/servers.toml": "[server.main]\nport = 7200\n"})
    assert actions(root, "smf") == [
        "svccfg apply /etc/svc/profile/site/wayray.xml",
        "svcadm disable -s svc:/application/wayray/wrsrvd:new",
        "svccfg -s svc:/application/wayray/wrsrvd delete new",
    ]


def test_a_profile_it_did_not_write_is_not_overwritten(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    write(root, {"etc/svc/profile/site/wayray.xml": "<!-- the admin's own -->\n"})
    before = snapshot(root)
    res = wradm("--root", root, "apply", "--target", "smf")
    assert res.returncode == 1
    assert "not overwriting files wradm did not write" in res.stderr
    assert snapshot(root) == before


def test_the_commands_run_in_order_and_state_is_recorded_after_them(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    ran: list[tuple[str, ...]] = []
    plan = plan_apply(wc.load(root), Target.SMF)
    execute(plan, runner=lambda argv: ran.append(tuple(argv)))
    assert ran == [a.argv for a in plan.actions]
    assert ran[0] == ("svccfg", "apply", "/etc/svc/profile/site/wayray.xml")
    state = json.loads((root / "var/lib/wayray/wradm-applied.json").read_text())
    assert set(state["units"]) == {
        "svc:/application/wayray/wrsrvd:main",
        "svc:/application/wayray/wrsrvd:lab",
        "svc:/application/wayray/wrsessd:default",
    }


def test_a_failed_command_puts_the_files_back_and_records_nothing(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    execute(plan_apply(wc.load(root), Target.SMF), runner=lambda argv: None)
    write(root, {"etc/wayray/servers.toml": "[server.main]\nport = 7200\n"})
    before = snapshot(root)

    def failing(argv: Sequence[str]) -> None:
        if argv[0] == "svcadm":
            raise WayRayError(f"`{' '.join(argv)}` failed (exit status 1)")

    with pytest.raises(WayRayError, match="svcadm disable -s svc:/application/wayray/wrsrvd:lab"):
        execute(plan_apply(wc.load(root), Target.SMF), runner=failing)
    assert snapshot(root) == before


def _live(root: Path, observed: Observed) -> list[str]:
    return [str(a) for a in plan_apply(wc.load(root), Target.SYSTEMD, observed).actions]


def booted(root: Path) -> Path:
    """The tree as a booted system has it: the generator ran at boot (no apply yet)."""
    gen = root / "run/systemd/generator"
    gen.mkdir(parents=True)
    generate(gen, root)
    return root


def test_a_first_apply_asks_what_runs_instead_of_restarting_everything(tmp_path: Path) -> None:
    # A fresh install: the package started main and wrsessd with the shipped files, and there is no
    # record of an apply. What runs says what it runs with: nothing to do, wrsessd is not touched.
    root = booted(copy_examples(tmp_path))
    config = wc.load(root)
    running = server_digests(config, config.servers["main"])
    after = time.time() + 60  # wrsessd started after host.toml last changed
    assert _live(root, Observed({"wrsrvd@main.service": running}, launcher_started=after)) == []
    # The launcher is socket-activated: when it does not run, it reads the files when it starts.
    assert _live(root, Observed({"wrsrvd@main.service": running}, launcher_started=None)) == []
    # Started before host.toml changed: it runs an older host.toml.
    before = (root / "etc/wayray/host.toml").stat().st_mtime - 60
    assert _live(root, Observed({"wrsrvd@main.service": running}, launcher_started=before)) == [
        "systemctl restart wrsessd.socket wrsessd.service"
    ]


def test_what_a_running_instance_reports_decides_reload_restart_or_start(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    apply_and_reload(root)  # a record: it must not override what the instance itself says
    config = wc.load(root)
    running = dict(server_digests(config, config.servers["main"]))
    unit = "wrsrvd@main.service"
    assert _live(root, Observed({unit: running})) == []
    assert _live(root, Observed({unit: {**running, "reload": "older"}})) == [
        "systemctl reload wrsrvd@main.service"
    ]
    assert _live(root, Observed({unit: {**running, "restart": "older"}})) == [
        "systemctl restart wrsrvd@main.service"
    ]
    # Enabled, not running (stopped by hand, or failed on a configuration error since fixed).
    assert _live(root, Observed({})) == ["systemctl daemon-reload", "systemctl start wrsrvd@main.service"]
    # Running but silent about its configuration (an older wrsrvd): the record decides.
    assert _live(root, Observed({unit: None})) == []
    # Disabled in the configuration but running: stopped.
    assert _live(root, Observed({unit: running, "wrsrvd@lab.service": None})) == [
        "systemctl daemon-reload",
        "systemctl stop wrsrvd@lab.service",
    ]


def test_apply_leaves_no_unit_older_than_its_sources(tmp_path: Path) -> None:
    # servers.toml edited (SourcePath= makes systemd warn "changed on disk. Run 'systemctl
    # daemon-reload'") but nothing that needs a command: apply still reloads systemd's units.
    root = booted(copy_examples(tmp_path))
    config = wc.load(root)
    running = server_digests(config, config.servers["main"])
    stale = Observed({"wrsrvd@main.service": running}, stale=frozenset({"wrsrvd@main.service"}))
    plan = plan_apply(config, Target.SYSTEMD, stale)
    assert [str(a) for a in plan.actions] == ["systemctl daemon-reload"]
    assert "wrsrvd@main.service is older than its sources" in plan.actions[0].why
