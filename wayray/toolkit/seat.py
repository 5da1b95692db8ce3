"""The seat: keyboard (keymap, text, modifiers, client-side repeat), pointer (events, cursor image)
and touch (points down, moving, up, grouped by frames).

Events reach the application as small frozen dataclasses through one callback. Keyboard codes are
evdev codes (what ``wl_keyboard.key`` carries); keysyms, text and modifiers come from xkbcommon with
the keymap the compositor sent. Pointer axis events are gathered until ``wl_pointer.frame`` so one
wheel notch is one :class:`PointerAxis` with its value, notches and value120 together.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from wayray.toolkit.shm import Buffer, PixelFormat
from wayray.toolkit.surface import Surface
from wayray.wayland.xkb import Keymap, KeymapError, KeyState, Modifier, ModifierState

if TYPE_CHECKING:
    from wayray.toolkit.display import Client

log = logging.getLogger(__name__)

#: Largest keymap we read (real ones are 50-100 KiB).
MAX_KEYMAP_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class Modifiers:
    shift: bool = False
    ctrl: bool = False
    alt: bool = False
    super: bool = False
    caps_lock: bool = False


@dataclass(frozen=True, slots=True)
class KeymapEvent:
    """The compositor's keymap (XKB text) for our keyboard; sent first and whenever it changes."""

    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyboardFocus:
    """Keyboard focus entered (``surface`` set) or left (``surface`` None) one of our surfaces."""

    surface: Any
    serial: int


@dataclass(frozen=True, slots=True)
class Key:
    """A key press, release or client-side repeat. ``text`` is what it types ("" for none)."""

    evdev_code: int
    pressed: bool
    keysym: int
    text: str
    modifiers: Modifiers
    repeat: bool = False
    serial: int = 0


@dataclass(frozen=True, slots=True)
class ModifiersChanged:
    modifiers: Modifiers


@dataclass(frozen=True, slots=True)
class PointerEnter:
    surface: Any
    x: float
    y: float
    serial: int


@dataclass(frozen=True, slots=True)
class PointerLeave:
    surface: Any
    serial: int


@dataclass(frozen=True, slots=True)
class PointerMotion:
    """Position in surface-local coordinates of the surface the pointer is over."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class PointerButton:
    button: int  # evdev BTN_* code
    pressed: bool
    serial: int


@dataclass(frozen=True, slots=True)
class PointerAxis:
    """Scrolling on one axis (0 vertical, 1 horizontal) within one pointer frame."""

    axis: int
    value: float  # surface pixels; positive: down / right
    discrete: int | None = None  # whole wheel notches (axis_discrete, or value120 / 120)
    value120: int | None = None  # high-resolution wheel: 120 per notch
    source: int | None = None  # wl_pointer.axis_source (0 wheel, 1 finger, 2 continuous, 3 tilt)
    stop: bool = False  # a finger left the touchpad: kinetic scrolling may start


@dataclass(frozen=True, slots=True)
class TouchDown:
    """Touch point ``id`` went down on ``surface`` at (x, y) in its surface-local coordinates."""

    surface: Any
    id: int
    x: float
    y: float
    serial: int


@dataclass(frozen=True, slots=True)
class TouchMotion:
    """Point ``id`` moved to (x, y), local to the surface it went down on."""

    id: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class TouchUp:
    id: int
    serial: int


@dataclass(frozen=True, slots=True)
class TouchFrame:
    """The touch events since the previous frame belong together."""


@dataclass(frozen=True, slots=True)
class TouchCancel:
    """The compositor took the touches away (a gesture of its own): every point is gone."""


SeatEvent = (
    KeymapEvent
    | KeyboardFocus
    | Key
    | ModifiersChanged
    | PointerEnter
    | PointerLeave
    | PointerMotion
    | PointerButton
    | PointerAxis
    | TouchDown
    | TouchMotion
    | TouchUp
    | TouchFrame
    | TouchCancel
)


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class Keyboard:
    """``wl_keyboard`` with xkbcommon state and (optionally) client-side key repeat."""

    def __init__(self, seat: Seat, repeat: bool) -> None:
        self.seat = seat
        self.conn = seat.conn
        self.proxy = self.conn.track(seat.proxy.get_keyboard())
        self.version: int = seat.version
        self.repeat_enabled = repeat
        self.keymap: Keymap | None = None
        self.keymap_text: str | None = None
        self.state: KeyState | None = None
        self.modifiers = Modifiers()
        self.rate = 25  # repeats per second (wl_keyboard.repeat_info; 0 disables)
        self.delay = 600  # ms before the first repeat
        self.focus: Any = None
        self.pressed: set[int] = set()
        self._repeat_key: Key | None = None
        self._repeat_timer: asyncio.TimerHandle | None = None
        self.conn.listen(
            self.proxy,
            keymap=self._keymap,
            enter=self._enter,
            leave=self._leave,
            key=self._key,
            modifiers=self._modifiers,
            repeat_info=self._repeat_info,
        )

    def _keymap(self, fmt: int, fd: int, size: int) -> None:
        try:
            if fmt != 1 or not 0 < size <= MAX_KEYMAP_BYTES:  # no_keymap, or nonsense
                self.keymap = self.state = None
                return
            # Read, not mmap: a size beyond the file (a wrong compositor, or a file that shrinks)
            # is a short read here, where a mapping fails or raises SIGBUS.
            text = _read_at_most(fd, size).rstrip(b"\0").decode("utf-8", "replace")
        finally:
            os.close(fd)
        try:
            keymap = Keymap.from_text(text)
        except KeymapError:
            log.warning("the compositor's keymap does not compile; keys will type nothing")
            self.keymap = self.state = None
            return
        self.keymap, self.state = keymap, KeyState(keymap)
        if text != self.keymap_text:
            self.keymap_text = text
            self.seat.emit(KeymapEvent(text))

    def _enter(self, serial: int, surface: Any, _keys: bytes) -> None:
        # Keys already held when focus arrives are not pressed here (no ghost key presses).
        self.focus = surface
        self.seat.last_serial = serial
        self.seat.emit(KeyboardFocus(surface, serial))

    def _leave(self, serial: int, _surface: Any) -> None:
        self._stop_repeat()
        self.focus = None
        self.pressed.clear()
        self.seat.emit(KeyboardFocus(None, serial))

    def _key(self, serial: int, _time: int, key: int, state: int) -> None:
        pressed = state == 1
        if pressed:
            self.pressed.add(key)
            self.seat.last_serial = serial
        else:
            self.pressed.discard(key)
        keysym = self.state.keysym(key) if self.state is not None else 0
        text = self.state.utf8(key) if self.state is not None and pressed else ""
        event = Key(key, pressed, keysym, text, self.modifiers, serial=serial)
        if pressed:
            self._start_repeat(event)
        elif self._repeat_key is not None and self._repeat_key.evdev_code == key:
            self._stop_repeat()
        self.seat.emit(event)

    def _modifiers(self, _serial: int, depressed: int, latched: int, locked: int, group: int) -> None:
        if self.state is None or self.keymap is None:
            return
        self.state.set_modifiers(ModifierState(depressed, latched, locked, group))
        mods = Modifiers(
            shift=self.state.is_active(Modifier.SHIFT),
            ctrl=self.state.is_active(Modifier.CTRL),
            alt=self.state.is_active(Modifier.ALT),
            super=self.state.is_active(Modifier.SUPER),
            caps_lock=self.state.is_active(Modifier.CAPS),
        )
        if mods != self.modifiers:
            self.modifiers = mods
            self.seat.emit(ModifiersChanged(mods))

    def _repeat_info(self, rate: int, delay: int) -> None:
        self.rate, self.delay = max(0, rate), max(0, delay)

    # Client-side repeat ---------------------------------------------------------------------------

    def _start_repeat(self, event: Key) -> None:
        if not self.repeat_enabled or self.rate <= 0 or self.keymap is None:
            return
        if not self.keymap.key_repeats(event.evdev_code):
            return  # a modifier pressed meanwhile does not stop the repeat (Shift turns "a" into "A")
        self._stop_repeat()
        self._repeat_key = event
        self._repeat_timer = self.conn.loop.call_later(self.delay / 1000, self._repeat)

    def _repeat(self) -> None:
        key = self._repeat_key
        if key is None or key.evdev_code not in self.pressed or self.conn.closed:
            self._stop_repeat()
            return
        self._repeat_timer = self.conn.loop.call_later(1 / self.rate, self._repeat)
        # The text of a repeat follows the current modifiers (Shift pressed while repeating).
        assert self.state is not None
        text = self.state.utf8(key.evdev_code)
        self.seat.emit(Key(key.evdev_code, True, key.keysym, text, self.modifiers, repeat=True))

    def _stop_repeat(self) -> None:
        if self._repeat_timer is not None:
            self._repeat_timer.cancel()
        self._repeat_timer = None
        self._repeat_key = None

    def destroy(self) -> None:
        self._stop_repeat()
        self.conn.destroy(self.proxy, "release" if self.version >= 3 else None)


class Pointer:
    """``wl_pointer``: events per frame, and the cursor shown over our surfaces."""

    def __init__(self, seat: Seat) -> None:
        self.seat = seat
        self.client = seat.client
        self.conn = seat.conn
        self.proxy = self.conn.track(seat.proxy.get_pointer())
        self.version: int = seat.version
        self.focus: Any = None
        self.enter_serial = 0
        self.x = self.y = 0.0
        self._axes: dict[int, dict[str, Any]] = {}
        self._source: int | None = None
        self._cursor_surface: Surface | None = None
        self._cursor_buffer: Buffer | None = None
        self._cursor_hotspot = (0, 0)
        self._cursor_mode = "default"  # "image", "hidden" or "default"
        self._shape_device: Any = None
        if self.client.cursor_shape_manager is not None:
            self._shape_device = self.conn.track(self.client.cursor_shape_manager.get_pointer(self.proxy))
        self.conn.listen(
            self.proxy,
            enter=self._enter,
            leave=self._leave,
            motion=self._motion,
            button=self._button,
            axis=self._axis,
            frame=self._frame,
            axis_source=self._axis_source,
            axis_stop=self._axis_stop,
            axis_discrete=self._axis_discrete,
            axis_value120=self._axis_value120,
            axis_relative_direction=lambda _axis, _dir: None,
        )

    def _enter(self, serial: int, surface: Any, x: float, y: float) -> None:
        self.focus, self.enter_serial, self.x, self.y = surface, serial, x, y
        self._apply_cursor()
        self.seat.emit(PointerEnter(surface, x, y, serial))

    def _leave(self, serial: int, surface: Any) -> None:
        self._flush_axes()
        self.focus = None
        self.seat.emit(PointerLeave(surface, serial))

    def _motion(self, _time: int, x: float, y: float) -> None:
        self.x, self.y = x, y
        self.seat.emit(PointerMotion(x, y))

    def _button(self, serial: int, _time: int, button: int, state: int) -> None:
        pressed = state == 1
        if pressed:
            self.seat.last_serial = serial
        self.seat.emit(PointerButton(button, pressed, serial))

    def _pending_axis(self, axis: int) -> dict[str, Any]:
        return self._axes.setdefault(axis, {"value": 0.0, "discrete": None, "value120": None, "stop": False})

    def _axis(self, _time: int, axis: int, value: float) -> None:
        self._pending_axis(axis)["value"] += value
        if self.version < 5:
            self._flush_axes()

    def _axis_source(self, source: int) -> None:
        self._source = source

    def _axis_stop(self, _time: int, axis: int) -> None:
        self._pending_axis(axis)["stop"] = True

    def _axis_discrete(self, axis: int, discrete: int) -> None:
        a = self._pending_axis(axis)
        a["discrete"] = (a["discrete"] or 0) + discrete

    def _axis_value120(self, axis: int, value120: int) -> None:
        a = self._pending_axis(axis)
        a["value120"] = (a["value120"] or 0) + value120

    def _frame(self) -> None:
        self._flush_axes()

    def _flush_axes(self) -> None:
        axes, self._axes = self._axes, {}
        source, self._source = self._source, None
        for axis, a in sorted(axes.items()):
            discrete = a["discrete"]
            if discrete is None and a["value120"] is not None and a["value120"] % 120 == 0:
                discrete = a["value120"] // 120
            self.seat.emit(PointerAxis(axis, a["value"], discrete, a["value120"], source, a["stop"]))

    # Cursor ---------------------------------------------------------------------------------------

    def set_cursor(
        self,
        pixels: npt.NDArray[np.uint32] | None,
        hotspot: tuple[int, int] = (0, 0),
        *,
        size: tuple[int, int] | None = None,
        buffer_scale: int = 1,
    ) -> None:
        """Show ``pixels`` (premultiplied ARGB8888, H x W) as the cursor over our surfaces; None hides it.

        ``hotspot`` is in surface pixels. ``size`` scales the image to that many surface pixels
        (wp_viewporter); otherwise it is ``W/buffer_scale`` x ``H/buffer_scale``.
        """
        if self._cursor_buffer is not None:
            self._cursor_buffer.destroy()  # allowed before release; its memory is not reused
            self._cursor_buffer = None
        if pixels is None:
            self._cursor_mode = "hidden"
            self._apply_cursor()
            return
        h, w = pixels.shape
        if self._cursor_surface is None:
            self._cursor_surface = Surface(self.client)
        buf = Buffer(self.conn, self.client.shm, w, h, PixelFormat.ARGB8888)
        buf.pixels[:] = pixels
        surface = self._cursor_surface
        if size is not None and surface.set_destination(*size):
            surface.set_buffer_scale(1)
        else:
            surface.set_buffer_scale(buffer_scale)
        surface.attach(buf, [(0, 0, w, h)])
        surface.commit()
        self._cursor_buffer = buf
        self._cursor_hotspot = hotspot
        self._cursor_mode = "image"
        self._apply_cursor()

    def set_default_cursor(self) -> None:
        """The compositor's default arrow (cursor-shape-v1), or a built-in arrow where that is missing."""
        if self._shape_device is None:
            self.set_cursor(arrow_cursor(), (1, 1))
            return
        self._cursor_mode = "default"
        self._apply_cursor()

    def _apply_cursor(self) -> None:
        if self.focus is None:
            return
        if self._cursor_mode == "image" and self._cursor_surface is not None:
            hx, hy = self._cursor_hotspot
            self.proxy.set_cursor(self.enter_serial, self._cursor_surface.proxy, hx, hy)
        elif self._cursor_mode == "default" and self._shape_device is not None:
            self._shape_device.set_shape(self.enter_serial, 1)  # "default"
        elif self._cursor_mode == "default":
            self.set_default_cursor()
            return
        else:
            self.proxy.set_cursor(self.enter_serial, None, 0, 0)
        self.conn.flush()

    def destroy(self) -> None:
        if self._shape_device is not None:
            self.conn.destroy(self._shape_device)
        self.conn.destroy(self.proxy, "release" if self.version >= 3 else None)
        if self._cursor_surface is not None:
            self._cursor_surface.destroy()
        if self._cursor_buffer is not None:
            self._cursor_buffer.destroy()


class Touch:
    """``wl_touch``: points down, moving and up, grouped by frames."""

    def __init__(self, seat: Seat) -> None:
        self.seat = seat
        self.conn = seat.conn
        self.proxy = self.conn.track(seat.proxy.get_touch())
        self.version: int = seat.version
        self.conn.listen(
            self.proxy,
            down=self._down,
            up=self._up,
            motion=self._motion,
            frame=lambda: self.seat.emit(TouchFrame()),
            cancel=lambda: self.seat.emit(TouchCancel()),
            shape=lambda _id, _major, _minor: None,
            orientation=lambda _id, _orientation: None,
        )

    def _down(self, serial: int, _time: int, surface: Any, touch_id: int, x: float, y: float) -> None:
        self.seat.last_serial = serial
        self.seat.emit(TouchDown(surface, touch_id, x, y, serial))

    def _up(self, serial: int, _time: int, touch_id: int) -> None:
        self.seat.emit(TouchUp(touch_id, serial))

    def _motion(self, _time: int, touch_id: int, x: float, y: float) -> None:
        self.seat.emit(TouchMotion(touch_id, x, y))

    def destroy(self) -> None:
        self.conn.destroy(self.proxy, "release" if self.version >= 3 else None)


class Seat:
    """A ``wl_seat`` and its keyboard and pointer, created as the seat announces them."""

    def __init__(
        self, client: Client, proxy: Any, on_event: Callable[[SeatEvent], None], repeat: bool
    ) -> None:
        self.client = client
        self.conn = client.conn
        self.proxy = proxy
        self.version: int = proxy.user_data
        self.on_event = on_event
        self.repeat = repeat
        self.keyboard: Keyboard | None = None
        self.pointer: Pointer | None = None
        self.touch: Touch | None = None
        self.name = ""
        #: Serial of the latest input event (for set_selection and friends).
        self.last_serial = 0
        self.conn.listen(proxy, capabilities=self._capabilities, name=self._name)

    def emit(self, event: SeatEvent) -> None:
        self.on_event(event)

    def _name(self, name: str) -> None:
        self.name = name

    def _capabilities(self, caps: int) -> None:
        if caps & 1 and self.pointer is None:
            self.pointer = Pointer(self)
        elif not caps & 1 and self.pointer is not None:
            self.pointer.destroy()
            self.pointer = None
        if caps & 2 and self.keyboard is None:
            self.keyboard = Keyboard(self, self.repeat)
        elif not caps & 2 and self.keyboard is not None:
            self.keyboard.destroy()
            self.keyboard = None
        if caps & 4 and self.touch is None:
            self.touch = Touch(self)
        elif not caps & 4 and self.touch is not None:
            self.touch.destroy()
            self.touch = None

    def destroy(self) -> None:
        if self.keyboard is not None:
            self.keyboard.destroy()
            self.keyboard = None
        if self.pointer is not None:
            self.pointer.destroy()
            self.pointer = None
        if self.touch is not None:
            self.touch.destroy()
            self.touch = None
        self.conn.destroy(self.proxy, "release" if self.version >= 5 else None)


def arrow_cursor(size: int = 16) -> npt.NDArray[np.uint32]:
    """A plain black arrow with a white outline (premultiplied ARGB), hotspot (1, 1)."""
    img = np.zeros((size + 4, size), dtype=np.uint32)
    for y in range(size + 2):
        width = min(y, size * 2 // 3) if y < size else 0
        for x in range(1, width + 2):
            edge = x in (1, width + 1) or y in (1, size - 1)
            img[y, x] = 0xFFFFFFFF if edge else 0xFF000000
    return img
