"""Input methods: zwp_text_input_v3 for the session's programs, zwp_input_method_v2 (with its keyboard
grab) and zwp_virtual_keyboard_v1 for an input method running in the session (fcitx5, IBus).

The viewer sends keys as ever. While a program's text field has the keyboard focus and is enabled
(text-input-v3), the input method is *active*: it hears the field's surrounding text and content type,
and -- when it grabbed the keyboard -- gets the keys instead of the program. It composes (pinyin →
汉字), shows the composition in the field (``set_preedit_string``) and commits the text
(``commit_string``); the keys it does not use it sends back through a virtual keyboard, which types
them into the focused program. One input method at a time: a second one is told ``unavailable``.

The virtual keyboard's keys go to the program with keyboard focus in the seat's keymap (the keymap an
input method sends with it is not passed on: fcitx5 sends back the one it got from its grab).

Text and keys reach the program in the order the input method sent them. A program may have
committed its text input again before it read the ``done`` that carries the input method's text (foot
does, with its cursor rectangle); that ``done``'s serial is then stale, and a program keeping serials
strictly (foot) applies the text only at the ``done`` answering its later commit. Keys sent meanwhile
would be typed before the text (汉字 landing in the middle of what was typed after it), so after text
the program's keys wait until a round trip to it (an xdg_wm_base ping) shows it has read every
``done`` it was sent.

An input method may leave requests unsent: fcitx5 (5.0.21) flushes after each key it passes on, and
when the socket is full (a burst of keys it read while busy, faster than the compositor reads them)
it keeps the rest in its buffer until something wakes it; it never waits for the socket to drain.
Nothing else might come (the keys it read were all the viewer typed), and the last keys stayed in
fcitx5 for ever. So once the requests an input method's client sent in one turn are handled, its
keyboard grab is told the repeat info again: an event it needs no answer to, after which it flushes.

What this needs of the seat is ``TextInputSeat`` (the seat module imports this one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from pywayland.protocol.text_input_unstable_v3 import ZwpTextInputManagerV3, ZwpTextInputV3
from pywayland.protocol.wayland import WlKeyboard

from wayray.compositor.geometry import Rect
from wayray.compositor.surface import Role, Surface
from wayray.wayland.protocols.generated.input_method_unstable_v2 import (
    ZwpInputMethodKeyboardGrabV2,
    ZwpInputMethodManagerV2,
    ZwpInputMethodV2,
    ZwpInputPopupSurfaceV2,
)
from wayray.wayland.protocols.generated.virtual_keyboard_unstable_v1 import (
    ZwpVirtualKeyboardManagerV1,
    ZwpVirtualKeyboardV1,
)
from wayray.wayland.server import Client, Display, NewId, ProtocolError, Resource

log = logging.getLogger(__name__)

#: How many times the keys' wait behind one text starts again because the program committed while
#: it waited (:meth:`TextInputs.answered`).
MAX_WAIT_EXTENSIONS = 2


class TextInputSeat(Protocol):
    """What input methods need of the seat."""

    @property
    def display(self) -> Display: ...

    @property
    def repeat(self) -> tuple[int, int]:
        """Key repeat: rate (keys per second) and delay (ms)."""

    def keymap_fd(self) -> tuple[int, int]:
        """A new memfd holding the seat's keymap, and its size (the caller closes it)."""

    def modifier_state(self) -> tuple[int, int, int, int]:
        """(depressed, latched, locked, group) now."""

    def virtual_key(self, code: int, pressed: bool) -> None:
        """A key from a virtual keyboard: to the focused program, past the input method and the WM."""

    def virtual_modifiers(self, depressed: int, latched: int, locked: int, group: int) -> None:
        """Modifiers from a virtual keyboard, for the focused program."""

    def scene_changed(self) -> None:
        """Something drawn moved (the input method's candidate window): composite soon."""

    def round_trip(self, surface: Surface, then: Callable[[], None]) -> bool:
        """Call ``then`` once the program of ``surface`` has read everything sent to it before now;
        False when it cannot be asked."""

    def hold_keys(self) -> None:
        """Keys and modifiers for the focused program wait, in order, until ``release_keys``."""

    def release_keys(self) -> None:
        """Send the keys and modifiers held, and the next ones at once again."""


def _now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


class TextInputs:
    """The seat's text inputs and input method, and which text input is active."""

    def __init__(self, seat: TextInputSeat) -> None:
        self.seat = seat
        self.text_inputs: list[TextInput] = []
        self.input_method: InputMethod | None = None
        self.focus: Surface | None = None
        self.active: TextInput | None = None
        #: The input method's candidate windows (zwp_input_popup_surface_v2), drawn while it is active.
        self.popups: list[PopupSurface] = []
        self._grabbed_keys: set[int] = set()  # keys pressed that went to the input method's grab
        #: The text input sent the input method's text that its program may not have applied yet,
        #: and the round trip that will tell (the program's keys wait until then).
        self._unapplied: tuple[TextInput, object, int] | None = None
        self._wake_pending = False

    # The seat's side ------------------------------------------------------------------------------

    def focus_changed(self, focus: Surface | None) -> None:
        old, self.focus = self.focus, focus
        if old is focus:
            return
        self._stop_waiting()
        for ti in self.text_inputs:
            if old is not None and ti.entered is old:
                if old.alive:
                    ti.post("leave", old)
                ti.entered = None
            if focus is not None and ti.client is focus.client:
                ti.post("enter", focus)
                ti.entered = focus
        self.update_active()

    def held(self) -> list[int]:
        """The keys held whose presses went to the input method (released when the viewer leaves)."""
        return sorted(self._grabbed_keys)

    def took(self, code: int) -> bool:
        """Whether ``code`` is held and its press went to the input method."""
        return code in self._grabbed_keys

    def key(self, code: int, pressed: bool) -> bool:
        """Give the key to the input method's keyboard grab while it is active; True when it took it."""
        im = self.input_method
        grab = im.grab if im is not None else None
        if pressed:
            if grab is None or self.active is None:
                return False
            self._grabbed_keys.add(code)
        elif code in self._grabbed_keys:
            self._grabbed_keys.discard(code)
            if grab is None:
                return True  # the grab went away: its press was never the program's, nor is its release
        else:
            return False
        grab.post(
            "key",
            self.seat.display.next_serial(),
            _now_ms(),
            code,
            WlKeyboard.key_state.pressed if pressed else WlKeyboard.key_state.released,
        )
        return True

    def modifiers_changed(self) -> None:
        im = self.input_method
        if im is not None and im.grab is not None:
            im.grab.send_modifiers()

    def keymap_changed(self) -> None:
        im = self.input_method
        if im is not None and im.grab is not None:
            im.grab.send_keymap()

    # Text inputs ----------------------------------------------------------------------------------

    def update_active(self) -> None:
        """The active text input: an enabled one of the focused program's, entered on its surface."""
        candidate = next(
            (
                ti
                for ti in self.text_inputs
                if ti.enabled and ti.entered is not None and ti.entered is self.focus and ti.alive
            ),
            None,
        )
        im = self.input_method
        if candidate is self.active:
            if candidate is not None and im is not None and candidate.changed:
                im.send_state(candidate)
            return
        if self.active is not None:
            self.active.preedit = None  # the client drops its preedit itself (leave, disable)
            if im is not None:
                im.post("deactivate")
                im.send_done()
        self.active = candidate
        if candidate is not None and im is not None:
            im.post("activate")
            im.send_state(candidate)
        if self.popups:
            self.seat.scene_changed()

    def text_input_gone(self, ti: TextInput) -> None:
        if self._unapplied is not None and self._unapplied[0] is ti:
            self._stop_waiting()
        if ti in self.text_inputs:
            self.text_inputs.remove(ti)
        if ti is self.active:
            self.update_active()

    # The candidate window ------------------------------------------------------------------------

    def popup_places(
        self, origin_of: dict[Surface, tuple[int, int]], area: Rect
    ) -> list[tuple[Surface, int, int]]:
        """Where the input method's candidate windows are drawn (layout coordinates), topmost last.

        Each goes just below the text cursor of the active text field (``origin_of``: where the
        field's surface is drawn), or above it where it would not fit below, and inside ``area``
        (the output). Nothing while no text field is active: the protocol shows them only then."""
        ti, im = self.active, self.input_method
        if ti is None or im is None or ti.entered is None or ti.entered not in origin_of:
            return []
        ox, oy = origin_of[ti.entered]
        rx, ry, rw, rh = ti.cursor_rect if ti.cursor_rect is not None else (0, 0, 0, 0)
        cx, cy = ox + rx, oy + ry
        places = []
        for popup in self.popups:
            surface = popup.surface
            if popup.im is not im or surface is None or not surface.mapped_content:
                continue
            w, h = surface.width, surface.height
            x, y = cx, cy + rh
            if y + h > area.y2 and cy - h >= area.y:
                y = cy - h  # no room below the cursor: above it
            x = max(area.x, min(x, area.x2 - w))
            y = max(area.y, min(y, area.y2 - h))
            popup.tell_rectangle((cx - x, cy - y, rw, rh))
            places.append((surface, x, y))
        return places

    def popup_gone(self, popup: PopupSurface) -> None:
        if popup in self.popups:
            self.popups.remove(popup)
            self.seat.scene_changed()

    # The input method ----------------------------------------------------------------------------

    def input_method_bound(self, im: InputMethod) -> None:
        if self.input_method is not None:
            log.info("a second input method (%r) is told it is unavailable: %r is the session's", im.client,
                     self.input_method.client)  # fmt: skip
            im.post("unavailable")
            im.inert = True
            return
        self.input_method = im
        log.info("input method %r is the session's", im.client)
        if self.active is not None:
            im.post("activate")
            im.send_state(self.active)

    def input_method_gone(self, im: InputMethod) -> None:
        if self.input_method is im:
            self.input_method = None
            self._grabbed_keys.clear()
            if self.active is not None and self.active.alive:
                # What it was composing is gone with it.
                self.active.preedit = None
                self.active.post("preedit_string", None, 0, 0)
                self.active.post("done", self.active.commits)

    def input_method_commit(self, im: InputMethod) -> None:
        """The input method's pending text applies to the active text input."""
        ti = self.active
        preedit, delete, commit = im.pending_preedit, im.pending_delete, im.pending_commit
        im.pending_preedit, im.pending_delete, im.pending_commit = None, None, None
        if ti is None or not ti.alive:
            return
        ti.preedit = preedit
        if preedit is not None:
            ti.post("preedit_string", *preedit)
        else:
            ti.post("preedit_string", None, 0, 0)
        if delete is not None:
            ti.post("delete_surrounding_text", *delete)
        if commit is not None:
            ti.post("commit_string", commit)
        ti.post("done", ti.commits)
        if commit is not None or delete is not None:
            self._wait_applied(ti)

    # Waking the input method ---------------------------------------------------------------------

    def heard_from(self, client: Client) -> None:
        """``client`` sent a request of the input method's or a virtual keyboard's: once this turn's
        requests are handled, wake the input method if it is that client's (see the module's text)."""
        im = self.input_method
        if im is None or im.client is not client or self._wake_pending:
            return
        self._wake_pending = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a display driven without a loop
            self._wake_input_method()
            return
        loop.call_soon(self._wake_input_method)

    def _wake_input_method(self) -> None:
        self._wake_pending = False
        im = self.input_method
        if im is not None and im.grab is not None and im.grab.alive:
            rate, delay = self.seat.repeat
            im.grab.post("repeat_info", rate, delay)

    # Text before keys ----------------------------------------------------------------------------

    def _wait_applied(self, ti: TextInput, extended: int = 0) -> None:
        """The program's keys wait until it has read the ``done`` just sent to ``ti`` (a round trip);
        if it committed again first, it applies the text at the answer to that commit, and
        ``answered`` waits for that one too (``extended``: how many times it did for this text)."""
        token = object()
        self._unapplied = (ti, token, extended)
        if ti.entered is not None and self.seat.round_trip(ti.entered, lambda: self._applied(token)):
            self.seat.hold_keys()
        else:
            # No way to ask it: keys go at once, as they always did, with any an earlier wait for this
            # text holds (an extension whose field lost its surface meanwhile).
            self._stop_waiting()

    def answered(self, ti: TextInput) -> None:
        """``ti``'s commit was answered with a ``done``: if it may still hold text, wait for this one.

        At most :data:`MAX_WAIT_EXTENSIONS` times for one text. A program that commits at every
        ``done`` it reads (foot does while a key it holds repeats: each character moves its cursor)
        cannot be told from one that committed before it read the text: unbounded, the wait would
        start again at every commit, and the keys (the repeating key's release among them) would
        wait for ever. The race seen with foot (its cursor rectangle committed before it read the
        text) needs one extension."""
        if self._unapplied is not None and self._unapplied[0] is ti:
            extended = self._unapplied[2]
            if extended < MAX_WAIT_EXTENSIONS:
                self._wait_applied(ti, extended + 1)

    def _applied(self, token: object) -> None:
        if self._unapplied is not None and self._unapplied[1] is token:
            self._stop_waiting()

    def _stop_waiting(self) -> None:
        if self._unapplied is not None:
            self._unapplied = None
            self.seat.release_keys()


class TextInputManager(Resource):
    interface = ZwpTextInputManagerV3

    def __init__(self, new_id: NewId, inputs: TextInputs) -> None:
        super().__init__(new_id)
        self.inputs = inputs

    def destroy(self) -> None:
        pass

    def get_text_input(self, id: NewId, seat: Resource) -> None:
        ti = TextInput(id, self.inputs)
        self.inputs.text_inputs.append(ti)
        focus = self.inputs.focus
        if focus is not None and focus.alive and focus.client is ti.client:
            ti.post("enter", focus)
            ti.entered = focus


class TextInput(Resource):
    interface = ZwpTextInputV3

    def __init__(self, new_id: NewId, inputs: TextInputs) -> None:
        super().__init__(new_id)
        self.inputs = inputs
        self.entered: Surface | None = None
        self.enabled = False
        self.commits = 0
        #: The state the input method hears (applied at commit).
        self.surrounding: tuple[str, int, int] | None = None
        self.cause = ZwpTextInputV3.change_cause.input_method
        self.content_type = (0, 0)
        #: Where the text cursor is, on the entered surface (the candidate window goes below it).
        self.cursor_rect: tuple[int, int, int, int] | None = None
        self.changed = False
        #: The input method's preedit as the client was last told it (sent again with every ``done``).
        self.preedit: tuple[str, int, int] | None = None
        self._pending_enabled: bool | None = None
        self._pending: dict[str, object] = {}

    def destroy(self) -> None:
        pass

    def enable(self) -> None:
        self._pending_enabled = True
        self._pending.clear()  # enable resets the state

    def disable(self) -> None:
        self._pending_enabled = False

    def set_surrounding_text(self, text: str, cursor: int, anchor: int) -> None:
        self._pending["surrounding"] = (text, cursor, anchor)

    def set_text_change_cause(self, cause: int) -> None:
        self._pending["cause"] = cause

    def set_content_type(self, hint: int, purpose: int) -> None:
        self._pending["content_type"] = (hint, purpose)

    def set_cursor_rectangle(self, x: int, y: int, width: int, height: int) -> None:
        self._pending["cursor_rect"] = (x, y, width, height)

    # Version 2's requests (this compositor offers version 1: they never come).
    def set_available_actions(self, available_actions: bytes) -> None:
        pass

    def show_input_panel(self) -> None:
        pass

    def hide_input_panel(self) -> None:
        pass

    def commit(self) -> None:
        self.commits += 1
        if self._pending_enabled is not None:
            if self._pending_enabled and not self.enabled:
                self.surrounding, self.cause, self.content_type, self.cursor_rect = (
                    None,
                    ZwpTextInputV3.change_cause.input_method,
                    (0, 0),
                    None,
                )
            self.enabled = self._pending_enabled
            self._pending_enabled = None
            self.preedit = None  # enable and disable both start without one
        pending, self._pending = self._pending, {}
        if "surrounding" in pending:
            self.surrounding = pending["surrounding"]  # type: ignore[assignment]
        if "cause" in pending:
            self.cause = pending["cause"]  # type: ignore[assignment]
        if "content_type" in pending:
            self.content_type = pending["content_type"]  # type: ignore[assignment]
        moved = "cursor_rect" in pending and pending["cursor_rect"] != self.cursor_rect
        if "cursor_rect" in pending:
            self.cursor_rect = pending.pop("cursor_rect")  # type: ignore[assignment]
        if moved and self.inputs.popups:
            self.inputs.seat.scene_changed()
        self.changed = bool(pending)
        self.inputs.update_active()
        self.changed = False
        # Every commit is answered with a done carrying its serial. A client may commit again before
        # it reads the input method's text (foot: its cursor rectangle, drawn after the focus came);
        # that text went out with the serial before, and a client keeping serials strictly (foot does)
        # ignores such a done and keeps the text pending until one for its latest commit comes. Without
        # this answer none might ever come, and the text never reaches the program. The preedit goes
        # along: a done without one clears it.
        if self.preedit is not None:
            self.post("preedit_string", *self.preedit)
        self.post("done", self.commits)
        self.inputs.answered(self)

    def on_destroy(self) -> None:
        self.inputs.text_input_gone(self)


class InputMethodManager(Resource):
    interface = ZwpInputMethodManagerV2

    def __init__(self, new_id: NewId, inputs: TextInputs) -> None:
        super().__init__(new_id)
        self.inputs = inputs

    def destroy(self) -> None:
        pass

    def get_input_method(self, seat: Resource, input_method: NewId) -> None:
        im = InputMethod(input_method, self.inputs)
        self.inputs.input_method_bound(im)


class InputMethod(Resource):
    interface = ZwpInputMethodV2

    def __init__(self, new_id: NewId, inputs: TextInputs) -> None:
        super().__init__(new_id)
        self.inputs = inputs
        self.inert = False  # told "unavailable": nothing it asks has an effect
        self.dones = 0
        self.grab: KeyboardGrab | None = None
        self.pending_preedit: tuple[str, int, int] | None = None
        self.pending_delete: tuple[int, int] | None = None
        self.pending_commit: str | None = None

    def send_done(self) -> None:
        self.dones += 1
        self.post("done")

    def send_state(self, ti: TextInput) -> None:
        if ti.surrounding is not None:
            self.post("surrounding_text", *ti.surrounding)
        self.post("text_change_cause", ti.cause)
        self.post("content_type", *ti.content_type)
        self.send_done()

    def commit_string(self, text: str) -> None:
        self.pending_commit = text

    def set_preedit_string(self, text: str, cursor_begin: int, cursor_end: int) -> None:
        self.pending_preedit = (text, cursor_begin, cursor_end)

    def delete_surrounding_text(self, before_length: int, after_length: int) -> None:
        self.pending_delete = (before_length, after_length)

    def commit(self, serial: int) -> None:
        if not self.inert:
            self.inputs.input_method_commit(self)
            self.inputs.heard_from(self.client)

    def get_input_popup_surface(self, id: NewId, surface: Surface) -> None:
        popup = PopupSurface(id, self)
        surface.set_role("zwp_input_popup_surface_v2", popup, self, ZwpInputMethodV2.error.role)
        popup.surface = surface
        if not self.inert:
            self.inputs.popups.append(popup)
            self.inputs.seat.scene_changed()

    def grab_keyboard(self, keyboard: NewId) -> None:
        grab = KeyboardGrab(keyboard, self)
        if self.inert:
            return
        if self.grab is not None:
            self.grab.destroy_resource()
        self.grab = grab
        grab.send_keymap()
        rate, delay = self.inputs.seat.repeat
        grab.post("repeat_info", rate, delay)
        grab.send_modifiers()

    def destroy(self) -> None:
        pass

    def on_destroy(self) -> None:
        if not self.inert:
            self.inputs.input_method_gone(self)


class PopupSurface(Resource, Role):
    """The input method's candidate window: a surface the compositor places by the text cursor."""

    interface = ZwpInputPopupSurfaceV2
    name = "zwp_input_popup_surface_v2"

    def __init__(self, new_id: NewId, im: InputMethod) -> None:
        super().__init__(new_id)
        self.im = im
        self.surface: Surface | None = None
        self._told: tuple[int, int, int, int] | None = None

    def tell_rectangle(self, rect: tuple[int, int, int, int]) -> None:
        """The text cursor, relative to the popup where it is drawn (sent when it changes)."""
        if rect != self._told and self.alive:
            self._told = rect
            self.post("text_input_rectangle", *rect)

    def committed(self) -> None:
        self.im.inputs.seat.scene_changed()

    def surface_destroyed(self) -> None:
        self.surface = None
        self.im.inputs.popup_gone(self)

    def destroy(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self.surface is not None:
            self.surface.clear_role(self)
            self.surface = None
        self.im.inputs.popup_gone(self)


class KeyboardGrab(Resource):
    interface = ZwpInputMethodKeyboardGrabV2

    def __init__(self, new_id: NewId, im: InputMethod) -> None:
        super().__init__(new_id)
        self.im = im

    def send_keymap(self) -> None:
        fd, size = self.im.inputs.seat.keymap_fd()
        try:
            self.post("keymap", WlKeyboard.keymap_format.xkb_v1, fd, size)
        finally:
            os.close(fd)

    def send_modifiers(self) -> None:
        seat = self.im.inputs.seat
        self.post("modifiers", seat.display.next_serial(), *seat.modifier_state())

    def release(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self.im.grab is self:
            self.im.grab = None


class VirtualKeyboardManager(Resource):
    interface = ZwpVirtualKeyboardManagerV1

    def __init__(self, new_id: NewId, inputs: TextInputs) -> None:
        super().__init__(new_id)
        self.inputs = inputs

    def create_virtual_keyboard(self, seat: Resource, id: NewId) -> None:
        VirtualKeyboard(id, self.inputs)


class VirtualKeyboard(Resource):
    interface = ZwpVirtualKeyboardV1

    def __init__(self, new_id: NewId, inputs: TextInputs) -> None:
        super().__init__(new_id)
        self.inputs = inputs
        self.has_keymap = False

    def keymap(self, format: int, fd: int, size: int) -> None:
        self.has_keymap = True  # the fd is closed by the dispatcher; keys use the seat's keymap

    def _check_keymap(self) -> None:
        if not self.has_keymap:
            raise ProtocolError(self, ZwpVirtualKeyboardV1.error.no_keymap, "a key before the keymap")

    def key(self, time: int, key: int, state: int) -> None:
        self._check_keymap()
        self.inputs.seat.virtual_key(key, state == WlKeyboard.key_state.pressed)
        self.inputs.heard_from(self.client)

    def modifiers(self, mods_depressed: int, mods_latched: int, mods_locked: int, group: int) -> None:
        self._check_keymap()
        self.inputs.seat.virtual_modifiers(mods_depressed, mods_latched, mods_locked, group)
        self.inputs.heard_from(self.client)

    def destroy(self) -> None:
        pass
