"""The token file a badge-reader program writes, watched with inotify and by polling (real files)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.client.tokens.util import next_event
from wayray.client.tokens import (
    MAX_TOKEN_BYTES,
    BadgeInserted,
    BadgeRemoved,
    FileTokenSource,
    FileWatch,
    TokenKind,
    redact,
)
from wayray.client.tokens.inotify import available as inotify_available
from wayray.common.errors import WayRayError

WATCHES = [
    pytest.param(FileWatch.INOTIFY, marks=pytest.mark.skipif(not inotify_available(), reason="no inotify")),
    FileWatch.POLL,
]


def write_atomically(path: Path, text: str) -> None:
    """What a well-behaved reader program does: write a temporary file, rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    """What `echo 1234 > badge` does: truncate, write, close."""
    with open(path, "w") as f:
        f.write(text)


@asynccontextmanager
async def watching(path: Path, watch: FileWatch) -> AsyncIterator[FileTokenSource]:
    source = FileTokenSource(path, watch=watch, poll_interval=0.05)
    await source.start()
    try:
        yield source
    finally:
        await source.close()


def inserted(token: str) -> BadgeInserted:
    return BadgeInserted(token, TokenKind.BADGE, "")


async def expect(source: FileTokenSource, *events: BadgeInserted | BadgeRemoved) -> None:
    for want in events:
        got = await next_event(source)
        if isinstance(want, BadgeInserted):
            assert isinstance(got, BadgeInserted), f"expected {want}, got {got}"
            assert (got.token, got.kind) == (want.token, want.kind), f"expected {want}, got {got}"
        else:
            assert got == want


@pytest.mark.parametrize("watch", WATCHES)
async def test_a_badge_comes_and_goes_with_the_file(
    tmp_path: Path, watch: FileWatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wayray")
    badge = tmp_path / "badge"
    async with watching(badge, watch) as source:
        write_atomically(badge, "0004711\n")
        await expect(source, inserted("0004711"))
        write_atomically(badge, "0004711\n")  # the same badge again: nothing new
        write_atomically(badge, "0008150\n")  # another badge replaces it
        await expect(source, BadgeRemoved("replaced"), inserted("0008150"))
        badge.unlink()
        await expect(source, BadgeRemoved("token file removed"))
        write_in_place(badge, "C0FFEE")
        await expect(source, inserted("C0FFEE"))
        write_in_place(badge, "")  # emptied: removed
        await expect(source, BadgeRemoved("token file emptied"))
        write_in_place(badge, "42")
        await expect(source, inserted("42"))
    for token in ("0004711", "0008150", "C0FFEE"):
        assert token not in caplog.text
    assert redact("0008150") in caplog.text


@pytest.mark.parametrize("watch", WATCHES)
async def test_a_file_present_at_start_counts(tmp_path: Path, watch: FileWatch) -> None:
    badge = tmp_path / "badge"
    badge.write_text("777\n")
    async with watching(badge, watch) as source:
        await expect(source, inserted("777"))


@pytest.mark.parametrize("watch", WATCHES)
async def test_an_unusable_token_counts_as_no_badge_and_is_not_logged(
    tmp_path: Path, watch: FileWatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wayray")
    badge = tmp_path / "badge"
    async with watching(badge, watch) as source:
        write_atomically(badge, "1111")
        await expect(source, inserted("1111"))
        write_atomically(badge, "secret words\n")
        await expect(source, BadgeRemoved("token file holds no usable token"))
        write_atomically(badge, "9" * (MAX_TOKEN_BYTES + 1))
        write_atomically(badge, "2222")  # the next good token is taken, nothing in between
        await expect(source, inserted("2222"))
    assert "secret" not in caplog.text
    assert "contains whitespace" in caplog.text


async def test_the_directory_going_away_and_coming_back(tmp_path: Path) -> None:
    directory = tmp_path / "reader"
    directory.mkdir()
    badge = directory / "badge"
    async with watching(badge, FileWatch.AUTO) as source:
        write_atomically(badge, "31337")
        await expect(source, inserted("31337"))
        shutil.rmtree(directory)  # the file goes first, then its directory
        await expect(source, BadgeRemoved("token file removed"))
        directory.mkdir()
        write_atomically(badge, "31338")
        await expect(source, inserted("31338"))


async def test_a_directory_anyone_may_write_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o1777)
    source = FileTokenSource(directory / "badge")
    with pytest.raises(WayRayError, match="anyone on this kiosk could present any badge"):
        await source.start()
    await source.close()


async def test_a_missing_directory_is_refused_with_what_to_do(tmp_path: Path) -> None:
    source = FileTokenSource(tmp_path / "nowhere" / "badge")
    with pytest.raises(WayRayError, match="nowhere") as info:
        await source.start()
    assert info.value.hint and "RuntimeDirectory=" in info.value.hint
    await source.close()


@pytest.mark.skipif(not inotify_available(), reason="no inotify")
async def test_the_directory_moved_away_with_the_badge_in_it(tmp_path: Path) -> None:
    directory = tmp_path / "reader"
    directory.mkdir()
    badge = directory / "badge"
    async with watching(badge, FileWatch.INOTIFY) as source:
        write_atomically(badge, "31337")
        await expect(source, inserted("31337"))
        directory.rename(tmp_path / "old")
        await expect(source, BadgeRemoved("token file's directory is gone"))
        directory.mkdir()
        write_atomically(badge, "31337")
        await expect(source, inserted("31337"))
