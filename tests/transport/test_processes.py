"""Peers in separate processes, killed without warning: each side notices within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.transport.helpers import FAST_WIRE, client_settings, hello, run, start, within
from wayray.transport import ServerConnection, ServerIdentity, connect
from wayray.wire import ClipboardText, ConnectionClosed, ErrorCode, Key, KeyState, Selection


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.transport.peer_process", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


async def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await within(asyncio.to_thread(proc.stdout.readline), 60)
    assert line, f"peer process exited with {proc.poll()}"
    return line.strip()


@run
async def test_a_killed_server_is_noticed_by_the_viewer(tmp_path: Path) -> None:
    proc = spawn("server", str(tmp_path / "state"))
    try:
        port = int((await first_line(proc)).split()[1])
        conn = await connect("127.0.0.1", port, client_settings(tmp_path, wire=FAST_WIRE), hello())
        conn.send(Key(code=42, state=KeyState.PRESSED, time_ms=0))
        assert await within(conn.receive()) == ClipboardText(selection=Selection.CLIPBOARD, text="key 42")
        os.kill(proc.pid, signal.SIGKILL)
        event = await within(conn.wait_closed(), 30)
        assert event.code == ErrorCode.IDLE_TIMEOUT and "the server answered no Ping" in event.reason
    finally:
        proc.kill()
        proc.wait()


@run
async def test_a_killed_viewer_is_noticed_by_the_server(identity: ServerIdentity, tmp_path: Path) -> None:
    ends: list[ConnectionClosed] = []

    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s-proc", output_width=1, output_height=1)
        ends.append(await conn.wait_closed())

    server = await start(identity, handle, wire=FAST_WIRE)
    proc = spawn("client", str(server.port), str(tmp_path / "known_hosts"))
    try:
        assert await first_line(proc) == "CONNECTED s-proc"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not ends and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert ends and ends[0].code == ErrorCode.IDLE_TIMEOUT, ends
    finally:
        proc.kill()
        proc.wait()
        await server.close()
