"""Every message encodes and decodes back to itself; every decoder turns bad bytes into WireProtocolError."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wire.strategies import any_message, any_spec
from wayray.wire import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Capability,
    EncodeError,
    ErrorCode,
    FrameUpdate,
    Hello,
    Key,
    KeyState,
    Region,
    RegionEncoding,
    TokenKind,
    WireProtocolError,
    decode_body,
    encode_body,
    encode_message,
    spec_of,
)
from wayray.wire.framing import HEADER_SIZE, parse_header
from wayray.wire.protocol import BY_CLASS, MAX_KEYMAP, MESSAGES, MessageSpec, decode_message, lookup

FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def decode_or_protocol_error(spec: MessageSpec, body: bytes) -> Any:
    """The decoder's contract: a message or a WireProtocolError, never any other exception."""
    try:
        return decode_body(spec, body)
    except WireProtocolError as err:
        assert err.code is ErrorCode.MALFORMED_MESSAGE
        assert err.reason
        return None


@FUZZ
@given(any_message)
def test_every_message_round_trips(msg: Any) -> None:
    spec = spec_of(msg)
    frame = encode_message(msg)
    msg_type, length = parse_header(frame)
    assert msg_type == spec.number and length == len(frame) - HEADER_SIZE
    assert decode_message(spec.channel, msg_type, frame[HEADER_SIZE:]) == msg


@pytest.mark.parametrize("spec", MESSAGES, ids=lambda s: s.name)
def test_random_bytes_never_escape_as_other_exceptions(spec: MessageSpec) -> None:
    @FUZZ
    @given(st.binary(max_size=200))
    def run(body: bytes) -> None:
        decode_or_protocol_error(spec, body)

    run()


@FUZZ
@given(any_message, st.data())
def test_truncated_bodies_are_malformed(msg: Any, data: st.DataObject) -> None:
    body = encode_body(msg)
    if not body:
        return
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(WireProtocolError) as info:
        decode_body(spec_of(msg), body[:cut])
    assert info.value.code is ErrorCode.MALFORMED_MESSAGE


@FUZZ
@given(any_message, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_malformed(msg: Any, extra: bytes) -> None:
    if isinstance(msg, Hello) and (msg.version_major, msg.version_minor) > (PROTOCOL_MAJOR, PROTOCOL_MINOR):
        return  # a newer minor version's Hello may carry fields this version does not know (below)
    with pytest.raises(WireProtocolError, match="unexpected bytes after the last field"):
        decode_body(spec_of(msg), encode_body(msg) + extra)


@FUZZ
@given(any_message, st.data())
def test_corrupted_bodies_decode_or_fail_cleanly(msg: Any, data: st.DataObject) -> None:
    body = bytearray(encode_body(msg))
    if not body:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    decode_or_protocol_error(spec_of(msg), bytes(body))


@FUZZ
@given(any_spec, st.integers(0, 0xFFFFFFFF), st.binary(max_size=16))
def test_huge_length_prefixes_are_refused_without_allocating(spec: MessageSpec, n: int, tail: bytes) -> None:
    # A body that is nothing but a length prefix claiming up to 4 GiB.
    decode_or_protocol_error(spec, struct.pack("<I", n) + tail)


def hello(**changes: Any) -> Hello:
    fields: dict[str, Any] = dict(
        version_major=1,
        version_minor=0,
        token="badge-0123456789abcdef",
        token_kind=TokenKind.BADGE,
        capabilities=frozenset({Capability.DISPLAY, Capability.INPUT}),
        screen_width=1920,
        screen_height=1080,
        scale_120=120,
        keymap="xkb_keymap { };",
        client_name="wrclient",
        client_version="0.1",
    )
    fields.update(changes)
    return Hello(**fields)


def test_hello_carries_a_realistic_keymap() -> None:
    keymap = "xkb_keymap {\n" + "    key <AE01> { [ 1, exclam ] };\n" * 2000 + "};\n"
    assert 60_000 < len(keymap) < MAX_KEYMAP
    h = hello(keymap=keymap)
    assert decode_body(spec_of(h), encode_body(h)).keymap == keymap


def test_hello_repr_shows_nothing_of_the_token_or_the_credentials() -> None:
    h = hello(
        version_minor=2, token="badge-SECRET-0123456789", access_key="KEY-SECRET-42", terminal_id="T-SECRET"
    )
    for text in (repr(h), str(h)):
        assert "SECRET" not in text
        assert "badg" not in text  # not even its first characters (short numeric badges: most of it)
        assert "<23" not in text and "23 chars" not in text  # nor its length
        assert "token=<given>" in text and "access_key=<given>" in text


def test_hello_1_2_carries_an_access_key_and_a_terminal_id() -> None:
    h = hello(version_minor=2, access_key="k" * 40, terminal_id="t" * 64)
    assert decode_body(spec_of(h), encode_body(h)) == h


def test_a_1_1_hello_has_no_credentials_on_the_wire_and_decodes_without_them() -> None:
    h = hello(version_minor=1, access_key="k" * 40, terminal_id="t" * 64)
    body = encode_body(h)
    assert body == encode_body(hello(version_minor=1))  # what a 1.1 peer sends and expects
    decoded = decode_body(spec_of(h), body)
    assert (decoded.access_key, decoded.terminal_id) == ("", "")


def test_a_newer_minor_hello_may_end_with_fields_this_version_does_not_know() -> None:
    newer = hello(version_minor=PROTOCOL_MINOR + 1, access_key="k", terminal_id="t")
    body = encode_body(newer) + b"\x05\x00\x00\x00later"  # a str field of a later version
    decoded = decode_body(spec_of(newer), body)
    assert (decoded.access_key, decoded.terminal_id) == ("k", "t")
    current = hello(version_minor=PROTOCOL_MINOR, access_key="k", terminal_id="t")
    with pytest.raises(WireProtocolError, match="unexpected bytes after the last field"):
        decode_body(spec_of(current), encode_body(current) + b"\x00")


def test_decode_errors_name_the_field() -> None:
    body = bytearray(encode_body(hello()))
    body[4 + 4 + len("badge-0123456789abcdef")] = 9  # token_kind
    with pytest.raises(WireProtocolError, match=r"Hello\.token_kind: 9 is not a TokenKind"):
        decode_body(BY_CLASS[Hello], bytes(body))


def test_oversize_string_is_refused_by_its_cap() -> None:
    body = bytearray(encode_body(hello()))
    struct.pack_into("<I", body, 4, 5000)  # token length: over the 1 KiB cap
    with pytest.raises(
        WireProtocolError, match=r"Hello\.token: string of 5000 bytes exceeds the 1024-byte limit"
    ):
        decode_body(BY_CLASS[Hello], bytes(body))


def test_bad_utf8_and_bad_bool_and_duplicate_set_items_are_malformed() -> None:
    spec = BY_CLASS[Hello]
    h = hello(token="ab")
    body = bytearray(encode_body(h))
    body[8] = 0xFF  # first token byte
    with pytest.raises(WireProtocolError, match="invalid UTF-8"):
        decode_body(spec, bytes(body))
    fu = FrameUpdate(seq=1, width=1, height=1, keyframe=True, regions=(), checksum=0)
    body = bytearray(encode_body(fu))
    body[16] = 2  # keyframe
    with pytest.raises(WireProtocolError, match="bool byte is 2"):
        decode_body(spec_of(fu), bytes(body))
    dup = struct.pack("<HH", 1, 0) + struct.pack("<I", 1) + b"t" + b"\x02"
    dup += struct.pack("<I", 2) + (struct.pack("<I", 5) + b"input") * 2
    with pytest.raises(WireProtocolError, match="same item twice"):
        decode_body(spec, dup + bytes(100))


def test_non_finite_floats_are_malformed() -> None:
    from wayray.wire import PointerMotion

    pm = PointerMotion(x=1.0, y=2.0, time_ms=3)
    body = bytearray(encode_body(pm))
    struct.pack_into("<d", body, 0, float("nan"))
    with pytest.raises(WireProtocolError, match="not a finite number"):
        decode_body(spec_of(pm), bytes(body))
    with pytest.raises(EncodeError):
        encode_body(PointerMotion(x=float("inf"), y=0.0, time_ms=0))


def test_encoding_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(EncodeError, match=r"Key\.code: -1 does not fit u32"):
        encode_body(Key(code=-1, state=KeyState.PRESSED, time_ms=0))
    with pytest.raises(EncodeError, match=r"Hello\.scale_120: 0 does not fit u16≥1"):
        encode_body(hello(scale_120=0))
    with pytest.raises(EncodeError, match="Hello.keymap: .* exceed"):
        encode_body(hello(keymap="x" * (MAX_KEYMAP + 1)))
    region = Region(0, 0, 1, 1, RegionEncoding.FILL, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=r"FrameUpdate\.regions: \[0\]: Region\.data: expected bytes"):
        encode_body(FrameUpdate(seq=1, width=1, height=1, keyframe=False, regions=(region,), checksum=0))
    with pytest.raises(EncodeError, match="not a WayRay wire message"):
        encode_body(object())


def test_unknown_message_numbers_are_refused() -> None:
    from wayray.wire import Channel

    with pytest.raises(WireProtocolError) as info:
        lookup(Channel.INPUT, 99)
    assert info.value.code is ErrorCode.UNKNOWN_MESSAGE
    with pytest.raises(WireProtocolError):
        lookup(Channel.CONTROL, 0)  # 0 is never a message


def test_long_clipboard_text_is_truncated_at_a_character_boundary() -> None:
    from wayray.wire import ClipboardText, Selection
    from wayray.wire.messages import MAX_CLIPBOARD_BYTES

    text = "é" * MAX_CLIPBOARD_BYTES  # 2 bytes each: twice the limit
    clip = ClipboardText.truncated(Selection.CLIPBOARD, text)
    assert len(clip.text.encode()) == MAX_CLIPBOARD_BYTES and set(clip.text) == {"é"}
    assert decode_body(spec_of(clip), encode_body(clip)) == clip
    odd = ClipboardText.truncated(Selection.CLIPBOARD, "a" + "é" * MAX_CLIPBOARD_BYTES)
    assert len(odd.text.encode()) == MAX_CLIPBOARD_BYTES - 1  # no half character
    assert ClipboardText.truncated(Selection.PRIMARY, "short").text == "short"
