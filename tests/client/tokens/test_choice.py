"""Which source a kiosk uses, from client.toml and wrclient's options; and the by-hand check tool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.tokens.umockdev_devices import KEYBOARD, READER, describe_usb_keyboard
from tests.conftest import REPO
from wayray import config
from wayray.client.tokens import (
    FileTokenSource,
    ReaderMatch,
    SocketTokenSource,
    SourceKind,
    StaticToken,
    TerminalIdentity,
    TokenKind,
    TokenSourceSettings,
    UdevBadgeReader,
    open_token_source,
)
from wayray.common.errors import UsageError


def client_config(tmp_path: Path, text: str) -> config.ClientConfig:
    etc = tmp_path / "etc" / "wayray"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "client.toml").write_text(text)
    return config.load(tmp_path).client


def test_the_reader_in_client_toml_is_used_when_nothing_else_is_given(tmp_path: Path) -> None:
    client = client_config(tmp_path, '[client]\nbadge.vendor = 0x076b\nbadge.product = "5427"\n')
    settings = TokenSourceSettings.from_config(client.badge, removal_sequence="-out-")
    assert settings.choice() is SourceKind.READER and settings.choice().follows_badge
    source = open_token_source(settings)
    assert isinstance(source, UdevBadgeReader)
    assert source.match == ReaderMatch(0x076B, 0x5427) and source.removal_sequence == "-out-"
    assert source.description == "badge reader 076b:5427"


def test_no_reader_configured_means_the_kiosk_identity(tmp_path: Path) -> None:
    client = client_config(tmp_path, "[client]\nkiosk = true\n")  # badge.vendor "*": no USB reader
    settings = TokenSourceSettings.from_config(client.badge, terminal_token=tmp_path / "id")
    assert settings.choice() is SourceKind.TERMINAL and not settings.choice().follows_badge
    source = open_token_source(settings)
    assert isinstance(source, TerminalIdentity) and source.path == tmp_path / "id"


def test_a_source_given_to_wrclient_overrides_the_configured_reader(tmp_path: Path) -> None:
    client = client_config(tmp_path, "[client]\nbadge.vendor = 0x076b\n")
    cases = [
        ({"token": "demo"}, StaticToken),
        ({"token_file": tmp_path / "badge"}, FileTokenSource),
        ({"token_socket": tmp_path / "badge.sock"}, SocketTokenSource),
    ]
    for options, cls in cases:
        source = open_token_source(TokenSourceSettings.from_config(client.badge, **options))  # type: ignore[arg-type]
        assert isinstance(source, cls)


def test_client_toml_names_a_badge_file_or_socket_and_the_readers_removal_rules(tmp_path: Path) -> None:
    client = client_config(
        tmp_path,
        '[client]\nbadge.vendor = 0x076b\nbadge.removal_sequence = "CARD-OUT"\n'
        "badge.repeat_removes = true\n",
    )
    reader = open_token_source(TokenSourceSettings.from_config(client.badge))
    assert isinstance(reader, UdevBadgeReader)
    assert reader.removal_sequence == "CARD-OUT" and reader.repeat_removes
    # wrclient's options win over client.toml's
    settings = TokenSourceSettings.from_config(client.badge, removal_sequence="X", repeat_removes=False)
    assert (settings.removal_sequence, settings.repeat_removes) == ("X", False)
    client = client_config(tmp_path, f'[client]\nbadge.socket = "{tmp_path}/b.sock"\n')
    assert isinstance(open_token_source(TokenSourceSettings.from_config(client.badge)), SocketTokenSource)
    client = client_config(tmp_path, f'[client]\nbadge.file = "{tmp_path}/badge"\n')
    assert isinstance(open_token_source(TokenSourceSettings.from_config(client.badge)), FileTokenSource)
    given = TokenSourceSettings.from_config(client.badge, token_socket=tmp_path / "other.sock")
    assert isinstance(open_token_source(given), SocketTokenSource)  # the command line wins
    bad = tmp_path / "bad" / "etc" / "wayray"
    bad.mkdir(parents=True)
    (bad / "client.toml").write_text(
        f'[client]\nbadge.file = "{tmp_path}/f"\nbadge.socket = "{tmp_path}/s"\n'
    )
    errors = config.load_report(tmp_path / "bad").errors
    assert [d.key for d in errors] == [
        "client.badge.socket"
    ] and "either badge.file or badge.socket" in errors[0].message


def test_two_sources_given_is_a_usage_error() -> None:
    settings = TokenSourceSettings(token="a", token_file=Path("/run/badge"))
    with pytest.raises(UsageError, match="only one token source, not a token and a token file"):
        open_token_source(settings)


def test_an_unusable_token_on_the_command_line_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="contains whitespace") as info:
        open_token_source(TokenSourceSettings(token="my badge"))
    assert "my badge" not in info.value.message


def test_static_token_kind_can_be_chosen() -> None:
    source = open_token_source(TokenSourceSettings(token="t", token_kind=TokenKind.BADGE))
    assert isinstance(source, StaticToken)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("076b:5427", ReaderMatch(0x076B, 0x5427)),
        ("076B", ReaderMatch(0x076B)),
        ("0x76b:*", ReaderMatch(0x076B)),
    ],
)
def test_reader_ids_as_lsusb_prints_them(text: str, match: ReaderMatch) -> None:
    assert ReaderMatch.parse(text) == match


@pytest.mark.parametrize(
    ("text", "why"), [("*:5427", "every keyboard"), ("xyz", "USB id"), ("1:10000", "16 bits")]
)
def test_bad_reader_ids(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ReaderMatch.parse(text)


def run_tool(*args: str, root: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wayray.client.tokens", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.skipif(shutil.which("umockdev-run") is None, reason="needs umockdev (tools/apt-packages.txt)")
def test_readers_lists_input_devices_and_marks_the_badge_reader(tmp_path: Path) -> None:
    client_config(tmp_path, "[client]\nbadge.vendor = 0x076b\nbadge.product = 0x5427\n")
    devices = tmp_path / "kiosk.umockdev"
    devices.write_text(describe_usb_keyboard(1, *KEYBOARD) + "\n" + describe_usb_keyboard(2, *READER))
    res = subprocess.run(
        ["umockdev-run", "--device", str(devices), "--", sys.executable, "-m", "wayray.client.tokens"]
        + ["--root", str(tmp_path), "readers"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1].split() == ["/dev/input/event11", "046d:c31c", "Logitech", "USB", "Keyboard"]
    assert lines[2].split()[:2] == ["/dev/input/event12", "076b:5427"]
    assert lines[2].endswith("badge reader (client.toml)")


def test_watch_shows_a_token_file_redacted(tmp_path: Path) -> None:
    client_config(tmp_path, "[client]\n")
    badge_dir = tmp_path / "reader"
    badge_dir.mkdir(mode=0o700)
    badge = badge_dir / "badge"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wayray.client.tokens", "--root", str(tmp_path), "watch"]
        + ["--token-file", str(badge), "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == f"watching token file {badge}\n"
    badge.write_text("0004711234\n")
    inserted = proc.stdout.readline()
    assert inserted.startswith("inserted badge token #") and "0004711234" not in inserted
    assert "10" not in inserted.split("#", 1)[0]  # not even the badge's length
    os.unlink(badge)
    assert proc.stdout.readline() == "removed (token file removed)\n"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "0004711234" not in err


def test_watch_usage_errors_exit_2(tmp_path: Path) -> None:
    client_config(tmp_path, "[client]\n")
    res = run_tool("watch", "--reader", "*", root=tmp_path)
    assert res.returncode == 2
    assert "--reader" in res.stderr and "every keyboard" in res.stderr
    res = run_tool("watch", "--token-file", "/a", "--token-socket", "/b", root=tmp_path)
    assert res.returncode == 2
