"""The contract between wrclient's session logic and its display backends.

The session logic (connection, decoding, reconnect, token handling) drives a backend; a backend shows
the decoded framebuffer and the cursor, and turns what the person at the thin client does into
:class:`InputEvent`\\ s. Two backends exist: ``headless`` (framebuffer in memory, PNG snapshots; tests,
recording, synthetic checks) and ``wayland`` (a window, or full-screen under a kiosk compositor such as
cage). Coordinates are in the session's output pixels; key codes are Linux evdev codes.

wrclient makes a backend from :class:`BackendOptions`: the headless one directly, the window one as
``wayray.client.backends.wayland.WaylandBackend(options)``, imported only when it is used (see
``wayray.client.backends.open_backend``). ``start`` is awaited before anything else is called.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wayray.codec.geometry import RectLike


@dataclass(frozen=True, slots=True)
class KeyEvent:
    evdev_code: int
    pressed: bool


@dataclass(frozen=True, slots=True)
class PointerMotionEvent:
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class PointerButtonEvent:
    evdev_button: int
    pressed: bool


@dataclass(frozen=True, slots=True)
class PointerAxisEvent:
    #: 0 = vertical, 1 = horizontal (as wl_pointer.axis).
    axis: int
    #: Scroll distance in output pixels (wl_pointer semantics: positive = down/right).
    value: float
    #: Whole wheel notches when the source is a wheel, else None.
    discrete: int | None = None


@dataclass(frozen=True, slots=True)
class TouchDownEvent:
    """A touch point went down at (x, y) in the session's output pixels; ``id`` names it until it is up."""

    id: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class TouchMotionEvent:
    id: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class TouchUpEvent:
    id: int


@dataclass(frozen=True, slots=True)
class TouchFrameEvent:
    """The touch events since the previous frame belong together (as ``wl_touch.frame``)."""


@dataclass(frozen=True, slots=True)
class TouchCancelEvent:
    """The local compositor took the touches away: every point is gone, none of it was meant."""


@dataclass(frozen=True, slots=True)
class ScreenChangedEvent:
    """The viewer's screen (window) size or scale changed; the session may be asked to match it."""

    width: int
    height: int
    #: Scale in 1/120 units (120 = 1.0), as in the wire's Hello.
    scale_120: int = 120


@dataclass(frozen=True, slots=True)
class KeymapChangedEvent:
    """The viewer's keyboard layout changed (XKB keymap text, as wl_keyboard.keymap gives it)."""

    keymap: str


@dataclass(frozen=True, slots=True)
class ClipboardChangedEvent:
    """The viewer's clipboard holds new text (only sent when the clipboard capability is on)."""

    text: str


@dataclass(frozen=True, slots=True)
class CloseRequestedEvent:
    """The person closed the window (not possible in kiosk mode)."""


InputEvent = (
    KeyEvent
    | PointerMotionEvent
    | PointerButtonEvent
    | PointerAxisEvent
    | TouchDownEvent
    | TouchMotionEvent
    | TouchUpEvent
    | TouchFrameEvent
    | TouchCancelEvent
    | ScreenChangedEvent
    | KeymapChangedEvent
    | ClipboardChangedEvent
    | CloseRequestedEvent
)


class ConnectionState(enum.StrEnum):
    """What the thin client shows when no live session picture is up to date."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    #: Kiosk mode with no session attached: the "present your badge" screen.
    IDLE = "idle"
    FAILED = "failed"
    #: Connected, but the session answers nothing (its compositor hangs): the picture is frozen.
    NOT_RESPONDING = "not-responding"


@dataclass(frozen=True, slots=True)
class CursorImage:
    """A decoded cursor: premultiplied ARGB8888 (uint32, H x W) with its hotspot."""

    pixels: npt.NDArray[np.uint32]
    hotspot_x: int
    hotspot_y: int


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What wrclient's command line asks of a backend."""

    #: The headless backend (no display needed) instead of a window.
    headless: bool = False
    #: The screen (window) size in physical pixels; None lets the backend decide (a window: a default
    #: size, or the whole output when full-screen; headless: 1280x720).
    size: tuple[int, int] | None = None
    #: The scale in 120ths (120 = 1.0); a window reports its output's scale instead.
    scale_120: int = 120
    #: Cover the whole output without decorations (for kiosks under cage).
    fullscreen: bool = False
    #: Kiosk mode: full screen, close requests ignored, the idle screen while no session is shown.
    kiosk: bool = False
    #: The XKB keymap text the viewer types with; None: the backend's own (a window: the keyboard the
    #: local compositor gives it; headless: US).
    keymap: str | None = None
    #: Window title.
    title: str = "WayRay"


class DisplayBackend(Protocol):
    """What wrclient's session logic needs from a display backend. All methods run on the event loop."""

    async def start(self, on_input: Callable[[InputEvent], None]) -> None:
        """Open the display (window, or nothing for headless); input is delivered through ``on_input``."""

    def screen(self) -> ScreenChangedEvent:
        """The current screen/window size and scale, to put in the Hello and resize requests."""

    def keymap(self) -> str | None:
        """The XKB keymap text the viewer types with (None: let the session use its default)."""

    def present(self, framebuffer: npt.NDArray[np.uint32], damage: Sequence[RectLike]) -> None:
        """Show ``framebuffer`` (XRGB8888, H x W); only ``damage`` changed since the previous call."""

    def set_cursor(self, image: CursorImage | None) -> None:
        """Use ``image`` as the pointer's picture over the session (None: hide the pointer)."""

    def move_cursor(self, x: int, y: int, visible: bool) -> None:
        """Where the session says the pointer is (backends that draw the cursor themselves use it)."""

    def set_state(self, state: ConnectionState, detail: str = "") -> None:
        """Show the connection state (a status line, a dimmed picture, the idle screen...)."""

    def set_microphone(self, live: bool) -> None:
        """Show, or stop showing, that the session hears this machine's microphone (docs/audio.md)."""

    def set_clipboard(self, text: str) -> None:
        """The session's clipboard changed: offer ``text`` on the viewer's clipboard."""

    async def close(self) -> None:
        """Close the display and release everything it holds."""
