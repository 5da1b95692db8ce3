"""Hostile or broken peers get a clear close reason, cost only their own connection (or link), and
leave the server's memory bounded; other viewers and sessions carry on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import Client, Harness, WrServer, eventually, failure
from tests.transport.test_robustness import raw_write
from wayray.link import LINK_VERSION, Close, CloseCode, LinkRole, Register, encode
from wayray.link.protocol import LinkDecoder
from wayray.transport import ClientSettings, ConnectionClosedError, PinnedFingerprint, connect
from wayray.wire import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Channel,
    ErrorCode,
    HelloParams,
    TokenKind,
    WireConfig,
    encode_frame,
)

pytestmark = pytest.mark.slow

VIDEO = str(Path(__file__).parent / "clients" / "video.py")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _settings(srv: WrServer, **wire: float) -> ClientSettings:
    return ClientSettings(
        trust=PinnedFingerprint(srv.fingerprint),
        wire=WireConfig(**wire) if wire else WireConfig(),  # type: ignore[arg-type]
        connect_timeout=30,
        own_server=srv.own_server,
    )


def _hello(token: str) -> HelloParams:
    return HelloParams(token=token, token_kind=TokenKind.SOFTWARE, screen_width=640, screen_height=480)


async def _closed_after(srv: WrServer, token: str, channel: Channel, frame: bytes) -> ConnectionClosedError:
    conn = await connect("127.0.0.1", srv.port, _settings(srv), _hello(token))
    raw_write(conn, frame, channel=channel)  # bypassing the wire: the server is what must refuse it
    event = await asyncio.wait_for(conn.wait_closed(), 30)
    return ConnectionClosedError(event)


def _still_connected(viewer: Client) -> None:
    assert viewer.proc.poll() is None, viewer.stderr()
    assert "connection lost" not in viewer.stderr(), viewer.stderr()


def test_bad_peers_are_closed_with_reasons_and_others_carry_on(harness: Harness) -> None:
    srv = harness.server(["foot", "--window-size-chars=80x24", "sh"])
    stats = harness.tmp / "bystander.json"
    bystander = harness.start_client(srv, "--stats", str(stats), token="bystander-token")
    eventually(lambda: "started session" in bystander.stderr(), "the bystander attached")

    # Garbage datagrams on the QUIC port: dropped without state.
    rng = random.Random(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3000):
            s.sendto(rng.randbytes(rng.randrange(1, 1400)), ("127.0.0.1", srv.port))
    # A viewer of another major version: refused with both versions named, before decoding the rest.
    with pytest.raises(ConnectionClosedError) as version:
        asyncio.run(connect("127.0.0.1", srv.port, _settings(srv, version=(2, 0)), _hello("v2-viewer")))  # type: ignore[arg-type]
    assert version.value.code == ErrorCode.UNSUPPORTED_VERSION
    assert "2.0" in version.value.reason and f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}" in version.value.reason
    # Malformed, unknown and oversized messages after the handshake: that connection only.
    bad = asyncio.run(_closed_after(srv, "malformed-viewer", Channel.INPUT, encode_frame(1, b"\x01")))
    assert bad.code == ErrorCode.MALFORMED_MESSAGE and bad.reason.startswith("Key.")
    unknown = asyncio.run(_closed_after(srv, "unknown-viewer", Channel.INPUT, encode_frame(99, b"")))
    assert unknown.code == ErrorCode.UNKNOWN_MESSAGE
    huge = asyncio.run(
        _closed_after(
            srv, "huge-viewer", Channel.INPUT, (64 * 1024 * 1024).to_bytes(4, "little") + b"\x01\x00"
        )
    )
    assert huge.code == ErrorCode.FRAME_TOO_LARGE

    # The server and the bystander carry on: a new viewer gets a picture, the bystander never
    # lost its connection.
    result = harness.run_client(srv, "--snapshot", str(harness.tmp / "after.png"), token="late-viewer")
    assert result.returncode == 0, failure(result)
    _still_connected(bystander)
    bystander.signal(signal.SIGINT)
    assert bystander.wait() == 0
    assert json.loads(stats.read_text())["connects"] == 1
    assert srv.proc is not None and srv.proc.poll() is None


def test_a_viewer_that_stops_reading_is_dropped_and_memory_stays_bounded(harness: Harness) -> None:
    srv = harness.server([sys.executable, VIDEO, "600", "640", "480"])
    stalled = harness.start_client(srv, token="stalled-viewer")
    eventually(lambda: "started session" in stalled.stderr(), "the viewer attached")
    session = srv.session()
    time.sleep(1)  # the animation runs, frames flow
    assert srv.proc is not None
    rss_server, rss_session = _rss_kib(srv.proc.pid), _rss_kib(session["pid"])
    stalled.signal(signal.SIGSTOP)  # it neither reads nor acknowledges nor answers pings
    try:
        eventually(
            lambda: "IDLE_TIMEOUT" in srv.log_text(), "the server to give up on the stalled viewer", 60
        )
        eventually(lambda: srv.session()["viewer"] is None, "the session detached")
        time.sleep(3)  # the session keeps animating, with nobody to send frames to
        # Nothing queued for the stalled viewer: the credit window stopped the encoder.
        assert _rss_kib(srv.proc.pid) - rss_server < 40_000
        assert _rss_kib(session["pid"]) - rss_session < 60_000
        assert "answered no Ping" in srv.log_text()
        result = harness.run_client(srv, "--snapshot", str(harness.tmp / "x.png"), token="stalled-viewer")
        assert result.returncode == 0, failure(result)  # the session itself is fine
    finally:
        stalled.signal(signal.SIGKILL)


def test_garbage_on_the_link_socket_costs_only_that_link(harness: Harness) -> None:
    srv = harness.server(["foot", "--window-size-chars=80x24", "sh"])
    result = harness.run_client(srv, "--snapshot", str(harness.tmp / "a.png"))
    assert result.returncode == 0, failure(result)
    session = srv.session()
    link = str(srv.runtime / "link.sock")

    def exchange(data: bytes) -> list[object]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(link)
            try:
                if data:
                    s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # wrsrvd may refuse and close before we have written; what it said is still to be read
            got = b""
            try:
                while chunk := s.recv(65536):
                    got += chunk
            except ConnectionResetError:
                pass  # Linux reports a peer that closed with our bytes unread as a reset, after its data
        return list(LinkDecoder(LinkRole.SERVER).feed(got))

    garbage = exchange(os.urandom(64))
    assert len(garbage) == 1 and isinstance(garbage[0], Close)
    assert garbage[0].code is CloseCode.PROTOCOL_ERROR
    # A "Register" announcing 48 MiB: nobody who has not registered may make wrsrvd buffer that much
    # (in login mode every local user can reach this socket), so it is refused on its header alone.
    huge = exchange(struct.pack("<IH", 48 * 1024 * 1024, 1) + b"{" * 1024)
    assert len(huge) == 1 and isinstance(huge[0], Close), huge
    assert huge[0].code is CloseCode.PROTOCOL_ERROR and "exceeds the 16384-byte limit" in huge[0].reason
    # Connections that never register: a uid gets a few at once (each costs wrsrvd a descriptor, and
    # in login mode every local user can connect); more are turned away at once, with a reason.
    idle = []
    try:
        for _ in range(8):
            idle.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            idle[-1].connect(link)
        crowded = exchange(b"")
        assert len(crowded) == 1 and isinstance(crowded[0], Close), crowded
        assert crowded[0].code is CloseCode.SHUTDOWN and "have not registered" in crowded[0].reason
    finally:
        for s in idle:
            s.close()

    def served_again() -> bool:  # once wrsrvd has seen those connections go
        answer = exchange(os.urandom(64))
        return isinstance(answer[0], Close) and answer[0].code is CloseCode.PROTOCOL_ERROR

    eventually(served_again, "the refused uid to be served again")
    forged = Register(
        link_version=LINK_VERSION,
        session_id=session["id"],
        secret="guessed",
        pid=os.getpid(),
        wayland_display="x",
        width=64,
        height=64,
        scale_120=120,
    )
    refused = exchange(encode(forged, LinkRole.COMPOSITOR))
    assert len(refused) == 1 and isinstance(refused[0], Close) and refused[0].code is CloseCode.BAD_SECRET
    # The real compositor kept its link and its session.
    assert srv.session()["linked"] and srv.session()["pid"] == session["pid"]
    again = harness.run_client(srv, "--snapshot", str(harness.tmp / "b.png"))
    assert again.returncode == 0, failure(again)


def _link_answer(link: Path, data: bytes) -> list[object]:
    """Send ``data`` on a fresh link connection; what wrsrvd answered until it closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(link))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        got = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                got += chunk
    return list(LinkDecoder(LinkRole.SERVER).feed(got))


def test_hostile_values_in_a_registration_get_a_reason_and_no_traceback(harness: Harness) -> None:
    """A JSON integer of 5,000 digits (over Python's 4,300-digit limit for int()) and a lone surrogate
    in the secret of a live session's Register: each is a protocol error that says what was wrong, as
    any malformed Register is, not an "internal error in wrsrvd" with a traceback in its log."""
    srv = harness.server(["foot", "--window-size-chars=80x24", "sh"])
    result = harness.run_client(srv, "--snapshot", str(harness.tmp / "a.png"))
    assert result.returncode == 0, failure(result)
    session = srv.session()
    fields = {
        "link_version": str(LINK_VERSION),
        "session_id": json.dumps(session["id"]),
        "secret": json.dumps("guessed"),
        "pid": str(os.getpid()),
        "wayland_display": '"x"',
        "width": "64",
        "height": "64",
        "scale_120": "120",
    }

    def register(**raw: str) -> Close:
        body = ("{" + ",".join(f'"{k}":{v}' for k, v in {**fields, **raw}.items()) + "}").encode()
        answer = _link_answer(srv.runtime / "link.sock", struct.pack("<IH", len(body), 1) + body)
        assert len(answer) == 1 and isinstance(answer[0], Close), answer
        return answer[0]

    huge = register(link_version="9" * 5000)
    assert huge.code is CloseCode.PROTOCOL_ERROR, huge
    assert huge.reason == "Register: the body has a number of 5000 digits (at most 30 are accepted)", huge
    surrogate = register(secret='"\\ud800"')
    assert surrogate.code is CloseCode.PROTOCOL_ERROR, surrogate
    assert "Register: the body has a lone surrogate" in surrogate.reason, surrogate
    # A well-formed guess is still told it is wrong, and the session kept its compositor.
    assert register().code is CloseCode.BAD_SECRET
    assert srv.session()["linked"] and srv.session()["pid"] == session["pid"]
    log = srv.log_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert "Register: the body has a number of 5000 digits" in log  # the operator sees why
