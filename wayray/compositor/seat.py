"""wl_seat with wl_pointer and wl_keyboard: input from the viewer, routed the way a desktop does.

Input arrives through the in-process API as evdev codes and absolute output coordinates. The
pointer goes to the surface under it (input regions respected), stays with the surface a button
was pressed on until all buttons are up (implicit grab), and is confined to the grabbing client's
surfaces while an xdg_popup grab is active; a click elsewhere dismisses the popups. Keys go to the
keyboard focus the window manager decides, after the WM's own bindings (Alt+Tab, Alt+F4).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pywayland.protocol.wayland import WlKeyboard, WlPointer, WlSeat, WlTouch

from wayray.compositor.geometry import Rect
from wayray.compositor.surface import Role, Surface
from wayray.compositor.titlebar import TitleBar
from wayray.wayland.server import Client, NewId, ProtocolError, Resource
from wayray.wayland.xkb import MAX_EVDEV_CODE, Keymap, KeyState, Keysym, Modifier

if TYPE_CHECKING:
    from wayray.compositor.core import Core
    from wayray.compositor.cursor import CursorImage
    from wayray.compositor.wm import Window
    from wayray.compositor.xdg_shell import PopupRole

log = logging.getLogger(__name__)

SEAT_NAME = "seat0"
REPEAT_RATE = 25  # keys per second
REPEAT_DELAY = 600  # ms
BTN_LEFT = 0x110


class Axis(enum.IntEnum):
    VERTICAL = 0
    HORIZONTAL = 1


class _Grab(enum.Enum):
    NONE = "none"
    MOVE = "move"
    RESIZE = "resize"


def now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


@dataclass(frozen=True)
class CursorState:
    """The pointer as the viewer should draw it: separate from the framebuffer.

    ``image`` is premultiplied ARGB8888 (uint32, height x width) or None when hidden or unset;
    ``hotspot`` is in image pixels; ``serial`` changes exactly when image or hotspot change;
    ``x``/``y`` are output pixel coordinates; ``scale`` is the image's buffer scale.
    """

    image: np.ndarray | None
    hotspot: tuple[int, int]
    serial: int
    x: int
    y: int
    visible: bool
    scale: int = 1


class CursorRole(Role):
    """The ``cursor`` role of a surface a client passed to wl_pointer.set_cursor."""

    name = "cursor"

    def __init__(self, seat: Seat, surface: Surface) -> None:
        self.seat = seat
        self.surface: Surface | None = surface
        self.hotspot = (0, 0)

    def committed(self) -> None:
        s = self.surface
        if s is None:
            return
        dx, dy = s.take_offset()
        self.hotspot = (self.hotspot[0] - dx, self.hotspot[1] - dy)
        if self.seat.cursor_surface is s:
            self.seat.cursor_from_surface()
        # Cursor surfaces are never composited, but clients wait on their frame callbacks too.
        self.seat.core.schedule_frame()

    def surface_destroyed(self) -> None:
        if self.seat.cursor_surface is self.surface:
            self.seat.cursor_surface = None
            self.seat.set_cursor_image(None, (0, 0), 1)
        self.surface = None


class SeatResource(Resource):
    interface = WlSeat

    def __init__(self, new_id: NewId, seat: Seat) -> None:
        super().__init__(new_id)
        self.seat = seat
        self.post("capabilities", WlSeat.capability.pointer | WlSeat.capability.keyboard)
        self.post("name", SEAT_NAME)

    def get_pointer(self, id: NewId) -> None:
        self.seat.pointers.append(PointerResource(id, self.seat))

    def get_keyboard(self, id: NewId) -> None:
        kb = KeyboardResource(id, self.seat)
        self.seat.keyboards.append(kb)
        kb.send_keymap()
        kb.post("repeat_info", REPEAT_RATE, REPEAT_DELAY)
        focus = self.seat.keyboard_focus
        if focus is not None and focus.client is kb.client:
            kb.post("enter", self.display.next_serial(), focus, self.seat.pressed_keys_array())
            kb.send_modifiers(self.display.serial)

    def get_touch(self, id: NewId) -> None:
        TouchResource(id)  # no touch capability is advertised; an inert object keeps old clients happy

    def release(self) -> None:
        pass


class TouchResource(Resource):
    interface = WlTouch

    def release(self) -> None:
        pass


class PointerResource(Resource):
    interface = WlPointer

    def __init__(self, new_id: NewId, seat: Seat) -> None:
        super().__init__(new_id)
        self.seat = seat
        self.shape_device: object | None = None

    def set_cursor(self, serial: int, surface: Surface | None, hotspot_x: int, hotspot_y: int) -> None:
        self.seat.set_cursor_request(self, serial, surface, hotspot_x, hotspot_y)

    def release(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self in self.seat.pointers:
            self.seat.pointers.remove(self)


class KeyboardResource(Resource):
    interface = WlKeyboard

    def __init__(self, new_id: NewId, seat: Seat) -> None:
        super().__init__(new_id)
        self.seat = seat

    def send_keymap(self) -> None:
        fd, size = self.seat.keymap.memfd()
        try:
            self.post("keymap", WlKeyboard.keymap_format.xkb_v1, fd, size)
        finally:
            os.close(fd)

    def send_modifiers(self, serial: int) -> None:
        m = self.seat.key_state.modifiers()
        self.post("modifiers", serial, m.depressed, m.latched, m.locked, m.group)

    def release(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self in self.seat.keyboards:
            self.seat.keyboards.remove(self)


class Seat:
    """The seat's state: focus, pressed keys and buttons, grabs, cursor."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.pointers: list[PointerResource] = []
        self.keyboards: list[KeyboardResource] = []
        self.keymap = Keymap.from_names()
        self.key_state = KeyState(self.keymap)
        self.pressed_keys: list[int] = []  # evdev codes delivered as pressed to the focus
        self.swallowed_keys: set[int] = set()  # pressed keys the WM consumed
        self.keyboard_focus: Surface | None = None
        self.pointer_x = 0.0  # layout coordinates
        self.pointer_y = 0.0
        self.pointer_focus: Surface | None = None
        self.pointer_focus_origin = (0, 0)
        self.enter_serials: dict[Client, int] = {}
        self.buttons: set[int] = set()
        self.press_serials: dict[Client, int] = {}  # last button press serial per client
        self.key_serials: dict[Client, int] = {}
        self.grab = _Grab.NONE
        self.grab_window: Window | None = None
        self.grab_start = (0.0, 0.0)
        self.grab_window_start = Rect(0, 0, 0, 0)
        self.grab_edges = 0
        self.popup_grabs: list[PopupRole] = []
        self.cursor_surface: Surface | None = None
        self.cursor_image: np.ndarray | None = None
        self.cursor_hotspot = (0, 0)
        self.cursor_scale = 1
        self.cursor_serial = 0
        self.cursor_visible = True
        self._default_cursor: CursorImage | None = None
        self.use_default_cursor()
        core.display.client_listeners.append(lambda client: client.on_destroy(self._client_gone))

    def _client_gone(self, client: Client) -> None:
        for serials in (self.enter_serials, self.press_serials, self.key_serials):
            serials.pop(client, None)

    # Keymap ---------------------------------------------------------------------------------------

    def set_keymap(self, text: str | None) -> None:
        """Compile ``text`` (None: default US layout), release held keys, and send it to every keyboard."""
        keymap = Keymap.from_names() if text is None else Keymap.from_text(text)
        self.release_all()
        self.keymap = keymap
        self.key_state = KeyState(keymap)
        for kb in list(self.keyboards):
            kb.send_keymap()
            kb.send_modifiers(self.core.display.next_serial())

    # Keyboard -------------------------------------------------------------------------------------

    def pressed_keys_array(self) -> bytes:
        return np.array(self.pressed_keys, dtype="<u4").tobytes()

    def key(self, code: int, pressed: bool) -> None:
        if not 0 <= code <= MAX_EVDEV_CODE:
            log.debug("ignoring key code %d: no keymap can have it", code)
            return
        if pressed == (code in self.pressed_keys or code in self.swallowed_keys):
            return  # a repeat of a held key, or a release of a key we never saw pressed
        before = self.key_state.modifiers()
        self.key_state.update(code, pressed)
        if pressed and self._binding(code):
            self.swallowed_keys.add(code)
        elif not pressed and code in self.swallowed_keys:
            self.swallowed_keys.discard(code)
        else:
            if pressed:
                self.pressed_keys.append(code)
            else:
                self.pressed_keys.remove(code)
            self._send_key(code, pressed)
        after = self.key_state.modifiers()
        if after != before:
            self._send_modifiers()
        if not self.key_state.is_active(Modifier.ALT):
            self.core.wm.end_cycle()

    def _binding(self, code: int) -> bool:
        """The built-in WM's bindings; True when the key was consumed."""
        if not self.key_state.is_active(Modifier.ALT):
            return False
        sym = self.key_state.keysym(code)
        if sym in (Keysym.Tab, Keysym.ISO_Left_Tab):
            self.core.wm.cycle(
                backwards=sym == Keysym.ISO_Left_Tab or self.key_state.is_active(Modifier.SHIFT)
            )
            return True
        if sym == Keysym.F4:
            self.core.wm.close_focused()
            return True
        return False

    def _focused_keyboards(self) -> list[KeyboardResource]:
        focus = self.keyboard_focus
        if focus is None:
            return []
        return [kb for kb in self.keyboards if kb.client is focus.client]

    def _send_key(self, code: int, pressed: bool) -> None:
        kbs = self._focused_keyboards()
        if not kbs:
            return
        serial = self.core.display.next_serial()
        assert self.keyboard_focus is not None
        self.key_serials[self.keyboard_focus.client] = serial
        state = WlKeyboard.key_state.pressed if pressed else WlKeyboard.key_state.released
        t = now_ms()
        for kb in kbs:
            kb.post("key", serial, t, code, state)

    def _send_modifiers(self) -> None:
        kbs = self._focused_keyboards()
        if kbs:
            serial = self.core.display.next_serial()
            for kb in kbs:
                kb.send_modifiers(serial)

    def release_all(self) -> None:
        """The viewer went away: release every held key and button, as if the user let go."""
        for code in list(self.pressed_keys) + list(self.swallowed_keys):
            self.key(code, False)
        for button in list(self.buttons):
            self.pointer_button(button, False)
        self.core.wm.end_cycle()

    def keyboard_target(self) -> Surface | None:
        """Who should have keyboard focus now: popup grab, exclusive layer, or the active window."""
        for popup in reversed(self.popup_grabs):
            if popup.surface is not None and popup.xdg_surface.mapped:
                return popup.surface
        layer = self.core.layers.keyboard_target()
        if layer is not None:
            return layer
        w = self.core.wm.focused
        return w.surface if w is not None else None

    def update_keyboard_focus(self) -> None:
        self.set_keyboard_focus(self.keyboard_target())

    def set_keyboard_focus(self, surface: Surface | None) -> None:
        if surface is self.keyboard_focus:
            return
        old = self.keyboard_focus
        if old is not None and old.alive:
            serial = self.core.display.next_serial()
            for kb in self._focused_keyboards():
                kb.post("leave", serial, old)
        self.keyboard_focus = surface if surface is not None and surface.alive else None
        if self.keyboard_focus is not None:
            kbs = self._focused_keyboards()
            if kbs:
                serial = self.core.display.next_serial()
                keys = self.pressed_keys_array()
                for kb in kbs:
                    kb.post("enter", serial, self.keyboard_focus, keys)
                    kb.send_modifiers(serial)
        client = self.keyboard_focus.client if self.keyboard_focus is not None else None
        if old is None or client is not old.client:
            self.core.selection_focus_changed(client)

    def focused_client(self) -> Client | None:
        return self.keyboard_focus.client if self.keyboard_focus is not None else None

    # Pointer --------------------------------------------------------------------------------------

    @property
    def pointer_position(self) -> tuple[float, float]:
        return (self.pointer_x, self.pointer_y)

    def _client_pointers(self, client: Client) -> list[PointerResource]:
        return [p for p in self.pointers if p.client is client]

    def pointer_motion(self, x: float, y: float) -> None:
        """Absolute motion in layout (logical) coordinates (kept on the output)."""
        if math.isnan(x) or math.isnan(y):
            return
        out = self.core.output.logical
        x = min(max(x, 0.0), max(0.0, out.width - 1 / 256))
        y = min(max(y, 0.0), max(0.0, out.height - 1 / 256))
        self.pointer_x, self.pointer_y = x, y
        if self.grab == _Grab.MOVE and self.grab_window is not None:
            w = self.grab_window
            w.x = self.grab_window_start.x + int(x - self.grab_start[0])
            w.y = self.grab_window_start.y + int(y - self.grab_start[1])
            self.core.scene_changed()
        elif self.grab == _Grab.RESIZE and self.grab_window is not None:
            self.core.wm.resize_to(
                self.grab_window,
                self.grab_window_start,
                self.grab_edges,
                x - self.grab_start[0],
                y - self.grab_start[1],
            )
        else:
            self._update_pointer_focus(send_motion=True)
        self.core.cursor_moved()

    def _update_pointer_focus(self, send_motion: bool) -> None:
        x, y = self.pointer_x, self.pointer_y
        if self.buttons and self.pointer_focus is not None and self.pointer_focus.alive:
            target: tuple[Surface, int, int] | None = (self.pointer_focus, *self.pointer_focus_origin)
        else:
            target = self.core.scene.surface_at(x, y)
            if target is not None and self.popup_grabs:
                grab_client = self.popup_grabs[-1].client
                if target[0].client is not grab_client:
                    target = None
        if target is None or isinstance(target[0], TitleBar):
            self._set_pointer_focus(None, 0, 0)
            return
        surface, ox, oy = target
        changed = self._set_pointer_focus(surface, ox, oy)
        if send_motion and not changed:
            t = now_ms()
            for p in self._client_pointers(surface.client):
                p.post("motion", t, x - ox, y - oy)
                p.post("frame")

    def _set_pointer_focus(self, surface: Surface | None, ox: int, oy: int) -> bool:
        """Move pointer focus (enter/leave); True when it changed."""
        self.pointer_focus_origin = (ox, oy)
        if surface is self.pointer_focus:
            return False
        old = self.pointer_focus
        if old is not None and old.alive:
            serial = self.core.display.next_serial()
            for p in self._client_pointers(old.client):
                p.post("leave", serial, old)
                p.post("frame")
        self.pointer_focus = surface
        if surface is None:
            self.use_default_cursor()
            return True
        if old is None or old.client is not surface.client:
            self.cursor_surface = None
        serial = self.core.display.next_serial()
        self.enter_serials[surface.client] = serial
        for p in self._client_pointers(surface.client):
            p.post("enter", serial, surface, self.pointer_x - ox, self.pointer_y - oy)
            p.post("frame")
        return True

    def refresh_pointer_focus(self) -> None:
        """The scene changed under a still pointer: re-pick the surface (no motion event)."""
        if self.grab == _Grab.NONE:
            self._update_pointer_focus(send_motion=False)

    def pointer_button(self, button: int, pressed: bool) -> None:
        if pressed == (button in self.buttons):
            return
        if pressed:
            self.buttons.add(button)
        else:
            self.buttons.discard(button)
        if self.grab in (_Grab.MOVE, _Grab.RESIZE):
            if not self.buttons:
                self._end_grab()
            return
        if pressed and len(self.buttons) == 1:
            target = self.core.scene.surface_at(self.pointer_x, self.pointer_y)
            if target is not None and isinstance(target[0], TitleBar) and not self.popup_grabs:
                bar, ox, oy = target
                self.core.wm.titlebar_pressed(bar.window, self.pointer_x - ox, self.pointer_y - oy)
                return
            if self.popup_grabs:
                grab_client = self.popup_grabs[-1].client
                if target is None or target[0].client is not grab_client:
                    self.dismiss_popups()
                    self.buttons.discard(button)
                    self._update_pointer_focus(send_motion=False)
                    return
            self.core.layers.clicked(target[0] if target else None)
            self.core.wm.clicked(target[0] if target else None)
            self._update_pointer_focus(send_motion=False)
        focus = self.pointer_focus
        if focus is None:
            return
        serial = self.core.display.next_serial()
        if pressed:
            self.press_serials[focus.client] = serial
        state = WlPointer.button_state.pressed if pressed else WlPointer.button_state.released
        t = now_ms()
        for p in self._client_pointers(focus.client):
            p.post("button", serial, t, button, state)
            p.post("frame")
        if not self.buttons:
            self._update_pointer_focus(send_motion=False)

    def pointer_axis(self, axis: Axis, value: float, discrete: int | None) -> None:
        focus = self.pointer_focus
        if focus is None:
            return
        t = now_ms()
        if discrete is not None:  # notches that fit the int32 of axis_value120
            notches = (2**31 - 1) // 120
            discrete = max(-notches, min(notches, discrete))
        for p in self._client_pointers(focus.client):
            if discrete is not None:
                p.post("axis_source", WlPointer.axis_source.wheel)
                if p.supports("axis_value120"):
                    p.post("axis_value120", axis, discrete * 120)
                else:
                    p.post("axis_discrete", axis, discrete)
            else:
                p.post("axis_source", WlPointer.axis_source.continuous)
            p.post("axis_relative_direction", axis, WlPointer.axis_relative_direction.identical)
            p.post("axis", t, axis, value)
            p.post("frame")

    def button_serial_valid(self, window: Window, serial: int) -> bool:
        """A move/resize request must come from a button still held on that client's surface."""
        s = window.surface
        return s is not None and bool(self.buttons) and self.press_serials.get(s.client) == serial

    # Move / resize grabs --------------------------------------------------------------------------

    def start_move(self, window: Window) -> None:
        self._start_grab(_Grab.MOVE, window, 0)

    def start_resize(self, window: Window, edges: int) -> None:
        self._start_grab(_Grab.RESIZE, window, edges)

    def _start_grab(self, kind: _Grab, window: Window, edges: int) -> None:
        self.grab = kind
        self.grab_window = window
        self.grab_edges = edges
        self.grab_start = (self.pointer_x, self.pointer_y)
        self.grab_window_start = window.rect
        self._set_pointer_focus(None, 0, 0)

    def _end_grab(self) -> None:
        kind, window = self.grab, self.grab_window
        self.grab = _Grab.NONE
        self.grab_window = None
        if kind == _Grab.RESIZE and window is not None:
            self.core.wm.end_resize(window)
        self._update_pointer_focus(send_motion=False)

    def grab_window_gone(self, window: Window) -> None:
        if self.grab_window is window:
            self.grab = _Grab.NONE
            self.grab_window = None

    # Popup grabs ----------------------------------------------------------------------------------

    def popup_grab(self, popup: PopupRole, serial: int) -> None:
        client = popup.client
        valid = serial in (self.press_serials.get(client), self.key_serials.get(client)) or (
            self.keyboard_focus is not None and self.keyboard_focus.client is client
        )
        if not valid:
            log.debug("denying popup grab for %r (serial %d)", client, serial)
            popup.dismiss()
            return
        if self.popup_grabs and self.popup_grabs[-1].client is not client:
            self.dismiss_popups()
        self.popup_grabs.append(popup)
        self.update_keyboard_focus()

    def popup_unmapped(self, popup: PopupRole) -> None:
        if popup in self.popup_grabs:
            self.popup_grabs.remove(popup)
            self.update_keyboard_focus()
        if self.pointer_focus is not None and self.pointer_focus is popup.surface:
            self.refresh_pointer_focus()

    def dismiss_popups(self) -> None:
        grabs, self.popup_grabs = self.popup_grabs, []
        for popup in reversed(grabs):
            popup.dismiss()
        self.update_keyboard_focus()

    # Cursor ---------------------------------------------------------------------------------------

    def set_cursor_request(
        self, pointer: PointerResource, serial: int, surface: Surface | None, hx: int, hy: int
    ) -> None:
        focus = self.pointer_focus
        if (
            focus is None
            or focus.client is not pointer.client
            or self.enter_serials.get(pointer.client) != serial
        ):
            return  # only the client under the pointer may set the cursor, with its latest enter serial
        if surface is None:
            self.cursor_surface = None
            self.set_cursor_image(None, (0, 0), 1, visible=False)
            return
        if surface.role is not None and not isinstance(surface.role, CursorRole):
            raise ProtocolError(
                pointer, WlPointer.error.role, f"wl_surface@{surface.id} already has another role"
            )
        if surface.role_name not in (None, "cursor"):
            raise ProtocolError(
                pointer, WlPointer.error.role, f"wl_surface@{surface.id} already has another role"
            )
        role = surface.role
        if role is None:
            role = CursorRole(self, surface)
            surface.set_role("cursor", role, pointer, WlPointer.error.role)
        assert isinstance(role, CursorRole)
        role.hotspot = (hx, hy)
        self.cursor_surface = surface
        self.cursor_from_surface()

    def cursor_from_surface(self) -> None:
        s = self.cursor_surface
        if s is None:
            return
        role = s.role
        hx, hy = role.hotspot if isinstance(role, CursorRole) else (0, 0)
        tex = s.texture
        if tex is None or not s.has_content or tex.array.dtype != np.uint32:
            self.set_cursor_image(None, (0, 0), 1, visible=False)
            return
        image = tex.array.copy()
        if tex.opaque:
            image |= np.uint32(0xFF000000)
        self.set_cursor_image(image, (hx * s.scale, hy * s.scale), s.scale)

    def use_default_cursor(self, name: str = "default") -> None:
        from wayray.compositor.cursor import load_cursor

        img = load_cursor(name)
        self.cursor_surface = None
        if img is None:
            self.set_cursor_image(None, (0, 0), 1, visible=True)
        else:
            self.set_cursor_image(img.pixels, img.hotspot, 1)

    def set_cursor_image(
        self, image: np.ndarray | None, hotspot: tuple[int, int], scale: int, *, visible: bool = True
    ) -> None:
        same = (
            visible == self.cursor_visible
            and hotspot == self.cursor_hotspot
            and scale == self.cursor_scale
            and (
                (image is None and self.cursor_image is None)
                or (
                    image is not None
                    and self.cursor_image is not None
                    and image.shape == self.cursor_image.shape
                    and bool(np.array_equal(image, self.cursor_image))
                )
            )
        )
        if same:
            return
        self.cursor_image = image
        self.cursor_hotspot = hotspot
        self.cursor_scale = scale
        self.cursor_visible = visible
        self.cursor_serial += 1
        self.core.cursor_changed()

    def cursor_state(self) -> CursorState:
        scale = self.core.output.scale
        return CursorState(
            image=self.cursor_image,
            hotspot=self.cursor_hotspot,
            serial=self.cursor_serial,
            x=int(self.pointer_x * scale),
            y=int(self.pointer_y * scale),
            visible=self.cursor_visible and self.cursor_image is not None,
            scale=self.cursor_scale,
        )

    # Cleanup --------------------------------------------------------------------------------------

    def surface_gone(self, surface: Surface) -> None:
        if self.keyboard_focus is surface:
            self.keyboard_focus = None
            self.update_keyboard_focus()
        if self.pointer_focus is surface:
            self.pointer_focus = None
            self.refresh_pointer_focus()
        if self.cursor_surface is surface:
            self.cursor_surface = None
