"""The framer cuts any chunking of a byte stream into the same frames and refuses oversize frames early."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayray.wire import ErrorCode, FrameDecoder, WireProtocolError, encode_frame
from wayray.wire.framing import HEADER_SIZE

frames_st = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=300)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(frames_st, st.data())
def test_any_chunking_yields_the_same_frames(frames: list[tuple[int, bytes]], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(t, b) for t, b in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    dec = FrameDecoder(max_body=300)
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got.extend(dec.feed(stream[prev:cut]))
        prev = cut
    assert [(f.type, f.body) for f in got] == frames
    assert dec.buffered == 0
    dec.check_finished()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 1000))
def test_random_bytes_give_frames_or_a_protocol_error(data: bytes, limit: int) -> None:
    dec = FrameDecoder(max_body=limit)
    try:
        for frame in dec.feed(data):
            assert len(frame.body) <= limit
        assert dec.buffered < HEADER_SIZE + limit
    except WireProtocolError as err:
        assert err.code is ErrorCode.FRAME_TOO_LARGE


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    dec = FrameDecoder(max_body=1024, what="input frame")
    with pytest.raises(WireProtocolError) as info:
        dec.feed(struct.pack("<IH", 0xFFFFFFFF, 1))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert "input frame of 4294967295 bytes (type 1) exceeds the 1024-byte limit" in info.value.reason


def test_a_stream_that_ends_inside_a_frame_is_malformed() -> None:
    dec = FrameDecoder(max_body=1024)
    assert dec.feed(encode_frame(3, b"hello")[:-2]) == []
    with pytest.raises(WireProtocolError) as info:
        dec.check_finished()
    assert info.value.code is ErrorCode.MALFORMED_MESSAGE


def test_a_large_frame_arrives_whole_after_many_chunks() -> None:
    dec = FrameDecoder(max_body=1 << 20)
    big = encode_frame(1, bytes(range(256)) * 4096)
    for i in range(0, len(big) - 1, 1000):
        assert dec.feed(big[i : min(i + 1000, len(big) - 1)]) == []
    assert dec.buffered == len(big) - 1
    (frame,) = dec.feed(big[-1:])
    assert frame.body == big[HEADER_SIZE:] and dec.buffered == 0
