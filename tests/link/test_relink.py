"""A session compositor whose link wrsrvd dropped registers again, as after a wrsrvd restart; only the
refusals that waiting cannot fix end its session (review finding M2). A real ``wrsrvd session``
process (its secret handed over in a pipe, as wrsrvd does) against a stand-in for wrsrvd's side of the
link socket, which decides what the compositor is told."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wayray.common.secretfd import secret_pipe
from wayray.link import Close, CloseCode, End, Ended, LinkRole, Register, Welcome
from wayray.link.stream import LinkStream

SECRET = "a-secret-for-this-test"
DEADLINE = 90.0


class FakeServer:
    """wrsrvd's end of the link socket: hands each registration over to the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.links: asyncio.Queue[tuple[LinkStream, Register]] = asyncio.Queue()
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_unix_server(self._on_link, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _on_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = LinkStream(reader, writer, LinkRole.SERVER)
        first = await stream.receive()
        assert isinstance(first, Register), first
        await self.links.put((stream, first))

    async def registration(self) -> tuple[LinkStream, Register]:
        stream, reg = await asyncio.wait_for(self.links.get(), DEADLINE)
        assert reg.secret == SECRET and reg.session_id == "s-relink"
        stream.send(Welcome(link_version=reg.link_version, server="fake wrsrvd"))
        return stream, reg


@contextlib.asynccontextmanager
async def compositor(tmp: Path, *options: str) -> AsyncIterator[tuple[FakeServer, subprocess.Popen[bytes]]]:
    """A real session compositor (running ``sleep``) whose link socket is a :class:`FakeServer`;
    ``options`` go to ``wrsrvd session``."""
    run = tmp / "run"
    run.mkdir(mode=0o700)
    async with FakeServer(tmp / "link.sock") as server:
        fd = secret_pipe(SECRET)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("WAYRAY_", "WAYLAND_"))},
            "XDG_RUNTIME_DIR": str(run),
            "WAYRAY_LINK": str(server.path),
            "WAYRAY_LINK_SESSION": "s-relink",
            "WAYRAY_LINK_SECRET_FD": str(fd),
        }
        with open(tmp / "session.log", "wb") as log:
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "wayray.server",
                        "session",
                        "--size",
                        "640x480",
                        *options,
                        "--",
                        "sleep",
                        "600",
                    ],
                    env=env,
                    pass_fds=(fd,),
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            finally:
                os.close(fd)
        try:
            yield server, proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(30)


async def _exits(proc: subprocess.Popen[bytes]) -> int:
    while proc.poll() is None:
        await asyncio.sleep(0.05)
    return proc.returncode


@pytest.mark.parametrize("how", ["reset", "protocol_error"])
def test_a_dropped_link_is_registered_again_and_the_session_lives_on(tmp_path: Path, how: str) -> None:
    async def main() -> None:
        async with compositor(tmp_path) as (server, proc):
            stream, first = await server.registration()
            # wrsrvd gives up on the link: it aborts it (a reset: what waited is thrown away) or, as
            # wrsrvd did before, closes it with protocol_error. Either way only the link went.
            if how == "reset":
                stream.abort()
            else:
                stream.close(CloseCode.PROTOCOL_ERROR, "the compositor does not read: 33554417 bytes wait")
            again, second = await server.registration()
            assert proc.poll() is None  # the same process, the same session
            assert (second.pid, second.session_id) == (first.pid, first.session_id)
            # And it still serves: an End ends it the normal way.
            again.send(End(reason="the test is over"))
            ended = await asyncio.wait_for(again.receive(), DEADLINE)
            assert isinstance(ended, Ended), ended
            assert await asyncio.wait_for(_exits(proc), DEADLINE) == 128 + 15  # sleep ended by SIGTERM

    asyncio.run(main())


@pytest.mark.parametrize("code", [CloseCode.UNKNOWN_SESSION, CloseCode.BAD_SECRET, CloseCode.REPLACED])
def test_a_refusal_that_waiting_cannot_fix_ends_the_session(tmp_path: Path, code: CloseCode) -> None:
    async def main() -> None:
        async with compositor(tmp_path) as (server, proc):
            stream, _ = await server.registration()
            stream.send(Close(code=code, reason="refused by the test"))
            assert await asyncio.wait_for(_exits(proc), DEADLINE) != 0
            assert server.links.empty()

    asyncio.run(main())


def test_a_wrsrvd_that_takes_the_link_but_does_not_answer_is_waited_for_not_given_up_on(
    tmp_path: Path,
) -> None:
    """A stopped or stalled wrsrvd still accepts on its socket (the kernel does) but never answers the
    registration. That is a busy server, not a missing one: the session must not count it towards
    the time after which a session nobody can reach ends (here 1 s), and must say what happened."""

    async def main() -> None:
        async with compositor(tmp_path, "--orphan-timeout", "1") as (server, proc):
            silent, first = await asyncio.wait_for(server.links.get(), DEADLINE)  # never answered
            stream, second = await server.registration()  # after the compositor's own timeout
            assert proc.poll() is None
            assert (second.pid, second.session_id) == (first.pid, first.session_id)
            log = (tmp_path / "session.log").read_text()
            assert "did not answer the registration within" in log, log[-3000:]
            silent.abort()
            stream.send(End(reason="the test is over"))
            assert isinstance(await asyncio.wait_for(stream.receive(), DEADLINE), Ended)
            assert await asyncio.wait_for(_exits(proc), DEADLINE) == 128 + 15

    asyncio.run(main())
