"""A token from the command line, and the kiosk's own identity (created once, kept 0600)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.tokens.util import next_event
from wayray.client.tokens import (
    BadgeInserted,
    InvalidToken,
    StaticToken,
    TerminalIdentity,
    TokenKind,
    default_state_dir,
    load_or_create_terminal_token,
    redact,
)
from wayray.common.errors import WayRayError


async def test_a_static_token_is_presented_once_and_stays_until_closed() -> None:
    source = StaticToken("demo-badge-1")
    event = await next_event(source)
    assert event == BadgeInserted("demo-badge-1", TokenKind.SOFTWARE, "token from the command line")
    pending = asyncio.ensure_future(anext(source))
    await asyncio.sleep(0)  # let it wait
    assert not pending.done()
    await source.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 30)
    with pytest.raises(StopAsyncIteration):
        await anext(source)


def test_an_unusable_static_token_is_refused_at_once() -> None:
    with pytest.raises(InvalidToken, match="whitespace"):
        StaticToken("two words")


async def test_the_kiosk_identity_is_created_private_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wayray")
    path = tmp_path / "state" / "terminal-token"
    async with TerminalIdentity(path) as source:
        first = await next_event(source)
    assert isinstance(first, BadgeInserted) and first.kind is TokenKind.TERMINAL
    assert len(first.token) >= 43  # 256 random bits
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().strip() == first.token
    assert [p.name for p in path.parent.iterdir()] == ["terminal-token"]  # no temporary file left

    async with TerminalIdentity(path) as source:  # the kiosk restarts: same identity, same session
        again = await next_event(source)
    assert isinstance(again, BadgeInserted) and again.token == first.token
    assert first.token not in caplog.text
    assert redact(first.token) in caplog.text


def test_two_kiosk_processes_starting_at_once_agree_on_one_identity(tmp_path: Path) -> None:
    path = tmp_path / "terminal-token"
    code = "import sys; from pathlib import Path; from wayray.client.tokens import load_or_create_terminal_token as f; print(f(Path(sys.argv[1])))"  # noqa: E501
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    tokens = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert tokens == {path.read_text().strip()}


def test_an_identity_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "terminal-token"
    load_or_create_terminal_token(path)
    path.chmod(0o644)
    with pytest.raises(WayRayError, match="readable by others") as info:
        load_or_create_terminal_token(path)
    assert info.value.hint and "chmod 600" in info.value.hint


def test_a_damaged_identity_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "terminal-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(WayRayError, match="damaged") as info:
        load_or_create_terminal_token(path)
    assert info.value.hint and "delete it" in info.value.hint


def test_a_symlinked_identity_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    load_or_create_terminal_token(real)
    (tmp_path / "terminal-token").symlink_to(real)
    with pytest.raises(WayRayError, match="symbolic link"):
        load_or_create_terminal_token(tmp_path / "terminal-token")


def test_a_state_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(WayRayError, match="others may write") as info:
        load_or_create_terminal_token(shared / "terminal-token")
    assert info.value.hint == f"chmod go-w {shared}"


async def test_set_up_errors_surface_from_start(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    source = TerminalIdentity(shared / "terminal-token")
    with pytest.raises(WayRayError, match="others may write"):
        await source.start()
    await source.close()


def test_default_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/kiosk-state:/var/lib/other")
    assert default_state_dir() == Path("/var/lib/kiosk-state")
    monkeypatch.delenv("STATE_DIRECTORY")
    if os.geteuid() == 0:
        assert default_state_dir() == Path("/var/lib/wayray-client")
    else:
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
        assert default_state_dir() == tmp_path / "wayray"
