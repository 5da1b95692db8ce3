"""wradm as an operator meets it: exit codes, --root anywhere, help that helps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, snapshot, wradm, write


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["render", "--target", "systemd"],  # no --out
        ["render", "--target", "upstart", "--out", "x"],
        ["check", "--bogus"],
        [],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    res = wradm(*args)
    assert res.returncode == 2, res.stderr
    assert "usage: wradm" in res.stderr


def test_help_lists_every_command() -> None:
    res = wradm("--help")
    assert res.returncode == 0
    for command in ("check", "show", "render", "apply"):
        assert f"    {command} " in res.stdout
    assert "exit status: 0 success, 1" in res.stdout


def test_root_may_come_before_or_after_the_command(tmp_path: Path) -> None:
    write(tmp_path, {"etc/wayray/servers.toml": "[server.only]\n"})
    for args in (["--root", str(tmp_path), "check"], ["check", "--root", str(tmp_path)]):
        res = wradm(*args)
        assert res.returncode == 0, res.stderr
        assert "servers: only" in res.stdout


def test_check_for_an_instance_that_is_not_configured(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    res = wradm("--root", tmp_path, "check", "--instance", "mian")
    assert res.returncode == 1
    assert (
        "no server instance 'mian' is configured (configured: lab, main) (did you mean 'main'?)"
        in res.stderr
    )


#: Settings that are valid but earn a warning, for main and lab (a pool whose members share nothing),
#: and for a kiosk.
NOT_YET_SET = '[server.main]\npool = "main"\n[server.lab]\npool = "lab"\n'
#: A kiosk with a pool and nothing to trust its servers through: a warning (its command line may).
NOT_YET_CLIENT = '[client]\npool = "office"\n'


def test_each_program_checks_the_files_it_reads_and_quiet_means_errors_only(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    # Settings that do less than one may believe (a pool without peers) are a warning where they are
    # set; still a valid config. (The shipped examples set none of them.)
    write(
        tmp_path,
        {
            "etc/wayray/servers.toml.d/50-pools.toml": NOT_YET_SET,
            "etc/wayray/client.toml.d/50-pool.toml": NOT_YET_CLIENT,
        },
    )
    everything = wradm("--root", tmp_path, "check")
    assert everything.returncode == 0
    assert "client.toml.d/50-pool.toml" in everything.stderr and "50-pools.toml" in everything.stderr
    # What wrsrvd@main reads, and nothing of the kiosk's client.toml or of another instance's table.
    main = wradm("--root", tmp_path, "check", "--instance", "main").stderr.splitlines()
    pool = (
        "/etc/wayray/servers.toml.d/50-pools.toml:2:8: warning: server.main.pool: pool 'main' has no "
        "peers.fingerprints or peers.ca"
    )
    assert any(line.startswith(f"{tmp_path}{pool}") for line in main), main
    assert not any("/client.toml" in line or "server.lab." in line for line in main), main
    # What a kiosk's wrclient reads: client.toml (and its drop-ins) only.
    kiosk = wradm("--root", tmp_path, "check", "--client").stderr.splitlines()
    warnings = [line for line in kiosk if ": warning: " in line]
    assert warnings and all("/etc/wayray/client.toml" in line for line in warnings), kiosk
    # --quiet: errors only (the unit's ExecReload and SMF's start method use it).
    res = wradm("--root", tmp_path, "check", "--quiet", "--instance", "main")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    # A broken kiosk file does not fail a server's check, nor the reverse.
    write(tmp_path, {"etc/wayray/client.toml": '[client]\nkiosk = "yes"\n'})
    assert wradm("--root", tmp_path, "check", "--quiet", "--instance", "main").returncode == 0
    res = wradm("--root", tmp_path, "check", "--quiet", "--client")
    assert res.returncode == 1 and res.stderr.startswith(f"{tmp_path}/etc/wayray/client.toml:2:9: error:")
    assert wradm("--root", tmp_path, "check", "--quiet", "--launcher").returncode == 0
    for name in ("usb.toml", "client.toml", "policies.toml", "servers.toml", "servers.toml.d/50-pools.toml"):
        (tmp_path / "etc/wayray" / name).unlink()
    res = wradm("--root", tmp_path, "check", "--quiet", "--instance", "main")
    assert (res.returncode, res.stdout) == (1, "")  # main is gone now
    assert "no server instance 'main' is configured" in res.stderr
    (tmp_path / "etc/wayray/servers.toml").write_text("[server.main]\nport = 7300\n")
    res = wradm("--root", tmp_path, "check", "--quiet", "--instance", "main")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_show_of_a_broken_configuration_still_shows_but_fails(tmp_path: Path) -> None:
    write(tmp_path, {"etc/wayray/servers.toml": '[server.a]\nport = "x"\nmax_sessions = 5\n'})
    res = wradm("--root", tmp_path, "show", "server.a.max_sessions")
    assert res.returncode == 1
    assert "server.a.port: expected integer" in res.stderr
    assert res.stdout == "[server.a]\nmax_sessions = 5\n"


def test_render_removes_what_it_no_longer_produces_and_keeps_foreign_files(tmp_path: Path) -> None:
    root = write(tmp_path / "root", {"etc/wayray/servers.toml": "[server.a]\n[server.b]\nport = 7101\n"})
    out = tmp_path / "out"
    assert wradm("--root", root, "render", "--target", "systemd", "--out", out).returncode == 0
    (out / "README").write_text("mine")
    write(root, {"etc/wayray/servers.toml": "[server.a]\n"})
    res = wradm("--root", root, "render", "--target", "systemd", "--out", out, "-v")
    assert res.returncode == 0, res.stderr
    assert "removed: wayray.target.wants/wrsrvd@b.service" in res.stdout
    assert not (out / "wrsrvd@b.service.d").exists()
    assert (out / "README").read_text() == "mine"
    assert (
        os.readlink(out / "wayray.target.wants/wrsrvd@a.service")
        == "/usr/lib/systemd/system/wrsrvd@.service"
    )


def test_render_does_not_overwrite_files_it_did_not_write(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "root")
    out = tmp_path / "out"
    write(out, {"wrsessd.service": "[Service]\nExecStart=/usr/bin/mine\n"})
    before = snapshot(out)
    res = wradm("--root", root, "render", "--target", "systemd", "--out", out)
    assert res.returncode == 1
    assert f"not overwriting files wradm did not write: {out}/wrsessd.service" in res.stderr
    assert "hint: move them away (or pass --force" in res.stderr
    assert snapshot(out) == before
    assert wradm("--root", root, "render", "--target", "systemd", "--out", out, "--force").returncode == 0


def test_render_refuses_directories_systemd_cannot_express(tmp_path: Path) -> None:
    root = write(tmp_path, {"etc/wayray/host.toml": '[host]\nstate_dir = "/srv/wayray"\n'})
    res = wradm("--root", root, "render", "--target", "systemd", "--out", tmp_path / "out")
    assert res.returncode == 1
    assert (
        f"{root}/etc/wayray/host.toml:2:13: error: host.state_dir: /srv/wayray is not below /var/lib: "
        "systemd units keep this directory below /var/lib (StateDirectory=)"
    ) in res.stderr
    assert not (tmp_path / "out").exists()
    # SMF has no such rule.
    assert wradm("--root", root, "render", "--target", "smf", "--out", tmp_path / "smf").returncode == 0


# --- the live-state commands: sessions, session, status ----------------------------------------------


def test_session_commands_say_when_the_instance_is_not_running(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(
        tmp_path,
        {
            "etc/wayray/servers.toml": "[server.lab]\n",
            "etc/wayray/host.toml": f'[host]\nruntime_dir = "{run}"\n',
        },
    )
    for args in (["sessions"], ["status"], ["session", "kill", "0123abcd"]):
        res = wradm(*args, "--root", str(tmp_path))
        assert res.returncode == 1, res.stderr
        assert f"wrsrvd@lab is not running (nothing listens on {run}/lab/admin.sock)" in res.stderr
        assert "systemctl start" in res.stderr
    res = wradm("sessions", "--admin-socket", str(tmp_path / "none.sock"))
    assert res.returncode == 1 and "is not running" in res.stderr
    res = wradm("sessions", "--root", str(tmp_path), "--instance", "labs")
    assert res.returncode == 1 and "no server instance 'labs'" in res.stderr


def test_session_commands_need_to_know_which_instance(tmp_path: Path) -> None:
    write(tmp_path, {"etc/wayray/servers.toml": "[server.a]\n[server.b]\nport = 7101\n"})
    res = wradm("sessions", "--root", str(tmp_path))
    assert res.returncode == 2 and "several server instances are enabled (a, b)" in res.stderr
    res = wradm("session", "stop", "x")
    assert res.returncode == 2 and "invalid choice: 'stop'" in res.stderr


def test_a_disabled_instance_does_not_count_for_the_live_commands(tmp_path: Path) -> None:
    # The shipped examples: main enabled, lab with enabled = false. `wradm status` means main.
    run = tmp_path / "run"
    copy_examples(tmp_path)
    write(tmp_path, {"etc/wayray/host.toml": f'[host]\nruntime_dir = "{run}"\n'})
    for command in (["status"], ["sessions"]):
        res = wradm(*command, "--root", str(tmp_path))
        assert res.returncode == 1, res.stderr
        assert f"wrsrvd@main is not running (nothing listens on {run}/main/admin.sock)" in res.stderr
    # Asked for by name, a disabled instance is still reachable (it may run by hand).
    res = wradm("status", "--root", str(tmp_path), "--instance", "lab")
    assert f"wrsrvd@lab is not running (nothing listens on {run}/lab/admin.sock)" in res.stderr
    write(tmp_path, {"etc/wayray/servers.toml": "[server.main]\nenabled = false\n"})
    res = wradm("status", "--root", str(tmp_path))
    assert res.returncode == 2 and "no server instance is enabled (disabled: main)" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: another user is refused")
def test_the_admin_socket_refuses_other_users(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.conftest import script

    os.chmod(tmp_path, 0o755)
    path = tmp_path / "admin.sock"
    with socket.socket(socket.AF_UNIX) as s:
        old = os.umask(0o177)
        try:
            s.bind(str(path))
        finally:
            os.umask(old)
        s.listen()
        res = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
             "import sys; from wayray.admin.cli import main; sys.exit(main(sys.argv[1:]))",
             "sessions", "--admin-socket", str(path)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": _pythonpath()},
        )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert f"permission denied: {path}" in res.stderr and "use sudo" in res.stderr
    assert script("wradm")  # the console script exists (the child above uses the module directly)


def _pythonpath() -> str:
    import sys

    from tests.conftest import REPO

    site = next(p for p in sys.path if p.endswith("site-packages"))
    return f"{REPO}:{site}"


@pytest.mark.parametrize("command", [["render", "--target", "smf", "--out", "out"], ["apply", "--dry-run"]])
def test_each_error_is_printed_once(tmp_path: Path, command: list[str]) -> None:
    write(tmp_path, {"etc/wayray/servers.toml": "[server.main]\nportt = 7100\n"})
    res = wradm("--root", tmp_path, *command)
    assert res.returncode == 1
    assert res.stderr.count("unknown key 'portt' (did you mean 'port'?)") == 1, res.stderr
    assert res.stderr.endswith("wradm: 1 error\n"), res.stderr


def test_show_and_render_count_the_warnings_that_check_lists(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    write(tmp_path, {"etc/wayray/servers.toml.d/50-pools.toml": NOT_YET_SET})
    listed = wradm("--root", tmp_path, "check").stderr.splitlines()
    assert len(listed) >= 2 and all(": warning: " in line for line in listed), listed
    for command in (["show"], ["render", "--target", "systemd", "--out", str(tmp_path / "out")]):
        res = wradm("--root", tmp_path, *command)
        assert res.returncode == 0, res.stderr
        assert res.stderr == f"wradm: {len(listed)} warnings (`wradm check` lists them)\n"


def test_check_warns_when_the_window_manager_is_not_installed(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    write(tmp_path, {"etc/wayray/session.toml": '[session]\nwindow_manager = "wr-wm-tilling --x"\n'})
    res = wradm("--root", tmp_path, "check", "--launcher")
    assert res.returncode == 0, res.stderr  # a warning: the session still runs, under the built-in WM
    line = next((x for x in res.stderr.splitlines() if "session.window_manager" in x), "")
    assert line.startswith(f"{tmp_path}/etc/wayray/session.toml:2:18: warning: session.window_manager:"), (
        line
    )
    assert "'wr-wm-tilling' is not installed" in line and "built-in" in line
    # Installed in the session's PATH (below --root): no warning; nor for the built-in one ("").
    tool = tmp_path / "usr/bin/wr-wm-tilling"
    tool.parent.mkdir(parents=True, exist_ok=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert "window_manager" not in wradm("--root", tmp_path, "check", "--launcher").stderr
    tool.chmod(0o644)  # there, but not a program
    assert "not installed" in wradm("--root", tmp_path, "check", "--launcher").stderr
    write(tmp_path, {"etc/wayray/session.toml": '[session]\nwindow_manager = "/opt/wm/bin/mywm"\n'})
    assert "'/opt/wm/bin/mywm' is not installed" in wradm("--root", tmp_path, "check").stderr
    write(tmp_path, {"etc/wayray/session.toml": '[session]\nwindow_manager = ""\n'})
    assert "window_manager" not in wradm("--root", tmp_path, "check", "--launcher").stderr
