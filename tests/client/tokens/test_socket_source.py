"""The token socket a badge-reader program talks to (a real Unix socket, real connections)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.client.tokens.util import DEADLINE, next_event
from wayray.client.tokens import BadgeInserted, BadgeRemoved, SocketTokenSource, TokenKind
from wayray.client.tokens.socket_source import MAX_LINE
from wayray.common.errors import WayRayError


@asynccontextmanager
async def listening(path: Path) -> AsyncIterator[SocketTokenSource]:
    source = SocketTokenSource(path)
    await source.start()
    try:
        yield source
    finally:
        await source.close()


class Program:
    """A badge-reader program's connection: one command, one reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, path: Path) -> Program:
        return cls(*await asyncio.open_unix_connection(os.fspath(path)))

    async def send(self, line: str | bytes) -> str:
        self.writer.write(line if isinstance(line, bytes) else line.encode())
        await self.writer.drain()
        reply = await asyncio.wait_for(self.reader.readline(), DEADLINE)
        return reply.decode().rstrip("\n")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_insert_and_remove(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wayray")
    path = tmp_path / "badge.sock"
    async with listening(path) as source:
        program = await Program.connect(path)
        assert await program.send("insert 0004711\n") == "ok"
        event = await next_event(source)
        assert isinstance(event, BadgeInserted)
        assert (event.token, event.kind) == ("0004711", TokenKind.BADGE)
        assert await program.send("remove\r\n") == "ok"
        assert await next_event(source) == BadgeRemoved("reader program: removed")
        assert await program.send("remove\n") == "ok"  # nothing to remove: no event
        assert await program.send("insert 0008150\n") == "ok"
        event = await next_event(source)
        assert isinstance(event, BadgeInserted) and event.token == "0008150"
        await program.close()
    assert "0004711" not in caplog.text and "0008150" not in caplog.text


async def test_a_connection_per_command_and_closing_removes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "badge.sock"
    async with listening(path) as source:
        for line in ("insert 1\n", "insert 2\n"):
            program = await Program.connect(path)
            assert await program.send(line) == "ok"
            await program.close()
        events = [await next_event(source) for _ in range(3)]
        assert [type(e).__name__ for e in events] == ["BadgeInserted", "BadgeRemoved", "BadgeInserted"]
        assert events[1] == BadgeRemoved("replaced")
        assert isinstance(events[2], BadgeInserted) and events[2].token == "2"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("insert\n", "error insert: the token is empty"),
        ("insert two words\n", "error insert: the token contains whitespace"),
        ("remove now\n", "error remove takes no argument"),
        ("INSERT 5\n", "error unknown command; expected 'insert <token>' or 'remove'"),
        ("0004711\n", "error unknown command; expected 'insert <token>' or 'remove'"),
        (b"insert \xff\xfe\n", "error the line is not UTF-8"),
    ],
)
async def test_malformed_lines_get_an_error_and_change_nothing(
    tmp_path: Path, line: str | bytes, reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "badge.sock"
    async with listening(path) as source:
        program = await Program.connect(path)
        assert await program.send("insert 1234\n") == "ok"
        assert isinstance(await next_event(source), BadgeInserted)
        assert await program.send(line) == reply
        assert await program.send("\n" + "insert 1234\n") == "ok"  # blank line: no reply; same badge
        assert await program.send("insert 5678\n") == "ok"
        # Had the bad line changed anything, it would come before these two:
        assert await next_event(source) == BadgeRemoved("replaced")
        event = await next_event(source)
        assert isinstance(event, BadgeInserted) and event.token == "5678"
        await program.close()
    assert "0004711" not in caplog.text  # a token sent without its command is not echoed in logs


async def test_an_over_long_line_ends_that_connection_only(tmp_path: Path) -> None:
    path = tmp_path / "badge.sock"
    async with listening(path) as source:
        bad = await Program.connect(path)
        reply = await bad.send(b"insert " + b"9" * (MAX_LINE + 10) + b"\n")
        assert reply == f"error line longer than {MAX_LINE} bytes"
        assert await asyncio.wait_for(bad.reader.read(), DEADLINE) == b""  # closed by the source
        await bad.close()
        good = await Program.connect(path)
        assert await good.send("insert 42\n") == "ok"
        event = await next_event(source)
        assert isinstance(event, BadgeInserted) and event.token == "42"
        await good.close()


async def test_the_socket_is_private_and_removed_on_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "badge.sock"
    async with listening(path) as source:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        program = await Program.connect(path)  # still connected when wrclient stops
        assert await program.send("insert 1\n") == "ok"
        assert isinstance(await next_event(source), BadgeInserted)
    assert not path.exists()
    assert await asyncio.wait_for(program.reader.read(), DEADLINE) == b""  # its connection was closed
    await program.close()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "badge.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(path))
    stale.close()  # what a crashed wrclient leaves behind
    async with listening(path) as source:
        program = await Program.connect(path)
        assert await program.send("insert 7\n") == "ok"
        assert isinstance(await next_event(source), BadgeInserted)
        await program.close()


async def test_a_socket_in_use_or_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "badge.sock"
    async with listening(path):
        second = SocketTokenSource(path)
        with pytest.raises(WayRayError, match="another program is listening"):
            await second.start()
        await second.close()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)  # the first one's socket is left alone
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    source = SocketTokenSource(other)
    with pytest.raises(WayRayError, match="not a socket"):
        await source.start()
    await source.close()
    assert other.read_text() == "keep me"
