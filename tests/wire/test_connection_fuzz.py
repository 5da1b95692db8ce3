"""Whatever a peer sends, in whatever state, the connection answers with events, never an exception,
and a close always names a wire error (never INTERNAL_ERROR, which would mean a bug here)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wire.strategies import any_message
from tests.wire.wirepair import connected_pair, drain, hello_params
from wayray.wire import (
    ConnectionClosed,
    ErrorCode,
    WireConfig,
    WireConnection,
    WireRole,
    encode_frame,
    encode_message,
)
from wayray.wire.protocol import spec_of

FUZZ = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)

chunks = st.lists(st.tuples(st.integers(-1, 6), st.binary(max_size=300)), min_size=1, max_size=8)
raw_frames = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 12), st.binary(max_size=64)), min_size=1, max_size=8
)


def fresh(kind: str) -> WireConnection:
    if kind == "server-start":
        return WireConnection(WireRole.SERVER, now=0)
    if kind == "client-hello-sent":
        c = WireConnection(WireRole.CLIENT, now=0)
        c.send_hello(hello_params())
        c.data_to_send()
        return c
    srv, cli = connected_pair(WireConfig(frame_window=3), WireConfig())
    return srv if kind == "server-established" else cli


states = st.sampled_from(["server-start", "client-hello-sent", "server-established", "client-established"])


def feed_and_check(conn: WireConnection, items: list[tuple[int, bytes]]) -> None:
    for channel, data in items:
        conn.receive(channel, data, 1.0)  # must not raise
        conn.data_to_send()
    conn.handle_timer(2.0)
    for ev in drain(conn):
        if isinstance(ev, ConnectionClosed):
            assert ev.code != ErrorCode.INTERNAL_ERROR, ev
            assert ev.by_peer or ev.reason  # our own closes always say why


@FUZZ
@given(states, chunks)
def test_random_bytes_on_random_channels(kind: str, items: list[tuple[int, bytes]]) -> None:
    feed_and_check(fresh(kind), items)


@FUZZ
@given(states, raw_frames)
def test_well_framed_garbage(kind: str, frames: list[tuple[int, int, bytes]]) -> None:
    feed_and_check(fresh(kind), [(ch, encode_frame(t, body)) for ch, t, body in frames])


@FUZZ
@given(states, st.lists(any_message, min_size=1, max_size=6), st.data())
def test_valid_messages_in_any_order_and_state(kind: str, msgs: list[Any], data: st.DataObject) -> None:
    items = []
    for msg in msgs:
        ch = data.draw(st.sampled_from([int(spec_of(msg).channel), 0, 1, 2]))
        items.append((ch, encode_message(msg)))
    feed_and_check(fresh(kind), items)
