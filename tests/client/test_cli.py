"""wrclient's command line without a server: help, usage errors, failures with reasons."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import script
from wayray.client.cli import parse_address
from wayray.client.identity import terminal_token
from wayray.common.errors import UsageError


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("wrclient"), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_help_documents_address_token_pinning_snapshot_and_script() -> None:
    out = run("--help").stdout
    needles = ["SERVER", "--token", "--fingerprint", "--known-hosts", "--ca", "--snapshot", "--script"]
    needles += ["--headless", "settle", "expect-clipboard", "exit status"]
    for needle in needles:
        assert needle in out, needle


def test_addresses() -> None:
    assert parse_address("srv") == ("srv", 7100)
    assert parse_address("srv:7200") == ("srv", 7200)
    assert parse_address("[2001:db8::1]:7300") == ("2001:db8::1", 7300)
    assert parse_address("2001:db8::1") == ("2001:db8::1", 7100)
    with pytest.raises(UsageError, match="port"):
        parse_address("srv:99999")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("settle\nfly away\n")
    r = run("127.0.0.1:9", "--headless", "--script", str(bad))
    assert r.returncode == 2 and f"{bad}:2: unknown command 'fly'" in r.stderr
    assert run("--headless").returncode == 2  # no server anywhere
    assert run("127.0.0.1", "--headless", "--keymap-layout", "nosuchlayout").returncode == 2


def test_nothing_listening_fails_with_the_reason(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the port is free again: nothing answers there
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    r = run(f"127.0.0.1:{port}", "--headless", "--token", "t" * 12, "--snapshot", str(tmp_path / "x.png"),
            "--no-reconnect", "--timeout", "20", env=env)  # fmt: skip
    assert r.returncode == 1
    assert "no complete frame arrived" in r.stderr and "nothing listens" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_window_without_a_display_suggests_headless(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYLAND_")}
    env["XDG_STATE_HOME"] = str(tmp_path)
    r = run("127.0.0.1:9", "--token", "t" * 12, env=env)
    assert r.returncode == 1
    assert "cannot open a window" in r.stderr and "--headless" in r.stderr


def test_the_terminal_token_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "terminal-token"
    first = terminal_token(path)
    assert len(first) == 64 and terminal_token(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "args,message",
    [
        (["--kiosk", "--snapshot", "x.png"], "--snapshot: not in kiosk mode"),
        (["--kiosk", "--no-reconnect"], "--no-reconnect: not in kiosk mode"),
        (["--kiosk", "--control-socket", "c.sock"], "--control-socket needs --headless"),
        (["--badge-socket", "b.sock"], "--badge-socket: only in kiosk mode"),
        (["--kiosk", "--headless", "--token", "a", "--badge-file", "f"], "only one token source"),
        # a kiosk plays the session's sound (client.toml's play_audio): no file, no microphone yet
        (["--kiosk", "--audio-wav", "a.wav"], "--audio-wav: not in kiosk mode"),
        (["--kiosk", "--mic-wav", "m.wav"], "--mic-wav: not in kiosk mode"),
    ],
)
def test_kiosk_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [script("wrclient"), "127.0.0.1:1", "--root", str(tmp_path), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
