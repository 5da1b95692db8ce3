"""Connections that come and go leave nothing behind in wrsrvd (review finding L8: its memory rose
from 46 to 116 MB over 4,800 connections). The front door runs in the test's process so that its
tables can be looked at; everything else is real: QUIC on loopback, a session compositor process,
and the review's three kinds of connections (handshakes that never send a Hello, Hellos cut short or
garbled, viewers all presenting the same token). What is checked does not depend on the machine's
speed: once every connection has ended, no table holds anything of them.

bench/connection_churn.py measures the memory itself (RSS and tracemalloc); docs/benchmarks.md has
the figures."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import ssl
import tempfile
from pathlib import Path

import pytest

from wayray.config import PolicyConfig, ServerConfig
from wayray.server.frontdoor import FrontDoor
from wayray.server.settings import standalone_settings
from wayray.transport import ClientSettings, ConnectionClosedError, PinnedFingerprint, connect
from wayray.transport.connection import Connection
from wayray.wire import HelloParams, TokenKind, WireConfig

pytestmark = pytest.mark.slow

DEADLINE = 120.0


async def silent(port: int) -> None:
    from aioquic.asyncio import connect as quic_connect
    from aioquic.quic.configuration import QuicConfiguration

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["wayray"], verify_mode=ssl.CERT_NONE)
    async with quic_connect("127.0.0.1", port, configuration=cfg) as quic:
        await quic.wait_closed()  # the server's handshake timeout


async def garbled(port: int, n: int) -> None:
    from aioquic.asyncio import connect as quic_connect
    from aioquic.quic.configuration import QuicConfiguration

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["wayray"], verify_mode=ssl.CERT_NONE)
    async with quic_connect("127.0.0.1", port, configuration=cfg) as quic:
        stream = quic._quic.get_next_available_stream_id(is_unidirectional=True)
        body = b"\x01\x00\x00" if n % 2 else os.urandom(40)  # a Hello cut short, or garbage
        quic._quic.send_stream_data(stream, b"\x00" + len(body).to_bytes(4, "little") + b"\x01\x00" + body)
        quic.transmit()
        await quic.wait_closed()


async def same_token(port: int, fingerprint: str, key: str) -> None:
    settings = ClientSettings(trust=PinnedFingerprint(fingerprint), connect_timeout=60)
    hello = HelloParams(
        token="churn",
        token_kind=TokenKind.SOFTWARE,
        screen_width=640,
        screen_height=480,
        access_key=key,  # a standalone server asks for its access key, on loopback too
    )
    try:
        conn = await connect("127.0.0.1", port, settings, hello)
    except (ConnectionClosedError, OSError, TimeoutError):
        return  # it lost the session to another one before its ServerHello
    await conn.aclose()


async def until(check: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not check():  # type: ignore[operator]
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def leftovers(door: FrontDoor) -> dict[str, int]:
    """What the front door and its transport still hold of connections (all should be empty)."""
    out = {"viewers": len(door.table.viewers)}
    for i, srv in enumerate(door.servers):
        out[f"server{i}.connections"] = len(srv._live)
        out[f"server{i}.handlers"] = len(srv._tasks)
        assert srv._quic_server is not None
        out[f"server{i}.quic_connection_ids"] = len(srv._quic_server._protocols)
    out["registry.viewers"] = len(door.table.registry._by_viewer)
    for ls in door.table.live.values():
        out[f"session {ls.id}: viewer"] = int(ls.viewer is not None)
        out[f"session {ls.id}: attaching"] = len(ls.attaching)
    out["link connections not registered"] = sum(door.link_side.unregistered.values())
    gc.collect()
    out["Connection objects"] = sum(1 for o in gc.get_objects() if isinstance(o, Connection))
    return {k: v for k, v in out.items() if v}


def test_connections_that_ended_leave_nothing_in_the_front_doors_tables() -> None:
    short = Path(tempfile.mkdtemp(prefix="wr-churn-", dir="/tmp"))  # socket paths are short
    run = short / "run"
    run.mkdir(mode=0o700)
    server = ServerConfig(name="standalone", session_command=("sleep", "600"), listen=("127.0.0.1",), port=0)
    settings = standalone_settings(
        server,
        PolicyConfig(name="default"),
        state_dir=short / "state",
        runtime_dir=run / "srv",
        environ={"XDG_RUNTIME_DIR": str(run), "HOME": str(short)},
    )
    # Handshakes that never say Hello end after this (the default is 10 s; the test waits either way).
    settings = type(settings)(**{**settings.__dict__, "wire": WireConfig(handshake_timeout=2.0)})

    async def main() -> None:
        door = await FrontDoor.start(settings)
        try:
            assert door.access_key is not None
            port, fingerprint, key = door.port, door.identity.fingerprint, door.access_key
            await same_token(port, fingerprint, key)  # the session exists before the churn
            await until(lambda: not leftovers(door), "the first viewer to be gone")
            for _round in range(3):
                jobs = []
                for i in range(60):
                    kind = i % 3
                    job = (
                        silent(port)
                        if kind == 0
                        else garbled(port, i)
                        if kind == 1
                        else same_token(port, fingerprint, key)
                    )
                    jobs.append(asyncio.wait_for(job, DEADLINE))
                await asyncio.gather(*jobs, return_exceptions=True)
                await until(lambda: not leftovers(door), f"nothing left: {leftovers(door)}")
            assert len(door.table.live) == 1  # and the one session is still there
        finally:
            await door.stop(end_sessions=True)

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(short, ignore_errors=True)
