"""Message bodies of the control and input channels, the display channel's acknowledgement, and
the closed choices they carry.

The display channel's server-to-client bodies live in :mod:`wayray.wire.display` (the contract with
the encoder). Binary layouts are declared in :mod:`wayray.wire.protocol`, next to message numbers.
Every enum value here that mirrors a Wayland one uses Wayland's number, so the compositor passes it
straight through.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: The protocol version this code speaks. Peers must share the major version; the minor version in
#: use is the smaller of the two (docs/protocol.md, "Versions").
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 2

#: Most clipboard text in one ClipboardText, in UTF-8 bytes (senders truncate: ClipboardText.truncated).
MAX_CLIPBOARD_BYTES = 1024 * 1024

#: Scale factors are sent in 120ths, as Wayland's fractional-scale protocol does: 120 = 1.0, 180 = 1.5.
SCALE_ONE = 120


def redact(secret: str) -> str:
    """What logs show of a secret here (a token, an access key): only whether there is one.

    Nothing of the secret, not even its length or first characters: a badge ID is often short and
    numeric, so either would give much of it away. Whoever knows the secret's key logs a keyed digest
    of it instead (wrsrvd: ``badge:0c8ad61e``, wrclient: ``#3f9a1c``)."""
    return "<given>" if secret else "<none>"


class Channel(enum.IntEnum):
    """A named, ordered stream of frames. Over QUIC each channel is one stream per direction."""

    CONTROL = 0
    DISPLAY = 1
    INPUT = 2
    #: The session's sound and the viewer's microphone (the ``audio`` capability; docs/audio.md).
    AUDIO = 3
    #: Reserved: no messages yet (announced by the ``usb`` capability when they come).
    USB = 4


class Capability(enum.StrEnum):
    """Features a peer offers; the connection uses the intersection. Unknown names are ignored."""

    #: Frames of the session's output (FrameUpdate, FrameAck, KeyframeRequest, ResizeRequest).
    DISPLAY = "display"
    #: Keyboard and pointer from the viewer (the input channel).
    INPUT = "input"
    #: The cursor is drawn by the viewer (CursorImage, CursorPosition) instead of into the frames.
    CURSOR = "cursor"
    #: Clipboard text both ways (ClipboardText).
    CLIPBOARD = "clipboard"
    #: The session's sound (AudioStart, AudioFrame, AudioStop on the audio channel).
    AUDIO = "audio"
    #: USB device forwarding (reserved: no messages yet).
    USB = "usb"
    #: The viewer's microphone into the session (MicFrame); only with ``audio``.
    MICROPHONE = "microphone"
    #: The viewer reports its sound's delay (AudioDelay) and the session shows the sounding program's
    #: pictures as much later, so that picture and sound stay together; only with ``audio``.
    AV_SYNC = "av-sync"
    #: The viewer follows a Redirect to another member of the server's pool (docs/pools.md).
    POOLS = "pools"
    #: Touch input from the viewer (TouchDown, TouchMotion, TouchUp, TouchFrame, TouchCancel).
    TOUCH = "touch"
    #: The viewer keeps the region cache: FrameUpdates may hold CACHED regions (docs/encoding.md).
    REGION_CACHE = "region-cache"
    #: The viewer takes SmallFrameUpdate, the short form of a small FrameUpdate (docs/protocol.md).
    SMALL_FRAMES = "small-frames"
    #: The viewer scales video pictures coded at half size up to their rectangle (docs/encoding.md §5).
    VIDEO_SCALED = "video-scaled"


#: What this code implements, and so offers by default.
IMPLEMENTED_CAPABILITIES = frozenset(
    {
        Capability.DISPLAY,
        Capability.INPUT,
        Capability.CURSOR,
        Capability.CLIPBOARD,
        Capability.AUDIO,
        Capability.MICROPHONE,
        Capability.AV_SYNC,
        Capability.POOLS,
        Capability.TOUCH,
        Capability.REGION_CACHE,
        Capability.SMALL_FRAMES,
        Capability.VIDEO_SCALED,
    }
)


class TokenKind(enum.IntEnum):
    """Where the viewer's token came from; the front door decides how a session follows it."""

    #: The kiosk's own identity (no badge inserted): the session belongs to this kiosk.
    TERMINAL = 1
    #: Read from a badge (smart card, NFC tag): the session follows the badge from kiosk to kiosk.
    BADGE = 2
    #: Given on the command line or in a file: the session follows whoever presents it.
    SOFTWARE = 3


class KeyState(enum.IntEnum):
    """As Wayland's ``wl_keyboard.key_state``."""

    RELEASED = 0
    PRESSED = 1


class ButtonState(enum.IntEnum):
    """As Wayland's ``wl_pointer.button_state``."""

    RELEASED = 0
    PRESSED = 1


class Axis(enum.IntEnum):
    """As Wayland's ``wl_pointer.axis``."""

    VERTICAL = 0
    HORIZONTAL = 1


class AxisSource(enum.IntEnum):
    """As Wayland's ``wl_pointer.axis_source``."""

    WHEEL = 0
    FINGER = 1
    CONTINUOUS = 2
    WHEEL_TILT = 3


class Selection(enum.IntEnum):
    """Which clipboard: the regular one, or the primary selection (select to copy, middle-click)."""

    CLIPBOARD = 0
    PRIMARY = 1


class KeyframeReason(enum.IntEnum):
    """Why a viewer asks for a keyframe."""

    #: The checksum of the viewer's framebuffer did not match the frame's.
    CHECKSUM_MISMATCH = 1
    #: A decoder failed or was reset; the viewer no longer has the picture.
    DECODER_ERROR = 2
    #: The viewer dropped its picture (window re-created, display backend restarted).
    VIEWER_RESET = 3


class SessionEventKind(enum.IntEnum):
    """What happened to the session behind this connection."""

    #: The session shows the login screen (greeter).
    GREETER = 1
    #: A user logged in: the session shows their desktop.
    DESKTOP = 2
    #: The session is now shown on another viewer; this connection closes next.
    MOVED = 3
    #: The server detached this viewer from the session (which keeps running).
    DETACHED = 4
    #: The session ended (logout, or an operator ended it).
    ENDED = 5
    #: Since 1.1: the session's compositor answers nothing (hung, stopped): the picture is frozen.
    #: The connection stays; RESPONDING follows when it answers again.
    NOT_RESPONDING = 6
    #: Since 1.1: the session answers again after NOT_RESPONDING; a keyframe follows.
    RESPONDING = 7


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class HelloParams:
    """What a viewer says about itself in its Hello (version and capabilities come from its config)."""

    token: str
    token_kind: TokenKind
    screen_width: int
    screen_height: int
    scale_120: int = SCALE_ONE
    keymap: str = ""
    client_name: str = "wrclient"
    client_version: str = ""
    #: Since 1.2: the server's access key, for servers that require one ("" : none).
    access_key: str = ""
    #: Since 1.2: this viewer's own identity at this server ("": none).
    terminal_id: str = ""
    #: Not sent: the viewer's terminal key. When set, the client transport puts the identity derived
    #: from it for the server reached (its certificate's fingerprint) in ``terminal_id``.
    terminal_key: str = ""

    def __repr__(self) -> str:
        return (
            f"HelloParams(token={redact(self.token)}, token_kind={self.token_kind.name}, "
            f"screen={self.screen_width}x{self.screen_height}@{self.scale_120}/120, "
            f"keymap=<{len(self.keymap)} chars>, client={self.client_name} {self.client_version}, "
            f"access_key={redact(self.access_key)}, terminal_id={redact(self.terminal_id)}, "
            f"terminal_key={redact(self.terminal_key)})"
        )


# --- control channel ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Hello:
    """Client → server, the first message of every connection.

    ``version_major`` and ``version_minor`` come first in every version of the protocol, so a server
    can refuse an incompatible client with a clear reason before it decodes anything else.
    """

    version_major: int
    version_minor: int
    #: The opaque secret that names the session (badge id, kiosk id, ...). Never logged in full.
    token: str
    token_kind: TokenKind
    capabilities: frozenset[str]
    #: The viewer's screen (or window) in physical pixels and its scale, in 120ths.
    screen_width: int
    screen_height: int
    scale_120: int
    #: The viewer's XKB keymap as text (``xkb_keymap { ... }``), empty for the server's default.
    keymap: str
    client_name: str
    client_version: str
    #: Since 1.2: the server's access key (a shared secret some servers require before any session
    #: starts); "" for none. Never logged.
    access_key: str = ""
    #: Since 1.2: the viewer's own identity (a kiosk's, derived from its terminal token: the same on
    #: every connection from that machine, and not the token itself); "" for none. Never logged.
    terminal_id: str = ""

    def __repr__(self) -> str:
        return (
            f"Hello(version={self.version_major}.{self.version_minor}, token={redact(self.token)}, "
            f"token_kind={self.token_kind.name}, capabilities={sorted(self.capabilities)}, "
            f"screen={self.screen_width}x{self.screen_height}@{self.scale_120}/120, "
            f"keymap=<{len(self.keymap)} chars>, client={self.client_name} {self.client_version}, "
            f"access_key={redact(self.access_key)}, terminal_id={redact(self.terminal_id)})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerHello:
    """Server → client: the handshake's answer; the connection is established once it is sent."""

    #: The version in use: the server's major, the smaller minor.
    version_major: int
    version_minor: int
    #: The negotiated capabilities: the intersection of both offers (a subset of the client's).
    capabilities: frozenset[str]
    #: The session's id, for logs and the operator's tools; not a secret.
    session_id: str
    output_width: int
    output_height: int
    output_scale_120: int
    #: True when the token found a running session (it resumes, with its windows).
    resumed: bool
    #: True when a keyframe will follow on the display channel (the viewer shows a blank until then).
    keyframe_follows: bool
    #: Most FrameUpdates the server sends before it needs a FrameAck (the frame credit window).
    frame_window: int
    server_name: str
    server_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Either way: the sender is closing the connection, and why. Its layout never changes."""

    #: An :class:`~wayray.wire.errors.ErrorCode` (a newer peer may send codes this one lacks).
    code: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Either way: keep-alive; the receiver answers with a Pong carrying the same nonce."""

    nonce: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong:
    nonce: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyframeRequest:
    """Client → server: send a keyframe, the viewer's picture cannot be trusted."""

    reason: KeyframeReason


@dataclass(frozen=True, slots=True, kw_only=True)
class ResizeRequest:
    """Client → server: the viewer's screen or window changed; the session may resize its output."""

    width: int
    height: int
    scale_120: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ClipboardText:
    """Either way: the text now on a clipboard (behind the ``clipboard`` capability)."""

    selection: Selection
    text: str

    @classmethod
    def truncated(cls, selection: Selection, text: str) -> ClipboardText:
        """A ClipboardText for ``text``, cut at a character boundary to the 1 MiB limit if longer."""
        raw = text.encode("utf-8", "replace")
        if len(raw) > MAX_CLIPBOARD_BYTES:
            text = raw[:MAX_CLIPBOARD_BYTES].decode("utf-8", "ignore")
        return cls(selection=selection, text=text)

    def __repr__(self) -> str:  # clipboards hold passwords too: no content in logs
        return f"ClipboardText(selection={self.selection.name}, text=<{len(self.text)} chars>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent:
    """Server → client: something happened to the session; ``detail`` is for people."""

    kind: SessionEventKind
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """Server → client, in place of a ServerHello (only to a viewer that offered ``pools``): the
    token's session, or the place chosen for it, is on another member of the server's pool; dial
    ``host``:``port`` and accept exactly ``fingerprint`` there. A Close ``REDIRECTED`` follows."""

    host: str
    port: int
    fingerprint: str
    server_id: str
    reason: str


# --- display channel, client → server -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameAck:
    """Client → server: every FrameUpdate up to and including ``seq`` is applied on screen.

    Cumulative, like TCP's: an ack for ``seq`` acknowledges all earlier frames too.
    """

    seq: int
    #: How long decoding and presenting frame ``seq`` took, in microseconds (0 if unknown).
    decode_us: int


# --- input channel --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """A key changed state. ``code`` is the Linux evdev code (KEY_A = 30); XKB adds 8."""

    code: int
    state: KeyState
    #: The viewer's clock in milliseconds (wraps at 2**32); only differences mean anything.
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PointerMotion:
    """The pointer moved to (x, y) in the session output's pixels (absolute, may be fractional)."""

    x: float
    y: float
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PointerButton:
    """A button changed state. ``button`` is the evdev code (BTN_LEFT = 0x110)."""

    button: int
    state: ButtonState
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PointerAxis:
    """Scrolling: ``value`` in pixels (continuous); ``value120`` in 120ths of a wheel detent (0 if none).

    A FINGER-source event with both values 0 is a stop (Wayland's ``axis_stop``).
    """

    axis: Axis
    value: float
    value120: int
    source: AxisSource
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class KeymapUpdate:
    """The viewer's keyboard layout changed: the new XKB keymap text (ordered with the keys around it)."""

    keymap: str

    def __repr__(self) -> str:
        return f"KeymapUpdate(keymap=<{len(self.keymap)} chars>)"


# --- touch (input channel 0x90-0x94, capability ``touch``) ---------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TouchDown:
    """A new touch point ``id`` at (x, y) in the session output's pixels (absolute, may be fractional)."""

    id: int
    x: float
    y: float
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TouchMotion:
    """Touch point ``id`` (down) moved to (x, y)."""

    id: int
    x: float
    y: float
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TouchUp:
    """Touch point ``id`` was lifted; the id may be used again."""

    id: int
    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TouchFrame:
    """The touch messages since the previous TouchFrame belong together (``wl_touch.frame``)."""

    time_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TouchCancel:
    """The viewer's compositor took the touches away: every point is gone, none of it was meant."""

    time_ms: int


# --- USB (control channel, capability ``usb``; docs/usb.md) ---------------------------------------


class UsbSpeed(enum.IntEnum):
    """A USB device's speed, numbered as the kernel's ``enum usb_device_speed`` (and USB/IP)."""

    UNKNOWN = 0
    LOW = 1
    FULL = 2
    HIGH = 3
    WIRELESS = 4
    SUPER = 5
    SUPER_PLUS = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbOffer:
    """Client → server: the kiosk offers a USB device its own rules allow to the session it shows."""

    #: The kiosk's handle for the device, unique on the connection (never reused on it).
    device: int
    #: Where it is plugged in on the kiosk (``1-2``), for logs.
    busid: str
    speed: UsbSpeed
    #: The device descriptor, then every configuration descriptor, as the device gave them.
    descriptors: bytes
    manufacturer: str
    product: str
    serial: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbWithdraw:
    """Client → server: the kiosk takes back a device it offered (unplugged, the kiosk stops, ...)."""

    device: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbVerdict:
    """Server → client: the answer to one UsbOffer; ``reason`` names the deciding rule, or why the
    device cannot be attached."""

    device: int
    accepted: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbDetached:
    """Server → client: the server let go of an accepted device (the session shown changed or ended,
    the rules were reloaded, the device's stream failed)."""

    device: int
    reason: str
