"""wrsrvd's command line: usage errors, refusals, and two servers on one state directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("wrsrvd"), *args], capture_output=True, text=True, timeout=120, env=env)


def test_help_shows_both_modes() -> None:
    out = run("--help").stdout
    assert "--standalone" in out and "--instance" in out and "-- COMMAND" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--standalone"], "no COMMAND given"),
        (["--standalone", "--", "no-such-program-xyz"], "command not found"),
        (["--instance", "lab", "--port", "1"], "takes its settings from the configuration"),
        (["--standalone", "--port", "70000", "--allow-root", "--", "true"], "a UDP port is 0..65535"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    r = run(*args)
    assert r.returncode == 2 and message in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be refused for being root")
def test_standalone_refuses_root_unless_told() -> None:
    r = run("--standalone", "--", "true")
    assert r.returncode == 2 and "refusing to run standalone sessions as root" in r.stderr
    assert "--allow-root" in r.stderr


def test_an_unknown_instance_names_the_configured_ones(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "wayray"
    etc.mkdir(parents=True)
    (etc / "servers.toml").write_text("[server.lab]\nport = 7300\n")
    r = run("--instance", "labs", "--root", str(tmp_path))
    # A configuration problem like any other: status 78, which systemd does not restart.
    assert r.returncode == 78 and "no server instance 'labs'" in r.stderr and "lab" in r.stderr


@pytest.mark.slow
def test_a_second_wrsrvd_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        srv = h.server(["true"])
        second = run(
            "--standalone",
            "--allow-root",
            "--port",
            "0",
            "--state-dir",
            str(srv.state),
            "--runtime-dir",
            str(h.short / "run2"),
            "--",
            "true",
            env=h.env,
        )
        assert second.returncode == 1
        assert (
            f"another wrsrvd (pid {srv.proc.pid if srv.proc else '?'}) uses the state directory"
            in second.stderr
        )
    finally:
        h.cleanup()


def test_session_options_from_the_environment_and_the_command_line_wins() -> None:
    """wrsessd starts ``wrsrvd session`` with a fixed command; wrsrvd passes its instance's output and
    encoder settings through the session's environment."""
    from wayray.session.cli import options_from_environment, parser

    env = {
        "WAYRAY_SESSION_SIZE": "1024x768",
        "WAYRAY_SESSION_IDLE_FPS": "0",
        "WAYRAY_SESSION_VIDEO": "0",
        "WAYRAY_SESSION_ORPHAN_TIMEOUT": "600",
    }
    args = parser().parse_args(options_from_environment(["--size=800x600", "--", "foot"], env))
    assert args.size == (800, 600)  # argv wins
    assert (args.idle_fps, args.no_video, args.orphan_timeout) == (0.0, True, 600.0)
    assert args.command[-1] == "foot"
    assert parser().parse_args(options_from_environment([], {})).no_video is False
    r = run("session", env={**os.environ, "WAYRAY_SESSION_SIZE": "huge"})
    assert r.returncode == 2 and "--size" in r.stderr


def test_a_damaged_registry_is_named_with_what_to_do(tmp_path: Path) -> None:
    state, runtime = tmp_path / "state", tmp_path / "run"
    state.mkdir(mode=0o700)
    (state / "registry.sqlite").write_bytes(b"this is no SQLite database\n" * 300)
    r = run("--standalone", "--allow-root", "--port", "0", "--state-dir", str(state),
            "--runtime-dir", str(runtime), "--", "true")  # fmt: skip
    assert r.returncode == 1, r.stderr
    what = "the session registry cannot be used: file is not a database"
    assert f"{state / 'registry.sqlite'}: {what}" in r.stderr
    assert "move it aside" in r.stderr and "Traceback" not in r.stderr
