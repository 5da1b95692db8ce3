"""Real QUIC on 127.0.0.1, both endpoints in this process: handshake, messages, credit, closes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.transport.helpers import FAST_WIRE, client_settings, eventually, hello, run, start, within
from wayray.client.identity import terminal_key
from wayray.transport import (
    ConnectError,
    ConnectionClosedError,
    PinnedFingerprint,
    ServerConnection,
    ServerIdentity,
    ServerIdentityError,
    connect,
)
from wayray.wire import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    ClipboardText,
    CursorPosition,
    ErrorCode,
    FrameAck,
    FrameUpdate,
    Hello,
    Key,
    KeymapUpdate,
    KeyState,
    Region,
    RegionEncoding,
    Selection,
    WireConfig,
)

KEYMAP = "xkb_keymap {\n" + "    key <AC01> { [ a, A ] };\n" * 2500 + "};\n"


def frame(seq: int, size: int = 16) -> FrameUpdate:
    region = Region(0, 0, 4, 1, RegionEncoding.RAW_ZSTD, bytes([seq % 256]) * size)
    return FrameUpdate(seq=seq, width=1280, height=720, keyframe=seq == 1, regions=(region,), checksum=seq)


@run
async def test_hello_carries_keymap_and_screen_and_messages_flow_both_ways(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    got: list[Any] = []
    hellos = []

    async def handle(conn: ServerConnection) -> None:
        hellos.append(conn.hello)
        conn.accept(session_id="s-42", output_width=1280, output_height=720, resumed=True)
        conn.send(ClipboardText(selection=Selection.CLIPBOARD, text="copied in the session"))
        async for msg in conn:
            got.append(msg)

    server = await start(identity, handle)
    try:
        params = hello(keymap=KEYMAP, screen_width=2560, screen_height=1440, scale_120=180)
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), params)
        assert conn.server_hello is not None
        assert (conn.server_hello.session_id, conn.server_hello.resumed) == ("s-42", True)
        assert conn.server_fingerprint == identity.fingerprint
        clip = await within(conn.receive())
        assert clip == ClipboardText(selection=Selection.CLIPBOARD, text="copied in the session")
        conn.send(Key(code=30, state=KeyState.PRESSED, time_ms=10))
        conn.send(Key(code=30, state=KeyState.RELEASED, time_ms=20))
        conn.send(KeymapUpdate(keymap="xkb_keymap { de };"))
        conn.send(ClipboardText(selection=Selection.PRIMARY, text="copied on the viewer"))
        await eventually(lambda: len(got) == 4, "the server got all four messages")
        (h,) = hellos
        assert (h.keymap, h.screen_width, h.screen_height, h.scale_120) == (KEYMAP, 2560, 1440, 180)
        assert h.token == "badge-0011223344556677"
        # Order holds within a channel (input), not across channels (clipboard is on control).
        assert [type(m).__name__ for m in got if not isinstance(m, ClipboardText)] == [
            "Key",
            "Key",
            "KeymapUpdate",
        ]
        assert [m.text for m in got if isinstance(m, ClipboardText)] == ["copied on the viewer"]
        await conn.aclose()
    finally:
        await server.close()


@run
async def test_frames_never_exceed_the_credit_window(identity: ServerIdentity, tmp_path: Path) -> None:
    window = 3
    max_in_flight = 0
    sent = 0

    async def handle(conn: ServerConnection) -> None:
        nonlocal max_in_flight, sent
        conn.accept(session_id="s", output_width=1280, output_height=720)
        seq = 0
        while seq < 40:
            await conn.wait_frame_credit()
            seq += 1
            conn.send(frame(seq, size=20_000))
            sent = seq
            max_in_flight = max(max_in_flight, window - conn.frame_credit)
        await conn.wait_closed()

    server = await start(
        identity, handle, wire=WireConfig(frame_window=window, ping_interval=0.2, idle_timeout=30)
    )
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        assert conn.server_hello is not None and conn.server_hello.frame_window == window
        seqs = []
        while len(seqs) < 40:
            msg = await within(conn.receive())
            assert isinstance(msg, FrameUpdate)
            seqs.append(msg.seq)
            if len(seqs) % 10 == 0:
                # A slow viewer: the server must stop at the window, not queue more.
                await asyncio.sleep(0.3)
                assert sent <= msg.seq + window - 0
            conn.send(FrameAck(seq=msg.seq, decode_us=1000))
        assert seqs == list(range(1, 41))
        assert max_in_flight == window
        await conn.aclose()
    finally:
        await server.close()


#: Quiet sides (no keep-alive Ping for 25 s) and a viewer that holds a small frame's ack for 20 s:
#: only the message it rides with, or the server's own Ping, can bring it sooner.
_QUIET = WireConfig(ping_interval=25, idle_timeout=30, handshake_timeout=30)
_HOLDING = WireConfig(ping_interval=25, idle_timeout=30, handshake_timeout=30, frame_ack_hold=20)


async def _held_ack_case(identity: ServerIdentity, tmp_path: Path, key_first: bool) -> tuple[int, ...]:
    """The server sends a keyframe and a small frame; the viewer acks both with ack_frame (the small
    one's ack is held). With ``key_first`` the viewer then sends a key and the server waits for the
    ack; without, the server calls wait_frames_acked at once. Returns the frames unacked at the end."""
    acked_keyframe = asyncio.Event()
    done: list[tuple[int, ...]] = []

    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1280, output_height=720)
        conn.send(frame(1, size=4000))
        conn.send(frame(2))
        if key_first:
            await eventually(lambda: conn.unacked_frames == (2,), "the keyframe's ack", timeout=15)
            acked_keyframe.set()
            await eventually(lambda: conn.unacked_frames == (), "the ack with the key", timeout=15)
        else:
            # wrsrvd does this before it switches compositors: its Ping brings the held ack.
            await within(conn.wait_frames_acked(), timeout=15)
        done.append(conn.unacked_frames)
        await conn.wait_closed()

    server = await start(identity, handle, wire=_QUIET)
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path, wire=_HOLDING), hello())
        for _ in range(2):
            msg = await within(conn.receive())
            conn.ack_frame(msg.seq, 500)
        if key_first:
            await within(acked_keyframe.wait(), timeout=15)
            conn.send(Key(code=30, state=KeyState.PRESSED, time_ms=10))
        await eventually(lambda: bool(done), "the server saw every frame acknowledged", timeout=20)
        await conn.aclose()
        return done[0]
    finally:
        await server.close()


@run
async def test_a_small_frames_held_ack_comes_with_the_next_key(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    assert await _held_ack_case(identity, tmp_path, key_first=True) == ()


@run
async def test_a_server_waiting_for_every_ack_gets_the_held_one_at_once(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    assert await _held_ack_case(identity, tmp_path, key_first=False) == ()


@run
async def test_incompatible_version_is_refused_with_a_reason(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    handled = []

    async def handle(conn: ServerConnection) -> None:
        handled.append(conn)

    server = await start(identity, handle)
    try:
        settings = client_settings(
            tmp_path, wire=WireConfig(version=(2, 0), ping_interval=0.2, idle_timeout=1.5)
        )
        with pytest.raises(ConnectionClosedError) as info:
            await connect("127.0.0.1", server.port, settings, hello())
        assert info.value.code == ErrorCode.UNSUPPORTED_VERSION
        ours = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
        assert f"client speaks WayRay protocol 2.0 and this server {ours}" in info.value.reason
        assert handled == []  # the application never saw it
    finally:
        await server.close()


@run
async def test_the_server_application_refuses_a_token(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        assert conn.hello.token == "revoked-badge-000"
        conn.close(ErrorCode.TOKEN_REJECTED, "this badge was revoked")

    server = await start(identity, handle)
    try:
        with pytest.raises(ConnectionClosedError) as info:
            await connect(
                "127.0.0.1", server.port, client_settings(tmp_path), hello(token="revoked-badge-000")
            )
        assert (info.value.code, info.value.reason) == (ErrorCode.TOKEN_REJECTED, "this badge was revoked")
    finally:
        await server.close()


@run
async def test_capabilities_are_the_intersection(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        assert conn.offered_capabilities == {"display", "input"}
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    server = await start(
        identity, handle, wire=WireConfig(capabilities=frozenset({"display", "input", "usb"}))
    )
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        assert conn.capabilities == {"display", "input"}
        with pytest.raises(Exception, match="'clipboard' capability"):
            conn.send(ClipboardText(selection=Selection.CLIPBOARD, text="x"))
        await conn.aclose()
    finally:
        await server.close()


@run
async def test_tofu_records_then_refuses_a_changed_identity_without_sending_the_token(
    identity: ServerIdentity, other_identity: ServerIdentity, tmp_path: Path
) -> None:
    hellos: list[Any] = []

    async def handle(conn: ServerConnection) -> None:
        hellos.append(conn.hello)
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    settings = client_settings(tmp_path)
    server = await start(identity, handle)
    port = server.port
    conn = await connect("127.0.0.1", port, settings, hello())
    await conn.aclose()
    await server.close()
    known = (tmp_path / "known_hosts").read_text()
    assert f"127.0.0.1:{port} {identity.fingerprint}" in known
    assert len(hellos) == 1

    impostor = await start(other_identity, handle, port=port)
    try:
        with pytest.raises(ServerIdentityError) as info:
            await connect("127.0.0.1", port, settings, hello())
        msg = str(info.value)
        assert str(tmp_path / "known_hosts") in msg
        assert identity.fingerprint in msg and other_identity.fingerprint in msg
        assert len(hellos) == 1  # the impostor never saw a Hello, so never the token
    finally:
        await impostor.close()


@run
async def test_pinned_fingerprint(
    identity: ServerIdentity, other_identity: ServerIdentity, tmp_path: Path
) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    server = await start(identity, handle)
    try:
        good = client_settings(tmp_path, trust=PinnedFingerprint(identity.fingerprint.upper()))
        conn = await connect("127.0.0.1", server.port, good, hello())
        await conn.aclose()
        bad = client_settings(tmp_path, trust=PinnedFingerprint(other_identity.fingerprint))
        with pytest.raises(
            ServerIdentityError, match="configured fingerprint is " + other_identity.fingerprint
        ):
            await connect("127.0.0.1", server.port, bad, hello())
        assert not (tmp_path / "known_hosts").exists()
    finally:
        await server.close()


@run
async def test_server_shutdown_tells_the_viewer(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    server = await start(identity, handle)
    conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
    await server.close()
    event = await within(conn.wait_closed())
    assert event.code == ErrorCode.SERVER_SHUTDOWN and event.by_peer
    with pytest.raises(ConnectionClosedError, match="shutting down"):
        conn.send(Key(code=1, state=KeyState.PRESSED, time_ms=0))


@run
async def test_handler_crash_closes_only_that_connection(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        if conn.hello.token.startswith("crash"):
            raise RuntimeError("boom")
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    server = await start(identity, handle)
    try:
        good = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        with pytest.raises(ConnectionClosedError) as info:
            await connect(
                "127.0.0.1", server.port, client_settings(tmp_path), hello(token="crash-0000000000")
            )
        assert info.value.code == ErrorCode.INTERNAL_ERROR and "RuntimeError" in info.value.reason
        good.send(Key(code=1, state=KeyState.PRESSED, time_ms=0))
        await asyncio.sleep(0.3)
        assert not good.closed
        await good.aclose()
    finally:
        await server.close()


@run
async def test_connection_limit(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1, output_height=1)
        await conn.wait_closed()

    server = await start(identity, handle, max_connections=1)
    try:
        first = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        with pytest.raises(ConnectionClosedError) as info:
            await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        assert info.value.code == ErrorCode.SERVER_BUSY
        assert not first.closed
        await first.aclose()
    finally:
        await server.close()


@run
async def test_nothing_listening_is_a_clear_connect_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # now nothing listens there
    with pytest.raises(ConnectError, match=f"refused the connection: nothing listens on UDP port {port}"):
        await connect("127.0.0.1", port, client_settings(tmp_path), hello())


@run
async def test_a_silent_address_times_out_with_a_clear_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives, never answers
    s.bind(("127.0.0.1", 0))
    try:
        port = s.getsockname()[1]
        with pytest.raises(ConnectError, match="no answer from 127.0.0.1:.* within 1 s"):
            await connect("127.0.0.1", port, client_settings(tmp_path, connect_timeout=1.0), hello())
    finally:
        s.close()


@run
async def test_latest_wins_cursor_positions(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="s", output_width=1, output_height=1)
        for x in range(500):  # in one go: they coalesce in the send queue
            conn.send(CursorPosition(x=x, y=0, visible=True, serial=1))
        await conn.wait_closed()

    server = await start(identity, handle)
    try:
        conn = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        last = await within(conn.receive())
        while last.x != 499:
            last = await within(conn.receive())
        assert conn.receive_nowait() is None
        await conn.aclose()
    finally:
        await server.close()


_ = FAST_WIRE


@run
async def test_ipv6_and_dual_stack(identity: ServerIdentity, tmp_path: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id=conn.peer_address, output_width=1, output_height=1)
        await conn.wait_closed()

    server = await start(identity, handle, host="::")
    try:
        v6 = await connect("::1", server.port, client_settings(tmp_path), hello())
        v4 = await connect("127.0.0.1", server.port, client_settings(tmp_path), hello())
        assert v6.server_hello is not None and v6.server_hello.session_id.startswith("[::1]:")
        assert v4.server_hello is not None and v4.server_hello.session_id.startswith("127.0.0.1:")
        assert f"[::1]:{server.port} {identity.fingerprint}" in (tmp_path / "known_hosts").read_text()
        await v6.aclose()
        await v4.aclose()
    finally:
        await server.close()


def test_the_token_never_reaches_the_logs(
    identity: ServerIdentity, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "qx7-SECRET-9f8e7d6c5b4a"

    async def scenario() -> None:
        async def handle(conn: ServerConnection) -> None:
            assert conn.hello.token == secret
            conn.close(ErrorCode.TOKEN_REJECTED, "unknown badge")

        server = await start(identity, handle)
        try:
            with pytest.raises(ConnectionClosedError):
                await connect("127.0.0.1", server.port, client_settings(tmp_path), hello(token=secret))
        finally:
            await server.close()

    with caplog.at_level("DEBUG"):
        asyncio.run(scenario())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=<given>" in text  # the redacted form is there: nothing of the token, not its length
    assert "SECRET" not in text and "qx7" not in text and "23 chars" not in text


@run
async def test_a_kiosk_gives_each_server_a_terminal_identity_of_its_own(
    identity: ServerIdentity, other_identity: ServerIdentity, tmp_path: Path
) -> None:
    """The terminal identity a Hello carries is derived for the server reached (its certificate): an
    impostor the viewer trusted on first use, or any other server, learns a value that is not this
    kiosk's at the real server, so it cannot pass for the kiosk there (the re-authentication grace
    trusts it); the real server gets the same value on every connection."""
    hellos: dict[str, list[Hello]] = {identity.fingerprint: [], other_identity.fingerprint: []}

    def handler(fp: str) -> Any:
        async def handle(conn: ServerConnection) -> None:
            hellos[fp].append(conn.hello)
            conn.accept(session_id="s", output_width=64, output_height=64)
            async for _ in conn:
                pass

        return handle

    real = await start(identity, handler(identity.fingerprint))
    impostor = await start(other_identity, handler(other_identity.fingerprint))
    key = terminal_key("this kiosk's terminal token")
    try:
        for server in (real, impostor, real):
            conn = await connect(
                "127.0.0.1", server.port, client_settings(tmp_path), hello(terminal_key=key)
            )
            await conn.aclose()
        (first, again), (seen_by_impostor,) = (
            hellos[identity.fingerprint],
            hellos[other_identity.fingerprint],
        )
        assert first.terminal_id == again.terminal_id  # the same kiosk, to the server that knows it
        assert len(first.terminal_id) == 64 and seen_by_impostor.terminal_id != first.terminal_id
        assert key not in (first.terminal_id, seen_by_impostor.terminal_id)  # the key never travels
        # A viewer without a key (or one that states its id outright) sends what it was given.
        conn = await connect("127.0.0.1", real.port, client_settings(tmp_path), hello(terminal_id="ab" * 32))
        await conn.aclose()
        assert hellos[identity.fingerprint][-1].terminal_id == "ab" * 32
    finally:
        await real.close()
        await impostor.close()
