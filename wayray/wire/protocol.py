"""The one table of the protocol: every message's channel, number, direction, capability and layout.

Encoding, decoding, the checks of :class:`~wayray.wire.connection.WireConnection` and the spec test
against docs/protocol.md all read this table; nothing else lists messages.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wayray.wire import audio as a
from wayray.wire import display as d
from wayray.wire import messages as m
from wayray.wire.errors import EncodeError, ErrorCode, WireProtocolError
from wayray.wire.framing import HEADER, HEADER_SIZE
from wayray.wire.layout import (
    BOOL,
    FLOAT64,
    I32,
    U16,
    U32,
    U64,
    Blob,
    EnumOf,
    Int,
    KiB,
    ListOf,
    MiB,
    Reader,
    SetOf,
    StructOf,
    Text,
)


class WireRole(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> WireRole:
        return WireRole.SERVER if self is WireRole.CLIENT else WireRole.CLIENT


class Direction(enum.Enum):
    """Who may send a message."""

    CLIENT_TO_SERVER = "client → server"
    SERVER_TO_CLIENT = "server → client"
    BOTH = "both"

    def allows(self, sender: WireRole) -> bool:
        if self is Direction.BOTH:
            return True
        return (self is Direction.CLIENT_TO_SERVER) == (sender is WireRole.CLIENT)


@dataclass(frozen=True)
class MessageSpec:
    channel: m.Channel
    number: int
    layout: StructOf
    direction: Direction
    #: The capability both peers must have negotiated, or None for messages every connection has.
    capability: m.Capability | None = None
    #: Latest wins: a sender may replace an unsent message of this type with a newer one when
    #: nothing else was queued after it on the channel.
    coalesce: bool = False

    @property
    def cls(self) -> type:
        return self.layout.cls

    @property
    def name(self) -> str:
        return self.layout.cls.__name__


# --- limits --------------------------------------------------------------------------------------

MAX_TOKEN = 1 * KiB
MAX_ACCESS_KEY = 256
MAX_TERMINAL_ID = 128
#: The version that added Hello's access_key and terminal_id.
HELLO_CREDENTIALS = (1, 2)
MAX_KEYMAP = 512 * KiB
MAX_CLIPBOARD = m.MAX_CLIPBOARD_BYTES
MAX_NAME = 64
MAX_REASON = 1 * KiB
MAX_CAPABILITIES = 32
MAX_CAPABILITY_NAME = 32
MAX_REGIONS = 4096
MAX_REGION_DATA = 64 * MiB
MAX_CURSOR_PIXELS = 1 * MiB
#: USB (docs/usb.md): most bytes of descriptors in an offer; most bytes of a bus id and of a string
#: a device reports (USB string descriptors hold at most 126 UTF-16 units: 378 bytes of UTF-8).
MAX_USB_DESCRIPTORS = 64 * KiB
MAX_USB_BUSID = 32
MAX_USB_STRING = 384

#: Largest frame body per (channel, sender). A channel/sender pair missing here carries nothing.
MAX_BODY: Mapping[tuple[m.Channel, WireRole], int] = {
    (m.Channel.CONTROL, WireRole.CLIENT): 2 * MiB,
    (m.Channel.CONTROL, WireRole.SERVER): 2 * MiB,
    (m.Channel.DISPLAY, WireRole.SERVER): 64 * MiB,
    (m.Channel.DISPLAY, WireRole.CLIENT): 1 * KiB,
    (m.Channel.INPUT, WireRole.CLIENT): 1 * MiB,
    (m.Channel.AUDIO, WireRole.SERVER): 4 * KiB,
    (m.Channel.AUDIO, WireRole.CLIENT): 4 * KiB,
}


def max_body(channel: m.Channel, sender: WireRole) -> int:
    return MAX_BODY.get((channel, sender), 0)


# --- layouts -------------------------------------------------------------------------------------

_CAPS = SetOf(MAX_CAPABILITIES, Text(MAX_CAPABILITY_NAME))
_SCALE = Int("u", 16, minimum=1)
_NAME = Text(MAX_NAME)

REGION = StructOf(
    d.Region,
    [
        ("x", U32),
        ("y", U32),
        ("width", U32),
        ("height", U32),
        ("encoding", EnumOf(d.RegionEncoding, 8)),
        ("data", Blob(MAX_REGION_DATA)),
        ("stream_id", U32),
    ],
)

SMALL_REGION = StructOf(
    d.SmallRegion,
    [
        ("x", U16),
        ("y", U16),
        ("width", U16),
        ("height", U16),
        ("encoding", EnumOf(d.RegionEncoding, 8)),
        ("data", Blob(0xFFFF, short=True)),
    ],
)

C, S, B = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT, Direction.BOTH
CONTROL, DISPLAY, INPUT = m.Channel.CONTROL, m.Channel.DISPLAY, m.Channel.INPUT
AUDIO = m.Channel.AUDIO
Cap = m.Capability

MESSAGES: tuple[MessageSpec, ...] = (
    # control
    MessageSpec(
        CONTROL,
        1,
        StructOf(
            m.Hello,
            [
                ("version_major", U16),
                ("version_minor", U16),
                ("token", Text(MAX_TOKEN)),
                ("token_kind", EnumOf(m.TokenKind, 8)),
                ("capabilities", _CAPS),
                ("screen_width", U32),
                ("screen_height", U32),
                ("scale_120", _SCALE),
                ("keymap", Text(MAX_KEYMAP)),
                ("client_name", _NAME),
                ("client_version", _NAME),
                ("access_key", Text(MAX_ACCESS_KEY), HELLO_CREDENTIALS),
                ("terminal_id", Text(MAX_TERMINAL_ID), HELLO_CREDENTIALS),
            ],
            versioned=True,
        ),
        C,
    ),
    MessageSpec(
        CONTROL,
        2,
        StructOf(
            m.ServerHello,
            [
                ("version_major", U16),
                ("version_minor", U16),
                ("capabilities", _CAPS),
                ("session_id", _NAME),
                ("output_width", U32),
                ("output_height", U32),
                ("output_scale_120", _SCALE),
                ("resumed", BOOL),
                ("keyframe_follows", BOOL),
                ("frame_window", Int("u", 16, minimum=1)),
                ("server_name", _NAME),
                ("server_version", _NAME),
            ],
        ),
        S,
    ),
    MessageSpec(CONTROL, 3, StructOf(m.Close, [("code", U16), ("reason", Text(MAX_REASON))]), B),
    MessageSpec(CONTROL, 4, StructOf(m.Ping, [("nonce", U64)]), B),
    MessageSpec(CONTROL, 5, StructOf(m.Pong, [("nonce", U64)]), B),
    MessageSpec(
        CONTROL, 6, StructOf(m.KeyframeRequest, [("reason", EnumOf(m.KeyframeReason, 8))]), C, Cap.DISPLAY
    ),
    MessageSpec(
        CONTROL,
        7,
        StructOf(m.ResizeRequest, [("width", U32), ("height", U32), ("scale_120", _SCALE)]),
        C,
        Cap.DISPLAY,
    ),
    MessageSpec(
        CONTROL,
        8,
        StructOf(m.ClipboardText, [("selection", EnumOf(m.Selection, 8)), ("text", Text(MAX_CLIPBOARD))]),
        B,
        Cap.CLIPBOARD,
    ),
    MessageSpec(
        CONTROL,
        9,
        StructOf(m.SessionEvent, [("kind", EnumOf(m.SessionEventKind, 8)), ("detail", Text(MAX_REASON))]),
        S,
    ),
    # control 0x60-0x6f: server pools (docs/pools.md)
    MessageSpec(
        CONTROL,
        0x60,
        StructOf(
            m.Redirect,
            [
                ("host", Text(255)),
                ("port", Int("u", 16, minimum=1)),
                ("fingerprint", Text(80)),
                ("server_id", Text(32)),
                ("reason", Text(MAX_REASON)),
            ],
        ),
        S,
    ),
    # display
    MessageSpec(
        DISPLAY,
        1,
        StructOf(
            d.FrameUpdate,
            [
                ("seq", U64),
                ("width", U32),
                ("height", U32),
                ("keyframe", BOOL),
                ("regions", ListOf(MAX_REGIONS, REGION)),
                ("checksum", U64),
            ],
        ),
        S,
        Cap.DISPLAY,
    ),
    MessageSpec(
        DISPLAY,
        2,
        StructOf(
            d.CursorImage,
            [
                ("serial", U32),
                ("width", U16),
                ("height", U16),
                ("hotspot_x", U16),
                ("hotspot_y", U16),
                ("pixels", Blob(MAX_CURSOR_PIXELS)),
            ],
        ),
        S,
        Cap.CURSOR,
        coalesce=True,
    ),
    MessageSpec(
        DISPLAY,
        3,
        StructOf(d.CursorPosition, [("x", I32), ("y", I32), ("visible", BOOL), ("serial", U32)]),
        S,
        Cap.CURSOR,
        coalesce=True,
    ),
    MessageSpec(
        DISPLAY, 4, StructOf(m.FrameAck, [("seq", U64), ("decode_us", U32)]), C, Cap.DISPLAY, coalesce=True
    ),
    MessageSpec(
        DISPLAY,
        5,
        StructOf(
            d.SmallFrameUpdate,
            [
                ("seq", U64),
                ("width", U16),
                ("height", U16),
                ("regions", ListOf(0xFF, SMALL_REGION, short=True)),
                ("checksum", U32),
            ],
        ),
        S,
        Cap.SMALL_FRAMES,
    ),
    # input
    MessageSpec(
        INPUT,
        1,
        StructOf(m.Key, [("code", U32), ("state", EnumOf(m.KeyState, 8)), ("time_ms", U32)]),
        C,
        Cap.INPUT,
    ),
    MessageSpec(
        INPUT,
        2,
        StructOf(m.PointerMotion, [("x", FLOAT64), ("y", FLOAT64), ("time_ms", U32)]),
        C,
        Cap.INPUT,
        coalesce=True,
    ),
    MessageSpec(
        INPUT,
        3,
        StructOf(m.PointerButton, [("button", U32), ("state", EnumOf(m.ButtonState, 8)), ("time_ms", U32)]),
        C,
        Cap.INPUT,
    ),
    MessageSpec(
        INPUT,
        4,
        StructOf(
            m.PointerAxis,
            [
                ("axis", EnumOf(m.Axis, 8)),
                ("value", FLOAT64),
                ("value120", I32),
                ("source", EnumOf(m.AxisSource, 8)),
                ("time_ms", U32),
            ],
        ),
        C,
        Cap.INPUT,
    ),
    MessageSpec(INPUT, 5, StructOf(m.KeymapUpdate, [("keymap", Text(MAX_KEYMAP))]), C, Cap.INPUT),
    # USB (control channel, numbers 0x80-0x8f: docs/usb.md)
    MessageSpec(
        CONTROL,
        0x80,
        StructOf(
            m.UsbOffer,
            [
                ("device", U32),
                ("busid", Text(MAX_USB_BUSID)),
                ("speed", EnumOf(m.UsbSpeed, 8)),
                ("descriptors", Blob(MAX_USB_DESCRIPTORS)),
                ("manufacturer", Text(MAX_USB_STRING)),
                ("product", Text(MAX_USB_STRING)),
                ("serial", Text(MAX_USB_STRING)),
            ],
        ),
        C,
        Cap.USB,
    ),
    MessageSpec(
        CONTROL, 0x81, StructOf(m.UsbWithdraw, [("device", U32), ("reason", Text(MAX_REASON))]), C, Cap.USB
    ),
    MessageSpec(
        CONTROL,
        0x82,
        StructOf(m.UsbVerdict, [("device", U32), ("accepted", BOOL), ("reason", Text(MAX_REASON))]),
        S,
        Cap.USB,
    ),
    MessageSpec(
        CONTROL, 0x83, StructOf(m.UsbDetached, [("device", U32), ("reason", Text(MAX_REASON))]), S, Cap.USB
    ),
    # audio
    MessageSpec(
        AUDIO,
        1,
        StructOf(
            a.AudioStart,
            [
                ("stream_id", U32),
                ("codec", EnumOf(a.AudioCodec, 8)),
                ("sample_rate", U32),
                ("channels", Int("u", 8, minimum=1)),
                ("frame_us", U32),
                ("bitrate", U32),
                ("microphone", BOOL),
            ],
        ),
        S,
        Cap.AUDIO,
    ),
    MessageSpec(
        AUDIO,
        2,
        StructOf(
            a.AudioFrame,
            [("stream_id", U32), ("seq", U32), ("timestamp_us", U64), ("data", Blob(a.MAX_AUDIO_DATA))],
        ),
        S,
        Cap.AUDIO,
    ),
    MessageSpec(AUDIO, 3, StructOf(a.AudioStop, [("stream_id", U32)]), S, Cap.AUDIO),
    MessageSpec(
        AUDIO,
        4,
        StructOf(a.MicFrame, [("seq", U32), ("timestamp_us", U64), ("data", Blob(a.MAX_AUDIO_DATA))]),
        C,
        Cap.MICROPHONE,
    ),
    MessageSpec(
        AUDIO,
        5,
        StructOf(a.AudioDelay, [("stream_id", U32), ("delay_us", U32)]),
        C,
        Cap.AV_SYNC,
    ),
    # touch (input channel, numbers 0x90-0x9f: input beyond keyboard and pointer)
    MessageSpec(
        INPUT,
        0x90,
        StructOf(m.TouchDown, [("id", U32), ("x", FLOAT64), ("y", FLOAT64), ("time_ms", U32)]),
        C,
        Cap.TOUCH,
    ),
    MessageSpec(
        INPUT,
        0x91,
        StructOf(m.TouchMotion, [("id", U32), ("x", FLOAT64), ("y", FLOAT64), ("time_ms", U32)]),
        C,
        Cap.TOUCH,
    ),
    MessageSpec(INPUT, 0x92, StructOf(m.TouchUp, [("id", U32), ("time_ms", U32)]), C, Cap.TOUCH),
    MessageSpec(INPUT, 0x93, StructOf(m.TouchFrame, [("time_ms", U32)]), C, Cap.TOUCH),
    MessageSpec(INPUT, 0x94, StructOf(m.TouchCancel, [("time_ms", U32)]), C, Cap.TOUCH),
)

#: Enums that appear on the wire, for the spec's value tables.
WIRE_ENUMS: tuple[type[enum.IntEnum], ...] = (
    ErrorCode,
    m.Channel,
    m.TokenKind,
    m.KeyState,
    m.ButtonState,
    m.Axis,
    m.AxisSource,
    m.Selection,
    m.KeyframeReason,
    m.SessionEventKind,
    d.RegionEncoding,
    m.UsbSpeed,
    a.AudioCodec,
)

#: Structs that appear inside messages (not messages themselves).
WIRE_STRUCTS: tuple[StructOf, ...] = (REGION, SMALL_REGION)

BY_NUMBER: Mapping[tuple[m.Channel, int], MessageSpec] = {(s.channel, s.number): s for s in MESSAGES}
BY_CLASS: Mapping[type, MessageSpec] = {s.cls: s for s in MESSAGES}

#: FrameUpdate's ``seq`` is the first field of its body, so a relay can read it without decoding.
FRAME_UPDATE = BY_CLASS[d.FrameUpdate]
#: Its short form (the ``small-frames`` capability): seq is its first field too.
SMALL_FRAME_UPDATE = BY_CLASS[d.SmallFrameUpdate]
#: The messages that are frames (frame credit, seq read by relays).
FRAME_UPDATES = frozenset({FRAME_UPDATE, SMALL_FRAME_UPDATE})
FRAME_UPDATE_NUMBERS = frozenset(s.number for s in FRAME_UPDATES)
HELLO = BY_CLASS[m.Hello]
SERVER_HELLO = BY_CLASS[m.ServerHello]
REDIRECT = BY_CLASS[m.Redirect]
CLOSE = BY_CLASS[m.Close]
for _spec in FRAME_UPDATES:
    assert _spec.layout.fields[0].name == "seq" and _spec.layout.fields[0].type is U64
assert [f.name for f in HELLO.layout.fields[:2]] == ["version_major", "version_minor"]


def _check_table() -> None:
    assert len(BY_NUMBER) == len(MESSAGES), "two messages share a (channel, number)"
    assert len(BY_CLASS) == len(MESSAGES), "a class appears twice"
    for s in MESSAGES:
        assert 1 <= s.number <= 0xFFFF, s
        senders = [r for r in WireRole if s.direction.allows(r)]
        for r in senders:
            assert max_body(s.channel, r) > 0, f"{s.name}: nothing may be sent on {s.channel.name} by {r}"


_check_table()


# --- encoding and decoding -----------------------------------------------------------------------


def spec_of(message: Any) -> MessageSpec:
    try:
        return BY_CLASS[type(message)]
    except KeyError:
        raise EncodeError(f"{type(message).__name__} is not a WayRay wire message") from None


def encode_body(message: Any) -> bytes:
    out = bytearray()
    spec_of(message).layout.encode(message, out)
    return bytes(out)


def encode_message(message: Any) -> bytes:
    """The complete frame (header + body) for ``message``."""
    spec = spec_of(message)
    out = bytearray(HEADER_SIZE)
    spec.layout.encode(message, out)
    HEADER.pack_into(out, 0, len(out) - HEADER_SIZE, spec.number)
    return bytes(out)


def encode_frame_update(update: d.FrameUpdate, capabilities: frozenset[str]) -> bytes:
    """The wire frame for ``update`` to a peer with ``capabilities``: its short form
    (SmallFrameUpdate) when the peer takes it and it fits, else the FrameUpdate itself."""
    if m.Capability.SMALL_FRAMES in capabilities:
        small = d.SmallFrameUpdate.of(update)
        if small is not None:
            return encode_message(small)
    return encode_message(update)


def lookup(channel: m.Channel, msg_type: int) -> MessageSpec:
    spec = BY_NUMBER.get((channel, msg_type))
    if spec is None:
        raise WireProtocolError(
            ErrorCode.UNKNOWN_MESSAGE, f"no message type {msg_type} on the {channel.name} channel"
        )
    return spec


def decode_body(spec: MessageSpec, body: bytes | bytearray | memoryview) -> Any:
    """Decode one message body; any bad input raises WireProtocolError, nothing else."""
    r = Reader(body)
    message = spec.layout.decode(r)
    if r.remaining and not _newer_version(spec, message):
        raise WireProtocolError(
            ErrorCode.MALFORMED_MESSAGE, f"{spec.name}: {r.remaining} unexpected bytes after the last field"
        )
    return message


def _newer_version(spec: MessageSpec, message: Any) -> bool:
    """A versioned message (Hello) of a newer minor version than this code's may end with fields this
    code does not know: they are skipped (since 1.2; a 1.1 receiver refuses them as trailing bytes)."""
    if not spec.layout.versioned:
        return False
    return (message.version_major, message.version_minor) > (m.PROTOCOL_MAJOR, m.PROTOCOL_MINOR)


def decode_message(channel: m.Channel, msg_type: int, body: bytes | bytearray | memoryview) -> Any:
    return decode_body(lookup(channel, msg_type), body)
