"""`wradm apply`: the diff and the exact commands, restarting exactly the changed instances, writing
atomically, recording state only when everything worked, and putting files back when a command fails.

PID 1 on the test machine is not systemd (and there is no SMF), so the commands are checked as
`--dry-run` prints them and through the runner the API takes; the real systemctl/svccfg do not run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, snapshot, wradm, write
from wayray import config as wc
from wayray.common.errors import WayRayError
from wayray.supervisor.apply import Target, execute, plan_apply
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

    # A policy only b uses: only b restarts. No unit file changes, but systemd still reloads so that
    # SourcePath= no longer reports the configuration as changed on disk.
    write(root, {"etc/wayray/policies.toml": "[policy.p]\naudio = false\n"})
    assert actions(root, "systemd") == ["systemctl daemon-reload", "systemctl restart wrsrvd@b.service"]
    apply_and_reload(root)

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
    assert actions(root, "systemd") == [
        "systemctl daemon-reload",
        "systemctl stop wrsrvd@b.service",
        "systemctl restart wrsrvd@a.service",
    ]


def test_host_settings_restart_the_launcher_and_its_socket(tmp_path: Path) -> None:
    root = copy_examples(tmp_path)
    apply_and_reload(root)
    write(root, {"etc/wayray/host.toml": '[host]\npam_service = "wayray-test"\n'})
    assert actions(root, "systemd") == [
        "systemctl daemon-reload",
        "systemctl restart wrsrvd@main.service",
        "systemctl restart wrsessd.socket wrsessd.service",
    ]


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
