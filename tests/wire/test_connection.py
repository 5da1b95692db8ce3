"""The sans-IO connection: handshake, versions, capabilities, credit, keep-alive, bounds, bad peers."""

from __future__ import annotations

import struct

import pytest

from tests.wire.wirepair import connected_pair, drain, hello_params, pump
from wayray.wire import (
    IMPLEMENTED_CAPABILITIES,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Capability,
    Channel,
    ClipboardText,
    ConnectionClosed,
    CursorPosition,
    ErrorCode,
    FrameAck,
    FrameUpdate,
    HandshakeCompleted,
    HelloReceived,
    Key,
    KeyState,
    MessageReceived,
    PointerButton,
    PointerMotion,
    Region,
    RegionEncoding,
    Selection,
    SessionEvent,
    SessionEventKind,
    State,
    WireConfig,
    WireConnection,
    WireRole,
    WireUsageError,
    encode_frame,
    encode_frame_update,
    encode_message,
)
from wayray.wire.messages import ButtonState


def frame(seq: int, size: int = 4) -> FrameUpdate:
    region = Region(0, 0, 1, 1, RegionEncoding.FILL, bytes(size))
    return FrameUpdate(seq=seq, width=64, height=48, keyframe=seq == 1, regions=(region,), checksum=seq)


def closed(conn: WireConnection) -> ConnectionClosed:
    evs = [e for e in drain(conn) if isinstance(e, ConnectionClosed)]
    assert evs, f"{conn.role} did not close"
    return evs[-1]


def raw(conn: WireConnection, channel: int, data: bytes, now: float = 0.0) -> ConnectionClosed:
    conn.receive(channel, data, now)
    return closed(conn)


# --- handshake -----------------------------------------------------------------------------------


def test_handshake_negotiates_the_intersection_of_capabilities() -> None:
    server = WireConfig(capabilities=frozenset({"display", "input", "clipboard", "audio"}))
    client = WireConfig(capabilities=frozenset({"display", "input", "cursor", "clipboard", "teleport"}))
    srv, cli = connected_pair(server, client)
    assert srv.capabilities == cli.capabilities == {"display", "input", "clipboard"}
    assert srv.state is cli.state is State.ESTABLISHED
    assert cli.server_hello is not None and cli.server_hello.frame_window == 4
    assert srv.hello is not None and srv.hello.keymap == "xkb_keymap { };"


def test_hello_received_then_the_server_decides() -> None:
    srv = WireConnection(WireRole.SERVER, now=0)
    cli = WireConnection(WireRole.CLIENT, now=0)
    cli.send_hello(hello_params(token="kiosk-42"))
    pump(cli, srv, 0.1)
    (ev,) = drain(srv)
    assert isinstance(ev, HelloReceived) and ev.hello.token == "kiosk-42"
    assert srv.state is State.HELLO_RECEIVED
    # The front door refuses this token: the client learns why.
    srv.close(ErrorCode.TOKEN_REJECTED, "unknown badge")
    pump(srv, cli, 0.2)
    ev2 = closed(cli)
    assert (ev2.code, ev2.reason, ev2.by_peer) == (ErrorCode.TOKEN_REJECTED, "unknown badge", True)


def test_incompatible_major_version_is_refused_with_a_reason() -> None:
    srv = WireConnection(WireRole.SERVER, now=0)
    cli = WireConnection(WireRole.CLIENT, WireConfig(version=(2, 3)), now=0)
    cli.send_hello(hello_params())
    pump(cli, srv, 0)
    ev = closed(srv)
    assert ev.code == ErrorCode.UNSUPPORTED_VERSION and not ev.by_peer
    ours = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
    assert f"client speaks WayRay protocol 2.3 and this server {ours}" in ev.reason
    pump(srv, cli, 0)
    ev = closed(cli)
    assert ev.code == ErrorCode.UNSUPPORTED_VERSION and ev.by_peer and "2.3" in ev.reason


def test_a_future_major_hello_with_another_layout_still_gets_the_version_error() -> None:
    srv = WireConnection(WireRole.SERVER, now=0)
    body = struct.pack("<HH", 7, 0) + b"\xff" * 40  # whatever version 7 puts after the version
    ev = raw(srv, Channel.CONTROL, encode_frame(1, body))
    assert ev.code == ErrorCode.UNSUPPORTED_VERSION


def test_minor_version_in_use_is_the_smaller() -> None:
    srv, cli = connected_pair(WireConfig(version=(1, 4)), WireConfig(version=(1, 2)))
    assert srv.version == cli.version == (1, 2)


def test_anything_before_hello_is_refused() -> None:
    srv = WireConnection(WireRole.SERVER, now=0)
    ev = raw(srv, Channel.INPUT, encode_message(Key(code=30, state=KeyState.PRESSED, time_ms=1)))
    assert ev.code == ErrorCode.UNEXPECTED_MESSAGE and "must send Hello first" in ev.reason


def test_client_may_not_send_before_server_hello() -> None:
    cli = WireConnection(WireRole.CLIENT, now=0)
    cli.send_hello(hello_params())
    with pytest.raises(WireUsageError, match="before the handshake"):
        cli.send(Key(code=30, state=KeyState.PRESSED, time_ms=1))


def test_handshake_timeout() -> None:
    srv = WireConnection(WireRole.SERVER, WireConfig(handshake_timeout=3), now=100)
    assert srv.get_timer() == 103
    srv.handle_timer(102.9)
    assert srv.state is State.START
    srv.handle_timer(103)
    ev = closed(srv)
    assert ev.code == ErrorCode.HANDSHAKE_TIMEOUT and "no Hello from the client within 3 s" in ev.reason


def test_server_frames_that_overtake_server_hello_are_held_not_refused() -> None:
    srv = WireConnection(WireRole.SERVER, now=0)
    cli = WireConnection(WireRole.CLIENT, now=0)
    cli.send_hello(hello_params())
    pump(cli, srv, 0)
    drain(srv)
    srv.accept(session_id="s", output_width=64, output_height=48, now=0)
    srv.send(frame(1))
    out = dict(srv.data_to_send())
    # QUIC streams are independent: the display stream arrives first.
    cli.receive(Channel.DISPLAY, out[Channel.DISPLAY], 0)
    assert drain(cli) == []
    cli.receive(Channel.CONTROL, out[Channel.CONTROL], 0)
    evs = drain(cli)
    assert isinstance(evs[0], HandshakeCompleted)
    assert isinstance(evs[1], MessageReceived) and evs[1].message == frame(1)


def test_server_hello_confirming_capabilities_never_offered_is_a_violation() -> None:
    cli = WireConnection(WireRole.CLIENT, WireConfig(capabilities=frozenset({"display"})), now=0)
    cli.send_hello(hello_params())
    cli.data_to_send()
    from wayray.wire import ServerHello

    sh = ServerHello(
        version_major=1,
        version_minor=0,
        capabilities=frozenset({"display", "usb"}),
        session_id="s",
        output_width=1,
        output_height=1,
        output_scale_120=120,
        resumed=False,
        keyframe_follows=True,
        frame_window=2,
        server_name="x",
        server_version="y",
    )
    ev = raw(cli, Channel.CONTROL, encode_message(sh))
    assert ev.code == ErrorCode.PROTOCOL_VIOLATION and "['usb']" in ev.reason


def test_second_hello_is_unexpected() -> None:
    srv, cli = connected_pair()
    ev = raw(srv, Channel.CONTROL, encode_message(srv.hello))
    assert ev.code == ErrorCode.UNEXPECTED_MESSAGE


# --- capabilities and directions ------------------------------------------------------------------


def test_capability_gating_both_ways() -> None:
    srv, cli = connected_pair(WireConfig(capabilities=frozenset({"display", "input"})))
    assert Capability.CLIPBOARD not in cli.capabilities
    with pytest.raises(WireUsageError, match="'clipboard' capability"):
        cli.send(ClipboardText(selection=Selection.CLIPBOARD, text="hi"))
    # A client that sends it anyway is closed with a clear reason.
    ev = raw(srv, Channel.CONTROL, encode_message(ClipboardText(selection=Selection.CLIPBOARD, text="hi")))
    assert ev.code == ErrorCode.CAPABILITY_NOT_NEGOTIATED
    assert "ClipboardText needs the 'clipboard' capability" in ev.reason


def test_clipboard_text_both_ways_when_negotiated() -> None:
    srv, cli = connected_pair()
    cli.send(ClipboardText(selection=Selection.CLIPBOARD, text="from the viewer ✓"))
    srv.send(ClipboardText(selection=Selection.PRIMARY, text="from the session"))
    pump(cli, srv, 0)
    pump(srv, cli, 0)
    assert [e.message.text for e in drain(srv) if isinstance(e, MessageReceived)] == ["from the viewer ✓"]
    assert [e.message.text for e in drain(cli) if isinstance(e, MessageReceived)] == ["from the session"]


def test_wrong_direction_is_refused() -> None:
    srv, cli = connected_pair()
    with pytest.raises(WireUsageError, match="a server never sends Key"):
        srv.send(Key(code=1, state=KeyState.PRESSED, time_ms=0))
    # ClipboardText goes both ways: the client takes it from the server.
    cli.receive(Channel.CONTROL, encode_message(ClipboardText(selection=Selection.CLIPBOARD, text="")), 0)
    assert cli.established
    ev = raw(srv, Channel.CONTROL, encode_message(SessionEvent(kind=SessionEventKind.GREETER, detail="")))
    assert ev.code == ErrorCode.UNEXPECTED_MESSAGE and "never sent by the client" in ev.reason


def test_unknown_and_reserved_channels() -> None:
    srv, _ = connected_pair()
    ev = raw(srv, 9, b"\x00")
    assert ev.code == ErrorCode.UNKNOWN_CHANNEL
    srv, _ = connected_pair()
    ev = raw(srv, Channel.USB, encode_frame(1, b""))
    assert ev.code == ErrorCode.PROTOCOL_VIOLATION and "USB" in ev.reason
    # The audio channel carries the server's sound; a client sending the server's AudioStart is wrong.
    srv, _ = connected_pair()
    ev = raw(srv, Channel.AUDIO, encode_frame(1, b""))
    assert ev.code == ErrorCode.UNEXPECTED_MESSAGE and "AudioStart" in ev.reason
    _, cli = connected_pair()
    ev = raw(cli, Channel.INPUT, encode_frame(1, b""))
    assert ev.code == ErrorCode.PROTOCOL_VIOLATION


# --- frame credit ---------------------------------------------------------------------------------


def test_credit_window_limits_unacknowledged_frames() -> None:
    srv, cli = connected_pair(WireConfig(frame_window=2))
    assert srv.frame_credit == 2 and srv.can_send_frame()
    srv.send(frame(1))
    srv.send(frame(2))
    assert srv.frame_credit == 0 and not srv.can_send_frame()
    with pytest.raises(WireUsageError, match="no frame credit"):
        srv.send(frame(3))
    pump(srv, cli, 0)
    seqs = [e.message.seq for e in drain(cli) if isinstance(e, MessageReceived)]
    assert seqs == [1, 2]
    cli.send(FrameAck(seq=1, decode_us=900))
    pump(cli, srv, 0)
    assert srv.frame_credit == 1
    cli.send(FrameAck(seq=2, decode_us=900))
    pump(cli, srv, 0)
    assert srv.frame_credit == 2 and srv.unacked_frames == ()


def test_acks_are_cumulative_and_coalesce() -> None:
    srv, cli = connected_pair(WireConfig(frame_window=8))
    for seq in (10, 11, 12, 13):
        srv.send(frame(seq))
    pump(srv, cli, 0)
    drain(cli)
    for seq in (10, 11, 12):
        cli.send(FrameAck(seq=seq, decode_us=1))
    assert len(cli.data_to_send()[0][1]) == len(encode_message(FrameAck(seq=12, decode_us=1)))
    assert cli.unacked_frames == (13,)


def test_server_overrunning_the_window_is_a_flow_control_error() -> None:
    srv, cli = connected_pair(WireConfig(frame_window=2))
    data = b"".join(encode_message(frame(s)) for s in (1, 2, 3))
    ev = raw(cli, Channel.DISPLAY, data)
    assert ev.code == ErrorCode.FLOW_CONTROL_ERROR and "window is 2" in ev.reason


def test_ack_for_a_frame_never_sent_is_a_flow_control_error() -> None:
    srv, _ = connected_pair()
    srv.send(frame(5))
    ev = raw(srv, Channel.DISPLAY, encode_message(FrameAck(seq=6, decode_us=0)))
    assert ev.code == ErrorCode.FLOW_CONTROL_ERROR


def test_frame_seqs_must_increase() -> None:
    srv, cli = connected_pair()
    srv.send(frame(5))
    with pytest.raises(WireUsageError, match="seq 5 does not follow seq 5"):
        srv.send(frame(5))
    ev = raw(cli, Channel.DISPLAY, encode_message(frame(5)) + encode_message(frame(4)))
    assert ev.code == ErrorCode.PROTOCOL_VIOLATION


def test_relay_of_encoded_frames_tracks_credit_without_decoding() -> None:
    srv, cli = connected_pair(WireConfig(frame_window=1))
    srv.send_encoded(Channel.DISPLAY, encode_message(frame(77)))
    assert srv.unacked_frames == (77,) and not srv.can_send_frame()
    with pytest.raises(WireUsageError):
        srv.send_encoded(Channel.DISPLAY, encode_message(frame(78)))
    with pytest.raises(WireUsageError, match="cannot relay"):
        srv.send_encoded(Channel.DISPLAY, b"\x01\x02")
    pump(srv, cli, 0)
    assert [e.message.seq for e in drain(cli) if isinstance(e, MessageReceived)] == [77]


def _typed(seq: int) -> FrameUpdate:
    """A typed character's frame: one small XOR region, not a keyframe."""
    region = Region(304, 163, 14, 14, RegionEncoding.XOR_ZSTD, bytes(range(100)))
    return FrameUpdate(
        seq=seq, width=1920, height=1080, keyframe=False, regions=(region,), checksum=0xDEADBEEF
    )


def test_small_frames_go_in_the_short_form_and_arrive_as_the_same_frame_update() -> None:
    srv, cli = connected_pair()
    assert "small-frames" in srv.capabilities
    update = _typed(7)
    srv.send(update)
    ((ch, data),) = srv.data_to_send()
    assert len(data) == len(encode_message(update)) - 26
    assert srv.unacked_frames == (7,)
    cli.receive(ch, data, 0.0)
    assert [e.message for e in drain(cli) if isinstance(e, MessageReceived)] == [update]
    assert cli.unacked_frames == (7,)


def test_frames_that_do_not_fit_the_short_form_and_viewers_without_it_get_frame_updates() -> None:
    video = Region(0, 0, 64, 64, RegionEncoding.H264, b"\x00\x00\x01", stream_id=3)
    big = Region(0, 0, 70_000, 1, RegionEncoding.FILL, bytes(4))
    unfit = [
        frame(1),  # a keyframe
        FrameUpdate(seq=2, width=1920, height=1080, keyframe=False, regions=(video,), checksum=1),
        FrameUpdate(seq=3, width=80_000, height=1080, keyframe=False, regions=(big,), checksum=1),
        FrameUpdate(
            seq=4, width=1920, height=1080, keyframe=False, regions=(_typed(1).regions[0],) * 256, checksum=1
        ),
    ]
    srv, cli = connected_pair(WireConfig(frame_window=8))
    for update in unfit:
        srv.send(update)
    ((_, data),) = srv.data_to_send()
    assert len(data) == sum(len(encode_message(u)) for u in unfit)
    old = WireConfig(capabilities=IMPLEMENTED_CAPABILITIES - {"small-frames"})
    srv, cli = connected_pair(client=old)
    srv.send(_typed(5))
    ((ch, data),) = srv.data_to_send()
    assert data == encode_message(_typed(5))
    cli.receive(ch, data, 0.0)
    assert [e.message for e in drain(cli) if isinstance(e, MessageReceived)] == [_typed(5)]


def test_a_relayed_short_form_frame_counts_for_credit_and_needs_the_capability() -> None:
    srv, cli = connected_pair(WireConfig(frame_window=1))
    small = encode_frame_update(_typed(9), srv.capabilities)
    srv.send_encoded(Channel.DISPLAY, small)
    assert srv.unacked_frames == (9,) and not srv.can_send_frame()
    pump(srv, cli, 0)
    assert [e.message for e in drain(cli) if isinstance(e, MessageReceived)] == [_typed(9)]
    old_srv, old_cli = connected_pair(
        client=WireConfig(capabilities=IMPLEMENTED_CAPABILITIES - {"small-frames"})
    )
    with pytest.raises(WireUsageError, match="small-frames"):
        old_srv.send_encoded(Channel.DISPLAY, small)
    ev = raw(old_cli, Channel.DISPLAY, small)  # a server sending it anyway: refused
    assert ev.code == ErrorCode.CAPABILITY_NOT_NEGOTIATED


def _received_acks(srv: WireConnection) -> list[FrameAck]:
    return [
        e.message for e in drain(srv) if isinstance(e, MessageReceived) and isinstance(e.message, FrameAck)
    ]


def _key() -> Key:
    return Key(code=30, state=KeyState.PRESSED, time_ms=5)


def test_a_small_frames_ack_waits_for_the_next_key_and_goes_before_it_in_one_flush() -> None:
    srv, cli = connected_pair()
    srv.send(frame(1, size=4000))  # a keyframe: its ack goes at once
    srv.send(frame(2))  # a typed character: small
    pump(srv, cli, 1.0)
    drain(cli)
    cli.ack_frame(1, 300, now=1.0)
    cli.ack_frame(2, 300, now=1.0)
    assert cli.held_frame_ack == FrameAck(seq=2, decode_us=300)
    pump(cli, srv, 1.0)
    assert [a.seq for a in _received_acks(srv)] == [1] and srv.unacked_frames == (2,)
    cli.send(_key(), now=1.04)  # 40 ms later the next key: the ack rides with it
    out = cli.data_to_send()  # one flush of the transport: one datagram
    assert sorted(ch for ch, _ in out) == [Channel.DISPLAY, Channel.INPUT]
    for ch, data in out:
        srv.receive(ch, data, 1.04)
    events = [e.message for e in drain(srv) if isinstance(e, MessageReceived)]
    assert FrameAck(seq=2, decode_us=300 + 40_000) in events and _key() in events
    assert srv.unacked_frames == () and cli.held_frame_ack is None


def test_a_held_ack_goes_alone_when_nothing_comes_within_the_hold() -> None:
    srv, cli = connected_pair(client=WireConfig(frame_ack_hold=0.25))
    srv.send(frame(1, size=4000))
    srv.send(frame(2))
    pump(srv, cli, 0.0)
    cli.ack_frame(1, 0, now=0.0)
    cli.ack_frame(2, 10, now=0.5)
    assert cli.get_timer() == pytest.approx(0.75)
    cli.handle_timer(0.74)
    assert cli.held_frame_ack is not None
    cli.handle_timer(0.75)
    assert cli.held_frame_ack is None
    pump(cli, srv, 0.75)
    assert _received_acks(srv)[-1] == FrameAck(seq=2, decode_us=10 + 250_000)
    assert srv.unacked_frames == ()


def test_a_servers_ping_brings_the_held_ack_with_the_pong() -> None:
    srv, cli = connected_pair()
    srv.send(frame(1, size=4000))
    srv.send(frame(2))
    pump(srv, cli, 0.0)
    cli.ack_frame(1, 0, now=0.0)
    cli.ack_frame(2, 0, now=0.0)
    pump(cli, srv, 0.0)
    assert srv.unacked_frames == (2,)
    srv.ping(0.1)
    pump(srv, cli, 0.1)
    pump(cli, srv, 0.1)
    assert srv.unacked_frames == () and srv.rtt == pytest.approx(0.0)


def test_after_a_ping_the_next_small_frames_ack_is_not_held() -> None:
    srv, cli = connected_pair()
    srv.send(frame(1, size=4000))
    srv.ping(0.0)  # it overtakes frame 2, whose ack the server then waits for
    srv.send(frame(2))
    pump(srv, cli, 0.0)
    cli.ack_frame(1, 0, now=0.0)
    cli.ack_frame(2, 0, now=0.0)
    assert cli.held_frame_ack is None
    pump(cli, srv, 0.0)
    assert srv.unacked_frames == ()
    srv.send(frame(3))
    pump(srv, cli, 0.0)
    cli.ack_frame(3, 0, now=0.0)  # one ack after each Ping goes at once, the next are held again
    assert cli.held_frame_ack == FrameAck(seq=3, decode_us=0)


def test_the_next_frame_sends_the_held_ack_and_large_frames_are_acked_at_once() -> None:
    srv, cli = connected_pair()
    srv.send(frame(1, size=4000))
    srv.send(frame(2))
    pump(srv, cli, 0.0)
    cli.ack_frame(1, 0, now=0.0)
    cli.ack_frame(2, 0, now=0.0)
    pump(cli, srv, 0.0)
    srv.send(frame(3, size=4000))  # not a keyframe, but too big to hold: a bandwidth sample
    pump(srv, cli, 0.016)
    assert cli.held_frame_ack is None  # the frame's arrival sent it, its wait counted
    pump(cli, srv, 0.016)
    cli.ack_frame(3, 7, now=0.02)
    assert cli.held_frame_ack is None
    pump(cli, srv, 0.02)
    assert _received_acks(srv) == [
        FrameAck(seq=1, decode_us=0),
        FrameAck(seq=2, decode_us=16_000),
        FrameAck(seq=3, decode_us=7),
    ]
    assert srv.unacked_frames == ()


def test_no_hold_when_the_client_turns_it_off_or_sends_frame_acks_itself() -> None:
    srv, cli = connected_pair(client=WireConfig(frame_ack_hold=0))
    srv.send(frame(1, size=4000))
    srv.send(frame(2))
    pump(srv, cli, 0.0)
    cli.ack_frame(1, 0, now=0.0)
    cli.ack_frame(2, 0, now=0.0)
    assert cli.held_frame_ack is None
    pump(cli, srv, 0.0)
    assert srv.unacked_frames == ()


# --- keep-alive -----------------------------------------------------------------------------------


def test_pings_keep_a_quiet_connection_alive_and_measure_rtt() -> None:
    cfg = WireConfig(ping_interval=1, idle_timeout=3)
    srv, cli = connected_pair(cfg, cfg)
    now = 0.0
    for _ in range(20):  # 20 s of silence from the application
        now += 0.5
        srv.handle_timer(now)
        cli.handle_timer(now)
        pump(srv, cli, now)
        pump(cli, srv, now + 0.01)
        pump(srv, cli, now + 0.02)
    assert srv.established and cli.established
    assert srv.rtt is not None and srv.rtt == pytest.approx(0.01)
    assert drain(srv) == [] and drain(cli) == []  # pings never reach the application


def test_a_silent_peer_is_noticed_within_the_idle_timeout() -> None:
    srv, cli = connected_pair(WireConfig(ping_interval=1, idle_timeout=3))
    now = 0.0
    while srv.established:
        now = srv.get_timer() or now
        srv.handle_timer(now)
        srv.data_to_send()  # the client has vanished: nobody reads, nobody answers
        assert now < 10
    ev = closed(srv)
    assert ev.code == ErrorCode.IDLE_TIMEOUT and "the client answered no Ping for 3.0 s" in ev.reason
    assert 3 <= now < 4


def test_a_peer_that_sends_but_never_reads_is_noticed_too() -> None:
    srv, cli = connected_pair(WireConfig(ping_interval=1, idle_timeout=3))
    now = 0.0
    while srv.established:
        now += 0.25
        srv.handle_timer(now)
        srv.data_to_send()  # lost on a client that does not read
        cli.send(Key(code=30, state=KeyState.PRESSED, time_ms=int(now * 1000)))
        pump(cli, srv, now)  # ... though it keeps typing
        assert now < 10
    assert closed(srv).code == ErrorCode.IDLE_TIMEOUT


# --- bounded queues -------------------------------------------------------------------------------


def test_a_peer_that_never_reads_fills_the_queue_and_is_closed() -> None:
    srv, cli = connected_pair(WireConfig(send_queue_limit=64 * 1024))
    text = "x" * 1000
    n = 0
    while srv.established:
        srv.send(ClipboardText(selection=Selection.CLIPBOARD, text=text))
        n += 1
        assert srv.queued_bytes(Channel.CONTROL) <= 64 * 1024 + 2000
        assert n < 1000
    ev = closed(srv)
    assert ev.code == ErrorCode.SEND_BUFFER_FULL and "the client is not reading" in ev.reason
    # Queued data is dropped; only the Close remains for the peer.
    out = srv.data_to_send()
    assert len(out) == 1 and len(out[0][1]) < 200


def test_latest_wins_messages_replace_unsent_ones_but_keep_order() -> None:
    srv, cli = connected_pair()
    for x in range(100):
        cli.send(PointerMotion(x=float(x), y=0.0, time_ms=x))
    cli.send(PointerButton(button=0x110, state=ButtonState.PRESSED, time_ms=100))
    cli.send(PointerMotion(x=500.0, y=0.0, time_ms=101))
    cli.send(PointerMotion(x=600.0, y=0.0, time_ms=102))
    for x in range(50):
        srv.send(CursorPosition(x=x, y=x, visible=True, serial=1))
    pump(cli, srv, 0)
    pump(srv, cli, 0)
    got = [e.message for e in drain(srv) if isinstance(e, MessageReceived)]
    assert [type(m).__name__ for m in got] == ["PointerMotion", "PointerButton", "PointerMotion"]
    assert got[0].x == 99.0 and got[2].x == 600.0
    (pos,) = [e.message for e in drain(cli) if isinstance(e, MessageReceived)]
    assert pos.x == 49


def test_budget_limits_what_data_to_send_takes() -> None:
    # Without small-frames: every frame the same size.
    srv, cli = connected_pair(
        WireConfig(frame_window=4, capabilities=IMPLEMENTED_CAPABILITIES - {"small-frames"})
    )
    for seq in (1, 2, 3):
        srv.send(frame(seq, size=1000))
    one = len(encode_message(frame(1, size=1000)))
    out = srv.data_to_send({Channel.DISPLAY: 1})
    assert [(ch, len(data)) for ch, data in out] == [(Channel.DISPLAY, one)]
    assert srv.queued_bytes(Channel.DISPLAY) == 2 * one
    assert srv.data_to_send({Channel.CONTROL: 100}) == []
    out = srv.data_to_send({Channel.DISPLAY: one + 1})
    assert len(out[0][1]) == 2 * one


# --- closing --------------------------------------------------------------------------------------


def test_close_reaches_the_peer_with_code_and_reason() -> None:
    srv, cli = connected_pair()
    srv.send(SessionEvent(kind=SessionEventKind.MOVED, detail="now on kiosk-7"))
    srv.close(ErrorCode.SESSION_MOVED, "the session moved to kiosk-7")
    assert srv.get_timer() is None
    pump(srv, cli, 0)
    evs = drain(cli)
    assert isinstance(evs[0], MessageReceived) and evs[0].message.kind is SessionEventKind.MOVED
    assert evs[1] == ConnectionClosed(ErrorCode.SESSION_MOVED, "the session moved to kiosk-7", by_peer=True)
    srv.send(SessionEvent(kind=SessionEventKind.ENDED, detail=""))  # dropped silently after close
    assert srv.data_to_send() == []


def test_transport_loss_is_reported_once() -> None:
    srv, _ = connected_pair()
    srv.connection_lost(ErrorCode.TRANSPORT_ERROR, "QUIC idle timeout")
    srv.connection_lost(ErrorCode.TRANSPORT_ERROR, "again")
    assert drain(srv) == [ConnectionClosed(ErrorCode.TRANSPORT_ERROR, "QUIC idle timeout", by_peer=True)]


def test_ending_the_control_channel_closes() -> None:
    srv, _ = connected_pair()
    srv.receive(Channel.CONTROL, b"", 0, end=True)
    assert closed(srv).code == ErrorCode.PROTOCOL_VIOLATION


def test_input_reaches_the_server_in_order() -> None:
    srv, cli = connected_pair()
    keys = [
        Key(code=c, state=s, time_ms=i)
        for i, (c, s) in enumerate([(30, KeyState.PRESSED), (30, KeyState.RELEASED)])
    ]
    for k in keys:
        cli.send(k)
    pump(cli, srv, 0)
    assert [e.message for e in drain(srv)] == keys


def test_one_message_larger_than_the_queue_limit_still_goes_when_nothing_waits() -> None:
    srv, cli = connected_pair(WireConfig(send_queue_limit=1000))
    srv.send(ClipboardText(selection=Selection.CLIPBOARD, text="y" * 5000))
    assert srv.established
    srv.send(ClipboardText(selection=Selection.CLIPBOARD, text="z"))  # now the peer is behind
    assert closed(srv).code == ErrorCode.SEND_BUFFER_FULL
