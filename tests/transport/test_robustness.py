"""Bad peers get a clear close reason; other connections carry on; memory stays bounded (issue §6)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest
from aioquic.asyncio import connect as aioquic_connect
from aioquic.quic.configuration import QuicConfiguration

from tests.transport.helpers import FAST_WIRE, client_settings, eventually, hello, run, start, within
from wayray.transport import ClientConnection, ServerConnection, ServerIdentity, WireServer, connect
from wayray.transport.connection import QuicSettings
from wayray.wire import (
    Channel,
    ClipboardText,
    ConnectionClosed,
    ErrorCode,
    FrameAck,
    FrameUpdate,
    Key,
    KeyState,
    Region,
    RegionEncoding,
    Selection,
    WireConfig,
    encode_frame,
)


async def echo_handler(conn: ServerConnection) -> None:
    """Accepts, echoes every Key back as clipboard text: a healthy session to watch."""
    conn.accept(session_id=conn.hello.token, output_width=64, output_height=48)
    async for msg in conn:
        if isinstance(msg, Key):
            conn.send(ClipboardText(selection=Selection.CLIPBOARD, text=f"key {msg.code}"))


async def round_trip(conn: ClientConnection, code: int) -> None:
    conn.send(Key(code=code, state=KeyState.PRESSED, time_ms=0))
    msg = await within(conn.receive(), 20)
    assert msg == ClipboardText(selection=Selection.CLIPBOARD, text=f"key {code}")


def raw_write(
    conn: ClientConnection,
    data: bytes,
    *,
    channel: Channel | None = Channel.CONTROL,
    stream: int | None = None,
) -> None:
    """Write bytes on the client's own stream for ``channel`` (or on ``stream``), bypassing the wire."""
    p: Any = conn._p
    if stream is None:
        if channel not in p._send_streams:
            stream = p._quic.get_next_available_stream_id(is_unidirectional=True)
            p._send_streams[channel] = stream
            data = bytes([channel]) + data
        else:
            stream = p._send_streams[channel]
    p._quic.send_stream_data(stream, data)
    p.transmit()


BAD_INPUT = {
    "malformed body": (Channel.CONTROL, encode_frame(8, b"\x07\x00"), ErrorCode.MALFORMED_MESSAGE),
    "oversize frame": (Channel.INPUT, struct.pack("<IH", 50_000_000, 1), ErrorCode.FRAME_TOO_LARGE),
    "unknown type": (Channel.INPUT, encode_frame(77, b""), ErrorCode.UNKNOWN_MESSAGE),
    "wrong direction": (Channel.DISPLAY, encode_frame(1, b""), ErrorCode.UNEXPECTED_MESSAGE),
    "second hello": (Channel.CONTROL, encode_frame(1, b"\x01\x00\x00\x00"), ErrorCode.UNEXPECTED_MESSAGE),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
@run
async def test_malformed_input_closes_that_connection_only(
    case: str, identity: ServerIdentity, tmp_path: Path
) -> None:
    channel, data, code = BAD_INPUT[case]
    server = await start(identity, echo_handler)
    try:
        healthy = await connect(
            "127.0.0.1", server.port, client_settings(tmp_path), hello(token="healthy-viewer-1")
        )
        bad = await connect(
            "127.0.0.1", server.port, client_settings(tmp_path), hello(token="bad-viewer-2222")
        )
        await round_trip(bad, 1)
        raw_write(bad, data, channel=channel)
        event = await within(bad.wait_closed())
        assert event.by_peer and event.code == code, event
        assert event.reason
        await round_trip(healthy, 2)
        await healthy.aclose()
    finally:
        await server.close()


@run
async def test_stream_level_violations(identity: ServerIdentity, tmp_path: Path) -> None:
    server = await start(identity, echo_handler)
    try:
        settings = client_settings(tmp_path)
        c = await connect("127.0.0.1", server.port, settings, hello())
        p: Any = c._p
        raw_write(
            c,
            b"\x09" + encode_frame(1, b""),
            stream=p._quic.get_next_available_stream_id(is_unidirectional=True),
        )
        assert (await within(c.wait_closed())).code == ErrorCode.UNKNOWN_CHANNEL

        c = await connect("127.0.0.1", server.port, settings, hello())
        p = c._p
        raw_write(c, b"\x00", stream=p._quic.get_next_available_stream_id(is_unidirectional=False))
        event = await within(c.wait_closed())
        assert event.code == ErrorCode.PROTOCOL_VIOLATION and "unidirectional" in event.reason

        c = await connect("127.0.0.1", server.port, settings, hello())
        await round_trip(c, 3)  # the control stream exists now; open a second one for channel 0
        p = c._p
        raw_write(c, b"\x00", stream=p._quic.get_next_available_stream_id(is_unidirectional=True))
        event = await within(c.wait_closed())
        assert event.code == ErrorCode.PROTOCOL_VIOLATION and "second stream" in event.reason
    finally:
        await server.close()


def garbage_datagrams() -> list[bytes]:
    out = [os.urandom(n) for n in (1, 5, 40, 1200, 1500)]
    for _ in range(200):  # long-header "Initial" packets with random content, as a scanner would send
        body = bytearray(os.urandom(1200))
        body[0] = 0xC3
        body[1:5] = b"\x00\x00\x00\x01"
        body[5] = 8
        body[14] = 8
        body[23] = 0
        out.append(bytes(body))
    out += [b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 1200, b"\xff" * 1300]
    return out


@run
async def test_garbage_on_the_port_disturbs_nobody(identity: ServerIdentity, tmp_path: Path) -> None:
    server = await start(identity, echo_handler)
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i, dgram in enumerate(garbage_datagrams() * 3):
                sock.sendto(dgram, ("127.0.0.1", server.port))
                if i % 50 == 0:
                    await round_trip(conn, i)
        finally:
            sock.close()
        await round_trip(conn, 9999)
        assert len(server._live) == 1  # no state kept for any of the garbage
        await conn.aclose()
    finally:
        await server.close()


@run
async def test_a_quic_client_of_another_protocol_is_refused(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    server = await start(identity, echo_handler)
    try:
        cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=ssl.CERT_NONE)
        with pytest.raises(ConnectionError):
            async with aioquic_connect("127.0.0.1", server.port, configuration=cfg):
                pass
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        await round_trip(conn, 1)
        await conn.aclose()
    finally:
        await server.close()


@run
async def test_a_client_that_never_completes_hello_is_timed_out(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    closed: list[ConnectionClosed] = []
    server = await start(identity, echo_handler, wire=WireConfig(handshake_timeout=1.0))
    try:
        cfg = QuicConfiguration(is_client=True, alpn_protocols=["wayray"], verify_mode=ssl.CERT_NONE)
        async with aioquic_connect("127.0.0.1", server.port, configuration=cfg) as quic:
            await eventually(
                lambda: not server._live or all(p.wire.closed for p in server._live), "handshake timeout"
            )
            closed = [p.wire.close_event for p in server._live if p.wire.close_event]
            await quic.wait_closed()
        assert closed and closed[0].code == ErrorCode.HANDSHAKE_TIMEOUT
    finally:
        await server.close()


@run
async def test_a_vanished_viewer_is_noticed_within_seconds(identity: ServerIdentity, tmp_path: Path) -> None:
    ends: list[ConnectionClosed] = []

    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1, output_height=1)
        ends.append(await conn.wait_closed())

    server = await start(identity, handle, wire=FAST_WIRE)  # ping every 0.2 s, idle timeout 1.5 s
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        # The viewer's machine loses power: it neither receives nor sends anything, ever again.
        p: Any = conn._p
        p.datagram_received = lambda data, addr: None
        p._transport.sendto = lambda data, addr=None: None
        await eventually(lambda: bool(ends), "the server notices the vanished viewer", timeout=30)
        assert ends[0].code == ErrorCode.IDLE_TIMEOUT and "answered no Ping" in ends[0].reason
    finally:
        await server.close()


@run
async def test_a_client_that_never_reads_is_bounded_and_closed(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    limit = 128 * 1024
    high_water = 32 * 1024
    window = 4
    frame_size = 20_000
    peak = 0
    results: dict[str, ConnectionClosed] = {}

    async def handle(conn: ServerConnection) -> None:
        nonlocal peak
        conn.accept(session_id=conn.hello.token, output_width=64, output_height=48)
        if conn.hello.token.startswith("healthy"):
            await echo_handler_after_accept(conn)
            return
        seq = 0
        text = "x" * 1000
        while not conn.closed:
            if conn.can_send_frame():
                seq += 1
                region = Region(0, 0, 1, 1, RegionEncoding.RAW_ZSTD, os.urandom(frame_size))
                conn.send(
                    FrameUpdate(seq=seq, width=64, height=48, keyframe=False, regions=(region,), checksum=0)
                )
            try:
                conn.send(ClipboardText(selection=Selection.CLIPBOARD, text=text))
            except Exception:
                break
            peak = max(peak, conn.buffered_bytes())
            await asyncio.sleep(0.002)
        results["slow"] = await conn.wait_closed()

    # The slow reader is closed by its send buffer, or by the idle timeout: long enough that the
    # healthy viewer on the same server is not closed when a loaded machine stalls the loop.
    wire = WireConfig(frame_window=window, send_queue_limit=limit, ping_interval=0.2, idle_timeout=10.0)
    quic = QuicSettings(send_high_water=high_water)
    server = await start(identity, handle, wire=wire, quic=quic)
    try:
        healthy = await connect(
            "127.0.0.1", server.port, client_settings(tmp_path), hello(token="healthy-0000000")
        )
        slow = await connect(
            "127.0.0.1", server.port, client_settings(tmp_path), hello(token="slow-reader-000")
        )
        sp: Any = slow._p
        sp.datagram_received = lambda data, addr: None  # it stops reading, but its socket stays open
        for i in range(20):
            await round_trip(healthy, i)
            await asyncio.sleep(0.05)
        await eventually(
            lambda: "slow" in results, "the server closes the viewer that does not read", timeout=30
        )
        assert results["slow"].code in (ErrorCode.IDLE_TIMEOUT, ErrorCode.SEND_BUFFER_FULL), results["slow"]
        # Two channels (control, display) each hold at most: the wire's queue + aioquic's high water
        # + one frame past it; display adds at most the credit window of frames.
        bound = 2 * (limit + high_water + frame_size + 2048) + window * (frame_size + 100)
        assert 0 < peak <= bound, (peak, bound)
        await round_trip(healthy, 999)
        await healthy.aclose()
    finally:
        await server.close()


async def echo_handler_after_accept(conn: ServerConnection) -> None:
    async for msg in conn:
        if isinstance(msg, Key):
            conn.send(ClipboardText(selection=Selection.CLIPBOARD, text=f"key {msg.code}"))


@run
async def test_a_viewer_that_does_not_ack_gets_no_more_frames(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    sent: list[int] = []

    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=64, output_height=48)
        seq = 0
        while True:
            await conn.wait_frame_credit()
            seq += 1
            region = Region(0, 0, 1, 1, RegionEncoding.FILL, b"\0\0\0\0")
            conn.send(
                FrameUpdate(seq=seq, width=64, height=48, keyframe=False, regions=(region,), checksum=0)
            )
            sent.append(seq)

    server = await start(
        identity, handle, wire=WireConfig(frame_window=2, ping_interval=0.2, idle_timeout=30)
    )
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        got = [await within(conn.receive()), await within(conn.receive())]
        await asyncio.sleep(0.5)
        assert sent == [1, 2] and conn.receive_nowait() is None  # stopped at the window
        conn.send(FrameAck(seq=got[-1].seq, decode_us=0))
        assert (await within(conn.receive())).seq == 3
        assert not conn.closed  # a slow viewer is not an error: pings still answered
        await conn.aclose()
    finally:
        await server.close()


_ = WireServer


@run
async def test_a_peer_refusing_or_resetting_streams_is_closed_cleanly(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=64, output_height=48)
        region = Region(0, 0, 1, 1, RegionEncoding.FILL, b"\0\0\0\0")
        conn.send(FrameUpdate(seq=1, width=64, height=48, keyframe=True, regions=(region,), checksum=0))
        await conn.wait_closed()

    server = await start(identity, handle)
    try:
        healthy = await connect(
            "127.0.0.1", server.port, client_settings(tmp_path), hello(token="healthy-viewer-1")
        )
        for how in ("stop display", "stop control", "reset control"):
            c = await connect(
                "127.0.0.1", server.port, client_settings(tmp_path), hello(token="rude-viewer-0000")
            )
            await within(c.receive())  # the frame: the server's display stream exists now
            p: Any = c._p
            if how == "reset control":
                p._quic.reset_stream(p._send_streams[Channel.CONTROL], 7)
            else:
                (sid,) = [
                    s for s, ch in p._recv_streams.items() if ch == (1 if how == "stop display" else 0)
                ]
                p._quic.stop_stream(sid, 7)
            p.transmit()
            event = await within(c.wait_closed())
            assert event.code == ErrorCode.PROTOCOL_VIOLATION, (how, event)
        await round_trip_clipboard_free(healthy)
        await healthy.aclose()
    finally:
        await server.close()


async def round_trip_clipboard_free(conn: ClientConnection) -> None:
    """The healthy viewer still gets pongs: its connection stays established."""
    await asyncio.sleep(0.5)  # room for a close the rude peers might have caused to arrive
    await eventually(lambda: conn.closed or conn.rtt is not None, "a Pong on the healthy connection")
    assert not conn.closed


@run
async def test_an_application_that_does_not_keep_up_is_bounded_too(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()  # never reads what the viewer sends

    server = await start(identity, handle, quic=QuicSettings(receive_queue_limit=64 * 1024))
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        for _ in range(200):
            if conn.closed:
                break
            conn.send(ClipboardText(selection=Selection.CLIPBOARD, text="c" * 1000))
            await asyncio.sleep(0.001)
        event = await within(conn.wait_closed())
        assert event.code == ErrorCode.RECEIVE_BUFFER_FULL and "not keeping up" in event.reason
    finally:
        await server.close()
