"""The WayRay wire protocol, sans-IO: messages, framing, version and capability negotiation.

No sockets and no clocks here: time is passed in, bytes and events come out (as aioquic's
QuicConnection does), so every part is testable and fuzzable without a network. The spec is
docs/protocol.md; :mod:`wayray.wire.protocol` is its one table in code.

Typical use (the transport in :mod:`wayray.transport` does this over QUIC)::

    conn = WireConnection(WireRole.SERVER, WireConfig(), now=clock())
    conn.receive(Channel.CONTROL, data, now=clock())
    while (event := conn.next_event()) is not None:
        if isinstance(event, HelloReceived):
            conn.accept(session_id="s1", output_width=1920, output_height=1080, now=clock())
    for channel, chunk in conn.data_to_send():
        ...  # write chunk to the stream of ``channel``
"""

from wayray.wire.audio import AudioCodec, AudioFrame, AudioStart, AudioStop, MicFrame
from wayray.wire.connection import State, WireConfig, WireConnection
from wayray.wire.credit import CreditError, FrameCredit
from wayray.wire.display import CursorImage, CursorPosition, FrameUpdate, Region, RegionEncoding
from wayray.wire.errors import EncodeError, ErrorCode, WireProtocolError, WireUsageError
from wayray.wire.events import (
    ConnectionClosed,
    HandshakeCompleted,
    HelloReceived,
    MessageReceived,
    WireEvent,
)
from wayray.wire.framing import Frame, FrameDecoder, encode_frame
from wayray.wire.messages import (
    IMPLEMENTED_CAPABILITIES,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    SCALE_ONE,
    Axis,
    AxisSource,
    ButtonState,
    Capability,
    Channel,
    ClipboardText,
    Close,
    FrameAck,
    Hello,
    HelloParams,
    Key,
    KeyframeReason,
    KeyframeRequest,
    KeymapUpdate,
    KeyState,
    Ping,
    PointerAxis,
    PointerButton,
    PointerMotion,
    Pong,
    Redirect,
    ResizeRequest,
    Selection,
    ServerHello,
    SessionEvent,
    SessionEventKind,
    TokenKind,
    UsbDetached,
    UsbOffer,
    UsbSpeed,
    UsbVerdict,
    UsbWithdraw,
    redact,
)
from wayray.wire.protocol import (
    MESSAGES,
    MessageSpec,
    WireRole,
    decode_body,
    decode_message,
    encode_body,
    encode_message,
    max_body,
    spec_of,
)

__all__ = [
    "AudioCodec",
    "AudioFrame",
    "AudioStart",
    "AudioStop",
    "MicFrame",
    "Axis",
    "AxisSource",
    "ButtonState",
    "Capability",
    "Channel",
    "ClipboardText",
    "Close",
    "ConnectionClosed",
    "CreditError",
    "CursorImage",
    "CursorPosition",
    "EncodeError",
    "ErrorCode",
    "Frame",
    "FrameAck",
    "FrameCredit",
    "FrameDecoder",
    "FrameUpdate",
    "HandshakeCompleted",
    "Hello",
    "HelloParams",
    "HelloReceived",
    "IMPLEMENTED_CAPABILITIES",
    "Key",
    "KeyState",
    "KeyframeReason",
    "KeyframeRequest",
    "KeymapUpdate",
    "MESSAGES",
    "MessageReceived",
    "MessageSpec",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "Ping",
    "PointerAxis",
    "PointerButton",
    "PointerMotion",
    "Pong",
    "Redirect",
    "WireProtocolError",
    "Region",
    "RegionEncoding",
    "ResizeRequest",
    "WireRole",
    "SCALE_ONE",
    "Selection",
    "ServerHello",
    "SessionEvent",
    "SessionEventKind",
    "State",
    "TokenKind",
    "UsbDetached",
    "UsbOffer",
    "UsbSpeed",
    "UsbVerdict",
    "UsbWithdraw",
    "WireConfig",
    "WireConnection",
    "WireEvent",
    "WireUsageError",
    "decode_body",
    "decode_message",
    "encode_body",
    "encode_frame",
    "encode_message",
    "max_body",
    "redact",
    "spec_of",
]
