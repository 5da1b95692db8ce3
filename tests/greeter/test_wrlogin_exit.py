"""How wrlogin ends (no root needed): the real wrlogin in our compositor, with a stand-in wrsessd
on a socket of the test's own that answers the login at once.

After a successful login wrsrvd ends the login screen's session (``kill_session {replaced}``): its
compositor goes away while wrlogin still shows "Welcome". That is how a login screen is meant to
end, so it is no error: wrlogin used to log ``wrlogin: error: the Wayland connection ended while
sending requests: connection closed`` after every login, and exit 1.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.compositor.harness import running_session
from tests.conftest import script
from wayray.compositor.testing import type_text
from wayray.launcher import protocol as p

pytestmark = pytest.mark.slow

SESSION = p.SessionInfo(
    session_id="a1b2c3d4e5f6",
    session_class=p.SessionClass.USER,
    user="alice",
    uid=1000,
    wayland_display="wayland-wr-a1b2c3d4e5f6",
    runtime_dir="/run/user/1000",
    worker_pid=1,
    compositor_pid=1,
    started_at=1.0,
)


async def fake_wrsessd(path: Path, asked: list[str]) -> asyncio.AbstractServer:
    """Answers create_session with success and start_session with session_started."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = p.FrameDecoder(p.MAX_MESSAGE_BYTES)
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                request = p.parse_request(frame)
                asked.append(request.type)
                if isinstance(request, p.StartSession):
                    answer: p.Message = p.SessionStarted(session=SESSION)
                else:
                    answer = p.Success()
                writer.write(answer.encode())
                await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(serve, path=str(path))


async def test_the_end_of_the_login_screens_session_after_a_login_is_no_error(tmp_path: Path) -> None:
    asked: list[str] = []
    server = await fake_wrsessd(tmp_path / "wrsessd.sock", asked)
    # Frame callbacks every 100 s: after the login, wrlogin waits (up to 2 s) for its "Welcome"
    # to be shown, and that is when its session goes away — as it does when wrsrvd ends it.
    async with running_session(tmp_path, refresh_hz=0.01, idle_hz=0.01) as s:
        env = {"WAYRAY_LOGIN_TICKET": "ticket-1", "WAYRAY_SESSD_SOCK": str(tmp_path / "wrsessd.sock")}
        wrlogin = await s.spawn(script("wrlogin"), "-v", env=env, name="wrlogin")
        await s.wait_window(lambda w: w.app_id == "org.wayray.wrlogin", "the greeter")
        await type_text(s.comp, "alice\n")
        await s.wait_for(lambda: "session a1b2c3d4e5f6 of alice started" in wrlogin.output(), "the login")
        assert asked == ["create_session", "start_session"]
        core = s.comp._core
        assert core is not None
        [client] = [c for c in core.display.clients if c.pid == wrlogin.pid]
        client.destroy()  # the login screen's compositor is gone
        started = time.monotonic()
        status = await s.wait_exit(wrlogin)
        assert time.monotonic() - started < 30
        output = wrlogin.output()
        assert status == 0, output
        assert "error" not in output.lower() and "Traceback" not in output, output
        assert "its session ended after the login, as a login screen's does" in output, output
    server.close()
