"""The link protocol: messages between wrsrvd (the *server*) and a session compositor, and their codec.

Framing is the wire's (``u32 LE length, u16 LE type, body``; :mod:`wayray.wire.framing`). Control
messages carry one JSON object each, checked strictly (every field declared here with its type and
limits, no unknown fields, nothing missing); the relay messages and screenshots carry binary bodies so
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
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from wayray.common.jsonframe import JSONBodyError, decode_object
from wayray.wire import Channel
from wayray.wire.errors import WireProtocolError
from wayray.wire.framing import FrameDecoder, encode_frame, parse_header
from wayray.wire.layout import KiB, MiB

#: Version of the link protocol. Both ends are the same WayRay installation, but a session
#: compositor outlives a wrsrvd restart and the restarted wrsrvd may be an upgraded one: a version
#: wrsrvd does not speak is refused with a reason instead of misunderstood.
#:
#: 1: the first version. 2: wrsrvd pings the compositor (:class:`Ping`/:class:`Pong`) to notice one
#: that hangs without closing its socket.
LINK_VERSION = 2
#: The oldest compositor wrsrvd still serves: sessions started by the previous release survive an
#: upgraded wrsrvd. It sends a compositor of version 1 nothing that version does not know (no Ping).
MIN_LINK_VERSION = 1
#: The version that brought :class:`Ping`/:class:`Pong`.
PING_LINK_VERSION = 2


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


# --- fields --------------------------------------------------------------------------------------


def _text(limit: int, default: Any = MISSING) -> Any:
    return field(default=default, metadata={"max": limit})


def _int(lo: int, hi: int, default: Any = MISSING) -> Any:
    return field(default=default, metadata={"min": lo, "max": hi})


_U32 = 0xFFFF_FFFF
_NAME = 64
_REASON = 1 * KiB


# --- messages ------------------------------------------------------------------------------------


class LinkMessage:
    """Base of every link message (``NUMBER`` and ``SENDER`` come from :data:`MESSAGES`)."""

    NUMBER: ClassVar[int]
    SENDER: ClassVar[LinkRole]


@dataclass(frozen=True, kw_only=True, repr=False)
class Register(LinkMessage):
    """Compositor → server, first: which session this process serves, proven by its secret."""

    link_version: int = _int(0, 0xFFFF)
    session_id: str = _text(_NAME)
    #: The per-session secret from the compositor's environment (``WAYRAY_LINK_SECRET``).
    secret: str = _text(256)
    pid: int = _int(1, 0x7FFF_FFFF)
    #: Its Wayland socket name (in its XDG_RUNTIME_DIR), for operators.
    wayland_display: str = _text(255)
    width: int = _int(1, 65535)
    height: int = _int(1, 65535)
    scale_120: int = _int(1, 65535)

    def __repr__(self) -> str:  # the secret never reaches a log
        return f"Register(session_id={self.session_id!r}, pid={self.pid}, link_version={self.link_version})"


@dataclass(frozen=True, kw_only=True)
class Welcome(LinkMessage):
    """Server → compositor: the registration is accepted."""

    link_version: int = _int(0, 0xFFFF)
    server: str = _text(_NAME)


@dataclass(frozen=True, kw_only=True)
class Close(LinkMessage):
    """Either way: the sender closes the link, and why. Nothing follows it."""

    code: CloseCode
    reason: str = _text(_REASON)


@dataclass(frozen=True, kw_only=True, repr=False)
class Attach(LinkMessage):
    """Server → compositor: a viewer now shows the session. The compositor answers :class:`Attached`,
    then sends a keyframe and the cursor, and from then on frames within the viewer's credit."""

    #: Names this attachment; every ToViewer carries it so that frames of an older viewer that were
    #: still on their way are dropped, never shown to the next one.
    attach_id: int = _int(1, _U32)
    #: The viewer's screen (physical pixels) and scale in 120ths, as in its Hello.
    width: int = _int(0, 65535)
    height: int = _int(0, 65535)
    scale_120: int = _int(1, 65535)
    #: Resize the output to the viewer's screen (when it is a size the compositor can drive).
    match_size: bool
    #: The viewer's XKB keymap text; "" keeps the default.
    keymap: str = _text(512 * KiB)
    #: The wire capabilities negotiated with the viewer (the compositor sends nothing else).
    capabilities: list[str] = _text(32)
    #: The viewer's frame credit window (ServerHello.frame_window).
    frame_window: int = _int(1, 0xFFFF)
    #: Which way clipboard text may flow (the session policy: both, to-client, to-server, none).
    clipboard: str = _text(16)
    #: The seq of the first FrameUpdate to send. 1 for a new viewer connection; higher when wrsrvd
    #: switches a viewer that is already showing another session (greeter → the user's desktop) to
    #: this one, whose seqs must go on increasing on the same connection.
    first_seq: int = _int(1, 2**63 - 1, 1)

    def __repr__(self) -> str:
        return (
            f"Attach(attach_id={self.attach_id}, screen={self.width}x{self.height}@{self.scale_120}/120, "
            f"match_size={self.match_size}, keymap=<{len(self.keymap)} chars>, "
            f"capabilities={sorted(self.capabilities)}, frame_window={self.frame_window}, "
            f"clipboard={self.clipboard}, first_seq={self.first_seq})"
        )


@dataclass(frozen=True, kw_only=True)
class Attached(LinkMessage):
    """Compositor → server: ready for ``attach_id``; the output is this size (for the ServerHello)."""

    attach_id: int = _int(1, _U32)
    width: int = _int(1, 65535)
    height: int = _int(1, 65535)
    scale_120: int = _int(1, 65535)


@dataclass(frozen=True, kw_only=True)
class OutputChanged(LinkMessage):
    """Compositor → server: the output changed size (the viewer asked for it), for operators' tools."""

    width: int = _int(1, 65535)
    height: int = _int(1, 65535)
    scale_120: int = _int(1, 65535)


@dataclass(frozen=True, kw_only=True)
class Detach(LinkMessage):
    """Server → compositor: the viewer of ``attach_id`` left; stop sending frames, release its keys."""

    attach_id: int = _int(1, _U32)
    reason: str = _text(_REASON)


@dataclass(frozen=True, kw_only=True)
class End(LinkMessage):
    """Server → compositor: end the session (stop its programs, then exit)."""

    reason: str = _text(_REASON)


@dataclass(frozen=True, kw_only=True)
class Ended(LinkMessage):
    """Compositor → server: the session is over (its command exited); the process exits next."""

    reason: str = _text(_REASON)
    #: The command's exit status (128+N for signal N), or -1 when there was no command.
    exit_status: int = _int(-1, 255)


@dataclass(frozen=True, kw_only=True)
class Screenshot(LinkMessage):
    """Server → compositor: send a PNG of the output (operators, tests)."""

    request_id: int = _int(0, _U32)
    include_cursor: bool = False


@dataclass(frozen=True, kw_only=True)
class ScreenshotFailed(LinkMessage):
    """Compositor → server: the screenshot ``request_id`` could not be taken."""

    request_id: int = _int(0, _U32)
    reason: str = _text(_REASON)


@dataclass(frozen=True, kw_only=True)
class Ping(LinkMessage):
    """Server → compositor (link version 2): answer with :class:`Pong` carrying the same ``nonce``.
    wrsrvd sends one every 2 s; a compositor that answers none for 6 s is *not responding* (hung,
    stopped, swapping): wrsrvd logs it, shows it to operators and tells its viewer, and does not end
    the session. Its next Pong makes it responding again."""

    #: Counts up from 1 on each link.
    nonce: int = _int(1, 2**63 - 1)


@dataclass(frozen=True, kw_only=True)
class Pong(LinkMessage):
    """Compositor → server (link version 2): the answer to the :class:`Ping` ``nonce``, sent as soon
    as it is read (the compositor's event loop runs and reads its link)."""

    nonce: int = _int(1, 2**63 - 1)


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
        obj = {f.name: getattr(message, f.name) for f in fields(message)}  # type: ignore[arg-type]
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
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
    declared = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(obj) - set(declared))
    if unknown:
        raise LinkError(f"{name}: unknown fields {unknown}")
    values: dict[str, Any] = {}
    for fname, f in declared.items():
        if fname not in obj:
            if f.default is MISSING:
                raise LinkError(f"{name}: missing field {fname!r}")
            continue
        values[fname] = _check(f"{name}.{fname}", f.type, f.metadata, obj[fname])
    return cls(**values)


def _check(where: str, annotation: Any, meta: Any, value: Any) -> Any:
    kind = str(annotation)
    if kind == "str":
        if not isinstance(value, str):
            raise LinkError(f"{where}: expected a string")
        if len(value.encode("utf-8", "surrogatepass")) > meta["max"]:
            raise LinkError(f"{where}: longer than {meta['max']} bytes")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise LinkError(f"{where}: expected an integer")
        if not meta["min"] <= value <= meta["max"]:
            raise LinkError(f"{where}: {value} is outside {meta['min']}..{meta['max']}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise LinkError(f"{where}: expected true or false")
        return value
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 64 for v in value):
            raise LinkError(f"{where}: expected a list of short strings")
        if len(value) > meta["max"]:
            raise LinkError(f"{where}: more than {meta['max']} items")
        return list(value)
    if kind == "CloseCode":
        try:
            return CloseCode(value)
        except ValueError:
            raise LinkError(f"{where}: unknown code {value!r}") from None
    raise AssertionError(f"{where}: no check for {kind}")  # pragma: no cover - the table is fixed


# --- the reference in docs/link.md -------------------------------------------------------------------


def _type_name(annotation: str, meta: Any) -> str:
    if annotation == "str":
        return f"string ≤ {meta['max']} bytes"
    if annotation == "int":
        return f"integer {meta['min']}…{meta['max']}"
    if annotation == "bool":
        return "boolean"
    if annotation == "list[str]":
        return f"list ≤ {meta['max']} of strings"
    if annotation == "CloseCode":
        return " \\| ".join(f"`{c.value}`" for c in CloseCode)
    return annotation


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
        doc = " ".join((spec.cls.__doc__ or "").split())
        lines += [
            "",
            f"### `{spec.cls.__name__}`",
            "",
            doc,
            "",
            "| field | type | required |",
            "|---|---|---|",
        ]
        for f in fields(spec.cls):  # type: ignore[arg-type]
            required = "yes" if f.default is MISSING else f"no (default `{json.dumps(f.default)}`)"
            lines.append(f"| `{f.name}` | {_type_name(str(f.type), f.metadata)} | {required} |")
    return "\n".join(lines) + "\n"
