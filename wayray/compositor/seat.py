"""wl_seat with wl_pointer, wl_keyboard and wl_touch: input from the viewer, routed the way a desktop does.

Input arrives through the in-process API as evdev codes and absolute output coordinates. The
pointer goes to the surface under it (input regions respected), stays with the surface a button
was pressed on until all buttons are up (implicit grab), and is confined to the grabbing client's
surfaces while an xdg_popup grab is active; a click elsewhere dismisses the popups. Keys go to the
keyboard focus the window manager decides, after the WM's own bindings (Alt+Tab, Alt+F4). Each touch
point goes to the surface under it where it went down, until it is lifted, as a desktop's touch screen
does; the first point down focuses and raises its window like a click.

What the seat needs of the compositor -- hit testing, the window manager's focus and bindings, the
frame clock -- is ``SeatHost``. Interactive move and resize are the window manager's ``PointerGrab``s:
the seat runs one while the button that started it is held.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pywayland.protocol.wayland import WlKeyboard, WlPointer, WlSeat

from wayray.compositor.cursor import Cursor, CursorHost, CursorState
from wayray.compositor.shortcuts import ShortcutsInhibit
from wayray.compositor.surface import Surface
from wayray.compositor.text_input import TextInputs
from wayray.compositor.titlebar import TitleBar
from wayray.compositor.touch import Touch, TouchResource
from wayray.wayland.server import Client, Display, NewId, Resource
from wayray.wayland.xkb import MAX_EVDEV_CODE, Keymap, KeyState, Keysym, Modifier

if TYPE_CHECKING:
    from wayray.compositor.output import Output

log = logging.getLogger(__name__)

SEAT_NAME = "seat0"
REPEAT_RATE = 25  # keys per second
REPEAT_DELAY = 600  # ms
BTN_LEFT = 0x110


class Axis(enum.IntEnum):
    VERTICAL = 0
    HORIZONTAL = 1


class GrabKind(enum.Enum):
    NONE = "none"
    MOVE = "move"
    RESIZE = "resize"


class PointerGrab(Protocol):
    """An interactive move or resize of ``window``, run by the window manager.

    While it runs the pointer focuses nothing and every motion goes to ``motion`` (the distance from
    where it started, layout pixels); ``released`` ends it when the last button is up.
    """

    @property
    def kind(self) -> GrabKind: ...

    @property
    def window(self) -> object: ...

    def motion(self, dx: float, dy: float) -> None: ...

    def released(self) -> None: ...


class GrabbingPopup(Protocol):
    """A popup that asked for an explicit grab (xdg_popup.grab): what the seat needs of it."""

    @property
    def client(self) -> Client: ...

    @property
    def surface(self) -> Surface | None: ...

    @property
    def is_mapped(self) -> bool: ...

    def dismiss(self) -> None:
        """Send popup_done (to its child popups first)."""


class SeatHost(CursorHost, Protocol):
    """What the seat needs of the compositor (``Core``): the scene, the window manager, the clock."""

    def surface_at(self, x: float, y: float) -> tuple[Surface, int, int] | None:
        """The topmost surface (or title bar) taking input at layout point (x, y), with its origin."""

    def keyboard_focus_target(self) -> Surface | None:
        """Who the shell wants focused when no popup grab holds the keyboard (a layer, a window)."""

    def clicked(self, surface: Surface | None) -> None:
        """A first button went down on ``surface`` (None: on nothing): click to focus and raise."""

    def titlebar_pressed(self, bar: TitleBar, sx: float, sy: float) -> None:
        """A first button went down on a server-side title bar, at (sx, sy) on it."""

    def x_pointer_grab(self, surface: Surface | TitleBar | None) -> tuple[Surface, int, int] | None:
        """A first button went down on ``surface``: when an X program holds X's pointer grab (an
        open X menu) and ``surface`` is not X's, the X surface (with its origin) to give the click
        to, as an X server gives every click to the grab; else None."""

    def cycle_windows(self, backwards: bool) -> None:
        """Alt+Tab: focus the next window."""

    def end_window_cycle(self) -> None:
        """Alt is up: the next Alt+Tab starts a new cycle."""

    def close_focused_window(self) -> None:
        """Alt+F4."""

    def scene_changed(self) -> None:
        """Something drawn moved (an input method's candidate window): composite soon."""

    def window_manager_binding(self, keysym: int, modifiers: int) -> bool:
        """A key went down: True when the window manager takes it (a chord it bound, Super+arrow).
        ``modifiers``: 1 Shift, 4 Ctrl, 8 Alt, 64 Super (wayray_wm_manager_v1.modifier)."""

    def selection_focus_changed(self, client: Client | None) -> None:
        """Keyboard focus moved to another client (it hears the selections)."""

    def round_trip(self, surface: Surface, then: Callable[[], None]) -> bool:
        """Call ``then`` once the program of ``surface`` has read everything sent to it before now (its
        answer to a ping on the xdg_wm_base the surface's window came from); False when it cannot be
        asked that way (no xdg surface: a layer surface, an X window)."""


def now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


class SeatResource(Resource):
    interface = WlSeat

    def __init__(self, new_id: NewId, seat: Seat) -> None:
        super().__init__(new_id)
        self.seat = seat
        self.post(
            "capabilities",
            WlSeat.capability.pointer | WlSeat.capability.keyboard | WlSeat.capability.touch,
        )
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
        self.seat.touch.resources.append(TouchResource(id, self.seat.touch))

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
    """The seat's state: focus, pressed keys and buttons, grabs, the cursor."""

    def __init__(self, host: SeatHost, display: Display, output: Output) -> None:
        self.host = host
        self.display = display
        self.output = output
        self.pointers: list[PointerResource] = []
        self.keyboards: list[KeyboardResource] = []
        self.keymap = Keymap.default()
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
        self.pointer_grab: PointerGrab | None = None
        self.grab_start = (0.0, 0.0)
        self.popup_grabs: list[GrabbingPopup] = []
        self.touch = Touch(self)
        #: Surfaces that take the window manager's key bindings while focused (a remote desktop's viewer).
        self.shortcuts = ShortcutsInhibit()
        #: Text fields (text-input-v3) and the input method composing into them (input-method-v2).
        self.text_inputs = TextInputs(self)
        #: Keys and modifiers for the focused program, waiting behind text an input method committed
        #: (``hold_keys``); None while they go out at once.
        self._held: list[Callable[[], None]] | None = None
        self.cursor = Cursor(host)
        display.client_listeners.append(lambda client: client.on_destroy(self._client_gone))

    def _client_gone(self, client: Client) -> None:
        self.touch.client_gone(client)
        for serials in (self.enter_serials, self.press_serials, self.key_serials):
            serials.pop(client, None)

    # Keymap ---------------------------------------------------------------------------------------

    def set_keymap(self, text: str | None) -> None:
        """Compile ``text`` (None: default US layout), release held keys, and send it to every keyboard."""
        keymap = Keymap.default() if text is None else Keymap.compiled(text)
        self.release_all()
        self.release_keys()  # in the keymap they were typed in
        self.keymap = keymap
        self.key_state = KeyState(keymap)
        for kb in list(self.keyboards):
            kb.send_keymap()
            kb.send_modifiers(self.display.next_serial())
        self.text_inputs.keymap_changed()

    # Keyboard -------------------------------------------------------------------------------------

    def pressed_keys_array(self) -> bytes:
        return np.array(self.pressed_keys, dtype="<u4").tobytes()

    def key(self, code: int, pressed: bool) -> None:
        if not 0 <= code <= MAX_EVDEV_CODE:
            log.debug("ignoring key code %d: no keymap can have it", code)
            return
        if pressed == (
            code in self.pressed_keys or code in self.swallowed_keys or self.text_inputs.took(code)
        ):
            return  # a repeat of a held key, or a release of a key we never saw pressed
        before = self.key_state.modifiers()
        self.key_state.update(code, pressed)
        if pressed and not self.shortcuts.inhibited(self.keyboard_focus) and self._binding(code):
            self.swallowed_keys.add(code)
        elif not pressed and code in self.swallowed_keys:
            self.swallowed_keys.discard(code)
        elif self.text_inputs.key(code, pressed):
            pass  # the input method took it (what it does not use comes back through a virtual keyboard)
        else:
            if pressed:
                self.pressed_keys.append(code)
            else:
                self.pressed_keys.remove(code)
            self._send_key(code, pressed)
        after = self.key_state.modifiers()
        if after != before:
            self._send_modifiers()
            self.text_inputs.modifiers_changed()
        if not self.key_state.is_active(Modifier.ALT):
            self.host.end_window_cycle()

    def _binding(self, code: int) -> bool:
        """The window manager's bindings; True when the key was consumed."""
        held = (
            (1 if self.key_state.is_active(Modifier.SHIFT) else 0)
            | (4 if self.key_state.is_active(Modifier.CTRL) else 0)
            | (8 if self.key_state.is_active(Modifier.ALT) else 0)
            | (64 if self.key_state.is_active(Modifier.SUPER) else 0)
        )
        if held:
            sym, base = self.key_state.keysym(code), self.key_state.base_keysym(code)
            if self.host.window_manager_binding(sym, held) or (
                base not in (0, sym) and self.host.window_manager_binding(base, held)
            ):
                return True
        if not self.key_state.is_active(Modifier.ALT):
            return False
        sym = self.key_state.keysym(code)
        if sym in (Keysym.Tab, Keysym.ISO_Left_Tab):
            self.host.cycle_windows(
                backwards=sym == Keysym.ISO_Left_Tab or self.key_state.is_active(Modifier.SHIFT)
            )
            return True
        if sym == Keysym.F4:
            self.host.close_focused_window()
            return True
        return False

    # What input methods need (text_input.TextInputSeat) -------------------------------------------

    @property
    def repeat(self) -> tuple[int, int]:
        return (REPEAT_RATE, REPEAT_DELAY)

    def keymap_fd(self) -> tuple[int, int]:
        return self.keymap.memfd()

    def modifier_state(self) -> tuple[int, int, int, int]:
        m = self.key_state.modifiers()
        return (m.depressed, m.latched, m.locked, m.group)

    def virtual_key(self, code: int, pressed: bool) -> None:
        if 0 <= code <= MAX_EVDEV_CODE:
            self._send_key(code, pressed)

    def scene_changed(self) -> None:
        self.host.scene_changed()

    def virtual_modifiers(self, depressed: int, latched: int, locked: int, group: int) -> None:
        self._deliver(lambda: self._post_modifiers(depressed, latched, locked, group))

    def round_trip(self, surface: Surface, then: Callable[[], None]) -> bool:
        return self.host.round_trip(surface, then)

    def hold_keys(self) -> None:
        if self._held is None:
            self._held = []

    def release_keys(self) -> None:
        held, self._held = self._held, None
        for send in held or ():
            send()

    def _focused_keyboards(self) -> list[KeyboardResource]:
        focus = self.keyboard_focus
        if focus is None:
            return []
        return [kb for kb in self.keyboards if kb.client is focus.client]

    def _send_key(self, code: int, pressed: bool) -> None:
        state = WlKeyboard.key_state.pressed if pressed else WlKeyboard.key_state.released
        t = now_ms()
        self._deliver(lambda: self._post_key(code, state, t))

    def _send_modifiers(self) -> None:
        m = self.key_state.modifiers()
        self._deliver(lambda: self._post_modifiers(m.depressed, m.latched, m.locked, m.group))

    def _deliver(self, send: Callable[[], None]) -> None:
        """Send a key or the modifiers to the focused program now, or after the keys held before it."""
        if self._held is not None:
            self._held.append(send)
        else:
            send()

    def _post_key(self, code: int, state: int, t: int) -> None:
        kbs = self._focused_keyboards()
        if not kbs:
            return
        serial = self.display.next_serial()
        assert self.keyboard_focus is not None
        self.key_serials[self.keyboard_focus.client] = serial
        for kb in kbs:
            kb.post("key", serial, t, code, state)

    def _post_modifiers(self, depressed: int, latched: int, locked: int, group: int) -> None:
        kbs = self._focused_keyboards()
        if kbs:
            serial = self.display.next_serial()
            for kb in kbs:
                kb.post("modifiers", serial, depressed, latched, locked, group)

    def release_all(self) -> None:
        """The viewer went away: release every held key and button, as if the user let go."""
        for code in list(self.pressed_keys) + list(self.swallowed_keys) + self.text_inputs.held():
            self.key(code, False)
        for button in list(self.buttons):
            self.pointer_button(button, False)
        self.touch.release_all()
        self.host.end_window_cycle()

    def keyboard_target(self) -> Surface | None:
        """Who should have keyboard focus now: popup grab, exclusive layer, or the active window."""
        for popup in reversed(self.popup_grabs):
            if popup.surface is not None and popup.is_mapped:
                return popup.surface
        return self.host.keyboard_focus_target()

    def update_keyboard_focus(self) -> None:
        self.set_keyboard_focus(self.keyboard_target())

    def set_keyboard_focus(self, surface: Surface | None) -> None:
        if surface is self.keyboard_focus:
            return
        self.release_keys()  # what was typed before the focus moved goes where it was typed
        old = self.keyboard_focus
        if old is not None and old.alive:
            serial = self.display.next_serial()
            for kb in self._focused_keyboards():
                kb.post("leave", serial, old)
        self.keyboard_focus = surface if surface is not None and surface.alive else None
        if self.keyboard_focus is not None:
            kbs = self._focused_keyboards()
            if kbs:
                serial = self.display.next_serial()
                keys = self.pressed_keys_array()
                for kb in kbs:
                    kb.post("enter", serial, self.keyboard_focus, keys)
                    kb.send_modifiers(serial)
        self.shortcuts.focus_changed(self.keyboard_focus)
        self.text_inputs.focus_changed(self.keyboard_focus)
        client = self.keyboard_focus.client if self.keyboard_focus is not None else None
        if old is None or client is not old.client:
            self.host.selection_focus_changed(client)

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
        out = self.output.logical
        x = min(max(x, 0.0), max(0.0, out.width - 1 / 256))
        y = min(max(y, 0.0), max(0.0, out.height - 1 / 256))
        self.pointer_x, self.pointer_y = x, y
        if self.pointer_grab is not None:
            self.pointer_grab.motion(x - self.grab_start[0], y - self.grab_start[1])
        else:
            self._update_pointer_focus(send_motion=True)

    def _update_pointer_focus(self, send_motion: bool) -> None:
        x, y = self.pointer_x, self.pointer_y
        if self.buttons and self.pointer_focus is not None and self.pointer_focus.alive:
            target: tuple[Surface, int, int] | None = (self.pointer_focus, *self.pointer_focus_origin)
        else:
            target = self.host.surface_at(x, y)
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
            serial = self.display.next_serial()
            for p in self._client_pointers(old.client):
                p.post("leave", serial, old)
                p.post("frame")
        self.pointer_focus = surface
        if surface is None:
            self.cursor.use_default()
            return True
        if old is None or old.client is not surface.client:
            self.cursor.surface = None
        serial = self.display.next_serial()
        self.enter_serials[surface.client] = serial
        for p in self._client_pointers(surface.client):
            p.post("enter", serial, surface, self.pointer_x - ox, self.pointer_y - oy)
            p.post("frame")
        return True

    def refresh_pointer_focus(self) -> None:
        """The scene changed under a still pointer: re-pick the surface (no motion event)."""
        if self.pointer_grab is None:
            self._update_pointer_focus(send_motion=False)

    def pointer_button(self, button: int, pressed: bool) -> None:
        if pressed == (button in self.buttons):
            return
        if pressed:
            self.buttons.add(button)
        else:
            self.buttons.discard(button)
        if self.pointer_grab is not None:
            if not self.buttons:
                self._end_grab()
            return
        if pressed and len(self.buttons) == 1 and not self._first_press(button):
            return
        focus = self.pointer_focus
        if focus is None:
            return
        serial = self.display.next_serial()
        if pressed:
            self.press_serials[focus.client] = serial
        state = WlPointer.button_state.pressed if pressed else WlPointer.button_state.released
        t = now_ms()
        for p in self._client_pointers(focus.client):
            p.post("button", serial, t, button, state)
            p.post("frame")
        if not self.buttons:
            self._update_pointer_focus(send_motion=False)

    def _first_press(self, button: int) -> bool:
        """A first button went down: who gets it (an X grab, a title bar, popup dismissal, click to
        focus). False: the press is used up here."""
        target = self.host.surface_at(self.pointer_x, self.pointer_y)
        if not self.popup_grabs:
            x_grab = self.host.x_pointer_grab(target[0] if target is not None else None)
            if x_grab is not None:
                # Held by X until the release (the buttons keep the focus); Xwayland puts the click
                # at the pointer's root position, outside the menu: the menu's program closes it.
                self._set_pointer_focus(*x_grab)
                return True
        if target is not None and isinstance(target[0], TitleBar) and not self.popup_grabs:
            bar, ox, oy = target
            self.host.titlebar_pressed(bar, self.pointer_x - ox, self.pointer_y - oy)
            return False
        if self.popup_grabs:
            grab_client = self.popup_grabs[-1].client
            if target is None or target[0].client is not grab_client:
                self.dismiss_popups()
                self.buttons.discard(button)
                self._update_pointer_focus(send_motion=False)
                return False
        self.host.clicked(target[0] if target else None)
        self._update_pointer_focus(send_motion=False)
        return True

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

    def button_serial_valid(self, surface: Surface | None, serial: int) -> bool:
        """A move/resize request must come from a button still held on that client's surface."""
        return (
            surface is not None and bool(self.buttons) and self.press_serials.get(surface.client) == serial
        )

    # Move / resize grabs --------------------------------------------------------------------------

    @property
    def grab(self) -> GrabKind:
        """What the running pointer grab does (``GrabKind.NONE``: none runs)."""
        return self.pointer_grab.kind if self.pointer_grab is not None else GrabKind.NONE

    def start_grab(self, grab: PointerGrab) -> None:
        self.pointer_grab = grab
        self.grab_start = (self.pointer_x, self.pointer_y)
        self._set_pointer_focus(None, 0, 0)

    def _end_grab(self) -> None:
        grab, self.pointer_grab = self.pointer_grab, None
        if grab is not None:
            grab.released()
        self._update_pointer_focus(send_motion=False)

    def grab_window_gone(self, window: object) -> None:
        """``window`` was unmapped: a grab moving or resizing it ends without a word."""
        if self.pointer_grab is not None and self.pointer_grab.window is window:
            self.pointer_grab = None

    # Popup grabs ----------------------------------------------------------------------------------

    def popup_grab(self, popup: GrabbingPopup, serial: int) -> None:
        client = popup.client
        valid = serial in (
            self.press_serials.get(client),
            self.key_serials.get(client),
            self.touch.serials.get(client),
        ) or (self.keyboard_focus is not None and self.keyboard_focus.client is client)
        if not valid:
            log.debug("denying popup grab for %r (serial %d)", client, serial)
            popup.dismiss()
            return
        if self.popup_grabs and self.popup_grabs[-1].client is not client:
            self.dismiss_popups()
        self.popup_grabs.append(popup)
        self.update_keyboard_focus()

    def popup_unmapped(self, popup: GrabbingPopup) -> None:
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
            self.cursor.hide()
        else:
            self.cursor.set_surface(surface, hx, hy, pointer)

    def cursor_state(self) -> CursorState:
        scale = self.output.scale
        return self.cursor.state(int(self.pointer_x * scale), int(self.pointer_y * scale))

    # Cleanup --------------------------------------------------------------------------------------

    def surface_gone(self, surface: Surface) -> None:
        self.touch.surface_gone(surface)
        if self.keyboard_focus is surface:
            self.keyboard_focus = None
            self.update_keyboard_focus()
        if self.pointer_focus is surface:
            self.pointer_focus = None
            self.refresh_pointer_focus()
        if self.cursor.surface is surface:
            self.cursor.surface = None
