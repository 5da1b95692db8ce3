"""The link protocol: messages between wrsrvd (the *server*) and a session compositor, and their codec.

Framing is the wire's (``u32 LE length, u16 LE type, body``; :mod:`wayray.wire.framing`). Control
messages carry one JSON object each, checked strictly (every field declared here with its type,
limits and meaning, in the schema layer of :mod:`wayray.common.schema`; no unknown fields, nothing
missing); the relay messages and screenshots carry binary bodies so
that pixels are never re-encoded:

- ``ToViewer``: ``u32 attach_id, u8 channel`` then one complete wire frame (header and body) that the
  compositor serialized; wrsrvd passes it to the viewer's connection as it is.
- ``ToSession``: ``u8 channel`` then one complete wire frame: a message the viewer sent (input, frame
  acknowledgements, keyframe and resize requests, clipboard), checked by wrsrvd's wire connection.
- ``ScreenshotResult``: ``u32 request_id`` then a PNG.

Sans-IO like the wire: :class:`LinkDecoder` turns bytes into messages (or raises :class:`LinkError`
with a reason, after which the owner closes the link), :func:`encode` turns a message into bytes.
The table :data:`MESSAGES` is the one list of messages; docs/link.md is generated from it.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from wayray.common.jsonframe import JSONBodyError, decode_object
from wayray.common.schema import BadField, Kind, MissingField, Record, UnknownFields, field
from wayray.wire import Channel
from wayray.wire.errors import WireProtocolError
from wayray.wire.framing import FrameDecoder, encode_frame, parse_header
from wayray.wire.layout import KiB, MiB

#: Version of the link protocol. Both ends are the same WayRay installation, but a session
#: compositor outlives a wrsrvd restart and the restarted wrsrvd may be an upgraded one: a version
#: wrsrvd does not speak is refused with a reason instead of misunderstood.
#:
#: 1: the first version. 2: wrsrvd pings the compositor (:class:`Ping`/:class:`Pong`) to notice one
#: that hangs without closing its socket. 3: :class:`Attach` may carry ``audio_bitrate`` (docs/audio.md).
LINK_VERSION = 3
#: The oldest compositor wrsrvd still serves: sessions started by the previous release survive an
#: upgraded wrsrvd. It sends a compositor of version 1 nothing that version does not know (no Ping).
MIN_LINK_VERSION = 1
#: The version that brought :class:`Ping`/:class:`Pong`.
PING_LINK_VERSION = 2
#: The version that brought ``Attach.audio_bitrate``: wrsrvd sends it to no older compositor.
AUDIO_LINK_VERSION = 3


class LinkRole(enum.StrEnum):
    SERVER = "server"  # wrsrvd
    COMPOSITOR = "compositor"  # the session compositor process

    @property
    def peer(self) -> LinkRole:
        return LinkRole.COMPOSITOR if self is LinkRole.SERVER else LinkRole.SERVER


#: Largest frame body each side sends: the compositor relays display frames (the wire's display
#: channel allows 64 MiB) and screenshots; wrsrvd relays viewer messages (at most 2 MiB) and keymaps.
MAX_BODY = {LinkRole.COMPOSITOR: 64 * MiB + 64, LinkRole.SERVER: 4 * MiB}
#: Until a compositor has registered, it may send only a Register (well under 2 KiB): the link socket
#: is open to every local user in login mode, and nobody unregistered may make wrsrvd buffer 64 MiB.
MAX_REGISTER_BODY = 16 * KiB


class LinkError(Exception):
    """The peer broke the link protocol; the link must close with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CloseCode(enum.StrEnum):
    """Why a link closes (in :class:`Close`)."""

    #: The server knows no live session with that id (it ended, or its registry was reset).
    UNKNOWN_SESSION = "unknown_session"
    #: The secret does not match the one the server gave the session.
    BAD_SECRET = "bad_secret"
    #: The link versions differ.
    VERSION = "version"
    #: A message the protocol does not allow (the reason says which).
    PROTOCOL_ERROR = "protocol_error"
    #: Another compositor registered for the same session: this link is no longer used.
    REPLACED = "replaced"
    #: The server is stopping; the compositor reconnects to the next one.
    SHUTDOWN = "shutdown"


# --- fields: the link's kinds of wayray.common.schema ------------------------------------------------


@dataclass(frozen=True)
class Utf8(Kind):
    """A string of at most ``max_bytes`` bytes of UTF-8."""

    max_bytes: int

    def check(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        if len(value.encode("utf-8", "surrogatepass")) > self.max_bytes:
            raise ValueError(f"longer than {self.max_bytes} bytes")
        return value

    def describe(self) -> str:
        return f"string ≤ {self.max_bytes} bytes"


@dataclass(frozen=True)
class Int(Kind):
    low: int
    high: int

    def check(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        if not self.low <= value <= self.high:
            raise ValueError(f"{value} is outside {self.low}..{self.high}")
        return value

    def describe(self) -> str:
        return f"integer {self.low}…{self.high}"


@dataclass(frozen=True)
class Bool(Kind):
    def check(self, value: object) -> object:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value

    def describe(self) -> str:
        return "boolean"


@dataclass(frozen=True)
class Names(Kind):
    """A list of at most ``max_items`` short strings (≤ 64 characters: capability names)."""

    max_items: int

    def check(self, value: object) -> object:
        if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 64 for v in value):
            raise ValueError("expected a list of short strings")
        if len(value) > self.max_items:
            raise ValueError(f"more than {self.max_items} items")
        return list(value)

    def describe(self) -> str:
        return f"list ≤ {self.max_items} of strings"


@dataclass(frozen=True)
class Code(Kind):
    enum: type[enum.StrEnum]

    def check(self, value: object) -> object:
        if isinstance(value, str) and value in self.enum.__members__.values():
            return self.enum(value)
        raise ValueError(f"unknown code {value!r}")

    def describe(self) -> str:
        return " \\| ".join(f"`{c.value}`" for c in self.enum)


_U32 = 0xFFFF_FFFF
_NAME = Utf8(64)
_REASON = Utf8(1 * KiB)
_SIZE = Int(1, 65535)
_SCALE = Int(1, 65535)
_ATTACH_ID = Int(1, _U32)


# --- messages ------------------------------------------------------------------------------------


class LinkMessage:
    """Base of every link message (``NUMBER`` and ``SENDER`` come from :data:`MESSAGES`)."""

    NUMBER: ClassVar[int]
    SENDER: ClassVar[LinkRole]


class JSONMessage(LinkMessage, Record):
    """A link message whose body is a JSON object of its declared fields. Every field is written,
    and a ``null`` is no value of any field (it is refused, not taken for an absent field)."""

    NULL_IS_ABSENT: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True, repr=False)
class Register(JSONMessage):
    """Compositor → server, first: which session this process serves, proven by its secret."""

    link_version: int = field(Int(0, 0xFFFF), "the compositor's link version", required=True)
    session_id: str = field(_NAME, "the session it serves", required=True)
    secret: str = field(
        Utf8(256), "the per-session secret it was given (`WAYRAY_LINK_SECRET_FD`)", required=True
    )
    pid: int = field(Int(1, 0x7FFF_FFFF), "its pid", required=True)
    wayland_display: str = field(
        Utf8(255), "its Wayland socket name (in its XDG_RUNTIME_DIR), for operators", required=True
    )
    width: int = field(_SIZE, "its output's width", required=True)
    height: int = field(_SIZE, "its output's height", required=True)
    scale_120: int = field(_SCALE, "its output's scale, in 120ths", required=True)

    def __repr__(self) -> str:  # the secret never reaches a log
        return f"Register(session_id={self.session_id!r}, pid={self.pid}, link_version={self.link_version})"


@dataclass(frozen=True, kw_only=True)
class Welcome(JSONMessage):
    """Server → compositor: the registration is accepted."""

    link_version: int = field(Int(0, 0xFFFF), "wrsrvd's link version", required=True)
    server: str = field(_NAME, "wrsrvd and its version", required=True)


@dataclass(frozen=True, kw_only=True)
class Close(JSONMessage):
    """Either way: the sender closes the link, and why. Nothing follows it."""

    code: CloseCode = field(Code(CloseCode), "why, for the program", required=True)
    reason: str = field(_REASON, "why, for people", required=True)


@dataclass(frozen=True, kw_only=True, repr=False)
class Attach(JSONMessage):
    """Server → compositor: a viewer now shows the session. The compositor answers :class:`Attached`,
    then sends a keyframe and the cursor, and from then on frames within the viewer's credit."""

    attach_id: int = field(
        _ATTACH_ID,
        "names this attachment; every ToViewer carries it so that frames of an older viewer that were "
        "still on their way are dropped, never shown to the next one",
        required=True,
    )
    width: int = field(
        Int(0, 65535), "the viewer's screen width (physical pixels), as in its Hello", required=True
    )
    height: int = field(Int(0, 65535), "the viewer's screen height", required=True)
    scale_120: int = field(_SCALE, "the viewer's scale in 120ths", required=True)
    match_size: bool = field(
        Bool(), "resize the output to the viewer's screen (when the compositor can drive it)", required=True
    )
    keymap: str = field(
        Utf8(512 * KiB), "the viewer's XKB keymap text; empty keeps the default", required=True
    )
    capabilities: list[str] = field(
        Names(32), "the wire capabilities negotiated with the viewer (nothing else is sent)", required=True
    )
    frame_window: int = field(Int(1, 0xFFFF), "the viewer's frame credit window", required=True)
    clipboard: str = field(
        Utf8(16), "which way clipboard text may flow: both, to-client, to-server, none", required=True
    )
    first_seq: int = field(
        Int(1, 2**63 - 1),
        "the seq of the first FrameUpdate to send: 1 for a new viewer connection; higher when wrsrvd "
        "switches a viewer that already shows another session (greeter → the user's desktop) to this "
        "one, whose seqs must go on increasing on the same connection",
        default=1,
    )
    audio_bitrate: int | None = field(
        Int(16, 256),
        "since link version 3: the Opus bit rate for this viewer's sound in kbit/s (policy.audio_bitrate "
        "at the attach); absent: the bit rate the session started with",
    )

    def __repr__(self) -> str:
        return (
            f"Attach(attach_id={self.attach_id}, screen={self.width}x{self.height}@{self.scale_120}/120, "
            f"match_size={self.match_size}, keymap=<{len(self.keymap)} chars>, "
            f"capabilities={sorted(self.capabilities)}, frame_window={self.frame_window}, "
            f"clipboard={self.clipboard}, first_seq={self.first_seq})"
        )


@dataclass(frozen=True, kw_only=True)
class Attached(JSONMessage):
    """Compositor → server: ready for ``attach_id``; the output is this size (for the ServerHello)."""

    attach_id: int = field(_ATTACH_ID, "the attachment", required=True)
    width: int = field(_SIZE, "the output's width", required=True)
    height: int = field(_SIZE, "the output's height", required=True)
    scale_120: int = field(_SCALE, "the output's scale in 120ths", required=True)


@dataclass(frozen=True, kw_only=True)
class OutputChanged(JSONMessage):
    """Compositor → server: the output changed size (the viewer asked for it), for operators' tools."""

    width: int = field(_SIZE, "the output's width", required=True)
    height: int = field(_SIZE, "the output's height", required=True)
    scale_120: int = field(_SCALE, "the output's scale in 120ths", required=True)


@dataclass(frozen=True, kw_only=True)
class Detach(JSONMessage):
    """Server → compositor: the viewer of ``attach_id`` left; stop sending frames, release its keys."""

    attach_id: int = field(_ATTACH_ID, "the attachment that ended", required=True)
    reason: str = field(_REASON, "why", required=True)


@dataclass(frozen=True, kw_only=True)
class End(JSONMessage):
    """Server → compositor: end the session (stop its programs, then exit)."""

    reason: str = field(_REASON, "why", required=True)


@dataclass(frozen=True, kw_only=True)
class Ended(JSONMessage):
    """Compositor → server: the session is over (its command exited); the process exits next."""

    reason: str = field(_REASON, "why", required=True)
    exit_status: int = field(
        Int(-1, 255),
        "the command's exit status (128+N for signal N), or -1 without a command",
        required=True,
    )


@dataclass(frozen=True, kw_only=True)
class Screenshot(JSONMessage):
    """Server → compositor: send a PNG of the output (operators, tests)."""

    request_id: int = field(Int(0, _U32), "names the request in the answer", required=True)
    include_cursor: bool = field(Bool(), "draw the cursor into it", default=False)


@dataclass(frozen=True, kw_only=True)
class ScreenshotFailed(JSONMessage):
    """Compositor → server: the screenshot ``request_id`` could not be taken."""

    request_id: int = field(Int(0, _U32), "the request", required=True)
    reason: str = field(_REASON, "why", required=True)


@dataclass(frozen=True, kw_only=True)
class Ping(JSONMessage):
    """Server → compositor (link version 2): answer with :class:`Pong` carrying the same ``nonce``.
    wrsrvd sends one every 2 s; a compositor that answers none for 6 s is *not responding* (hung,
    stopped, swapping): wrsrvd logs it, shows it to operators and tells its viewer, and does not end
    the session. Its next Pong makes it responding again."""

    nonce: int = field(Int(1, 2**63 - 1), "counts up from 1 on each link", required=True)


@dataclass(frozen=True, kw_only=True)
class Pong(JSONMessage):
    """Compositor → server (link version 2): the answer to the :class:`Ping` ``nonce``, sent as soon
    as it is read (the compositor's event loop runs and reads its link)."""

    nonce: int = field(Int(1, 2**63 - 1), "the Ping's", required=True)


@dataclass(frozen=True)
class ScreenshotResult(LinkMessage):
    """Compositor → server (binary): the PNG of screenshot ``request_id``."""

    request_id: int
    png: bytes

    def __repr__(self) -> str:
        return f"ScreenshotResult(request_id={self.request_id}, png=<{len(self.png)} bytes>)"


@dataclass(frozen=True)
class ToSession(LinkMessage):
    """Server → compositor (binary): one message from the viewer, as a complete wire frame."""

    channel: Channel
    frame: bytes

    def __repr__(self) -> str:
        return f"ToSession({self.channel.name}, <{len(self.frame)} bytes>)"


@dataclass(frozen=True)
class ToViewer(LinkMessage):
    """Compositor → server (binary): one complete wire frame for the viewer of ``attach_id``."""

    attach_id: int
    channel: Channel
    frame: bytes

    def __repr__(self) -> str:
        return f"ToViewer({self.attach_id}, {self.channel.name}, <{len(self.frame)} bytes>)"


@dataclass(frozen=True)
class LinkSpec:
    number: int
    cls: type[LinkMessage]
    sender: LinkRole
    binary: bool = False


S, C = LinkRole.SERVER, LinkRole.COMPOSITOR

#: Every link message: its number, who sends it, and whether its body is binary (else JSON).
MESSAGES: tuple[LinkSpec, ...] = (
    LinkSpec(1, Register, C),
    LinkSpec(2, Welcome, S),
    LinkSpec(3, Close, S),
    LinkSpec(4, Close, C),
    LinkSpec(5, Attach, S),
    LinkSpec(6, Attached, C),
    LinkSpec(7, Detach, S),
    LinkSpec(8, End, S),
    LinkSpec(9, Ended, C),
    LinkSpec(10, Screenshot, S),
    LinkSpec(11, ScreenshotResult, C, binary=True),
    LinkSpec(12, ScreenshotFailed, C),
    LinkSpec(13, OutputChanged, C),
    LinkSpec(14, Ping, S),
    LinkSpec(15, Pong, C),
    LinkSpec(16, ToSession, S, binary=True),
    LinkSpec(17, ToViewer, C, binary=True),
)

_BY_NUMBER = {(s.sender, s.number): s for s in MESSAGES}
_BY_CLASS = {(s.cls, s.sender): s for s in MESSAGES}
assert len(_BY_NUMBER) == len(MESSAGES) and len({s.number for s in MESSAGES}) == len(MESSAGES)

_TO_VIEWER = struct.Struct("<IB")
_TO_SESSION = struct.Struct("<B")
_REQUEST = struct.Struct("<I")


def spec_of(message: LinkMessage, sender: LinkRole) -> LinkSpec:
    spec = _BY_CLASS.get((type(message), sender))
    if spec is None:
        raise ValueError(f"the {sender} never sends {type(message).__name__}")
    return spec


# --- encoding ------------------------------------------------------------------------------------


def encode(message: LinkMessage, sender: LinkRole) -> bytes:
    """The complete link frame for ``message`` sent by ``sender``."""
    spec = spec_of(message, sender)
    if isinstance(message, ToViewer):
        body = _TO_VIEWER.pack(message.attach_id, message.channel) + message.frame
    elif isinstance(message, ToSession):
        body = _TO_SESSION.pack(message.channel) + message.frame
    elif isinstance(message, ScreenshotResult):
        body = _REQUEST.pack(message.request_id) + message.png
    else:
        assert isinstance(message, JSONMessage), message
        body = json.dumps(message.to_json(), separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_BODY[sender]:
        raise ValueError(f"{type(message).__name__} of {len(body)} bytes exceeds the link's limit")
    return encode_frame(spec.number, body)


# --- decoding ------------------------------------------------------------------------------------


class LinkDecoder:
    """Cuts what ``peer`` sends into messages; :class:`LinkError` for anything malformed."""

    def __init__(self, peer: LinkRole) -> None:
        self.peer = peer
        self._frames = FrameDecoder(MAX_BODY[peer], what=f"link frame from the {peer}")

    @property
    def buffered(self) -> int:
        return self._frames.buffered

    def limit(self, max_body: int | None) -> None:
        """Accept frames of at most ``max_body`` bytes from now on (None: the peer's normal limit)."""
        self._frames.max_body = MAX_BODY[self.peer] if max_body is None else max_body

    def feed(self, data: bytes | bytearray | memoryview) -> list[LinkMessage]:
        try:
            frames = self._frames.feed(data)
        except WireProtocolError as err:
            raise LinkError(err.reason) from None
        return [decode(self.peer, f.type, f.body) for f in frames]

    def check_finished(self) -> None:
        try:
            self._frames.check_finished()
        except WireProtocolError as err:
            raise LinkError(err.reason) from None


def decode(sender: LinkRole, number: int, body: bytes) -> LinkMessage:
    spec = _BY_NUMBER.get((sender, number))
    if spec is None:
        raise LinkError(f"the {sender} sent link message type {number}, which it never sends")
    name = spec.cls.__name__
    if spec.cls is ToViewer:
        if len(body) < _TO_VIEWER.size:
            raise LinkError(f"{name}: {len(body)} bytes is too short")
        attach_id, channel = _TO_VIEWER.unpack_from(body)
        return ToViewer(attach_id, _channel(name, channel), _wire_frame(name, body[_TO_VIEWER.size :]))
    if spec.cls is ToSession:
        if len(body) < _TO_SESSION.size:
            raise LinkError(f"{name}: empty body")
        (channel,) = _TO_SESSION.unpack_from(body)
        return ToSession(_channel(name, channel), _wire_frame(name, body[_TO_SESSION.size :]))
    if spec.cls is ScreenshotResult:
        if len(body) < _REQUEST.size:
            raise LinkError(f"{name}: {len(body)} bytes is too short")
        (request_id,) = _REQUEST.unpack_from(body)
        return ScreenshotResult(request_id, bytes(body[_REQUEST.size :]))
    try:
        obj = decode_object(body)
    except JSONBodyError as err:
        raise LinkError(f"{name}: the body {err.reason}") from None
    return _from_json(spec.cls, obj)


def _channel(name: str, value: int) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise LinkError(f"{name}: no wire channel {value}") from None


def _wire_frame(name: str, frame: bytes) -> bytes:
    try:
        parse_header(frame)
    except WireProtocolError as err:
        raise LinkError(f"{name}: the wire frame inside is broken: {err.reason}") from None
    return bytes(frame)


def _from_json(cls: type[LinkMessage], obj: dict[str, Any]) -> LinkMessage:
    name = cls.__name__
    assert issubclass(cls, JSONMessage), cls
    try:
        return cls.from_json(obj)
    except UnknownFields as err:
        raise LinkError(f"{name}: unknown fields {err.names}") from None
    except MissingField as err:
        raise LinkError(f"{name}: missing field {err.name!r}") from None
    except BadField as err:
        raise LinkError(f"{name}.{err.name}: {err.reason}") from None


# --- the reference in docs/link.md -------------------------------------------------------------------


def reference() -> str:
    """The message reference of docs/link.md (between its GENERATED markers)."""
    lines = ["| number | message | sent by | body |", "|---|---|---|---|"]
    for spec in MESSAGES:
        body = "binary" if spec.binary else "JSON object"
        lines.append(f"| {spec.number} | `{spec.cls.__name__}` | {spec.sender} | {body} |")
    seen: set[type] = set()
    for spec in MESSAGES:
        if spec.binary or spec.cls in seen:
            continue
        seen.add(spec.cls)
        assert issubclass(spec.cls, JSONMessage)
        doc = " ".join((spec.cls.__doc__ or "").split())
        lines += [
            "",
            f"### `{spec.cls.__name__}`",
            "",
            doc,
            "",
            "| field | type | required | meaning |",
            "|---|---|---|---|",
        ]
        defaults = {f.name: f.default for f in fields(spec.cls)}  # type: ignore[arg-type]
        for name, fs in spec.cls.specs():
            required = "yes" if fs.required else f"no (default `{json.dumps(defaults[name])}`)"
            lines.append(f"| `{name}` | {fs.kind.describe()} | {required} | {fs.doc} |")
    return "\n".join(lines) + "\n"
