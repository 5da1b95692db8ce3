"""The built-in floating window manager.

New windows are centred (the first) or cascaded, children over their parent; a click focuses and
raises; keyboard focus follows the active window; Alt+Tab cycles in most-recently-used order
(Alt+Shift+Tab backwards); Alt+F4 asks the active window to close; maximize and fullscreen are
honoured, and both follow the output when it changes size. Interactive move and resize follow the
pointer while the button that started them is held.

xdg-shell hands the WM its toplevels through the hooks of ``xdg_shell.XdgShellHost`` (``Core`` passes
them on); what the WM needs of the compositor in turn is ``WmHost``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from wayray.compositor.geometry import Rect
from wayray.compositor.seat import GrabKind, PointerGrab
from wayray.compositor.stacking import StackRequest, keep_transients_above, restacked
from wayray.compositor.titlebar import TitleBar
from wayray.compositor.window import ManagedToplevel, Window, WmDelegate

if TYPE_CHECKING:
    from wayray.compositor.output import Output
    from wayray.compositor.surface import Surface

__all__ = ["FloatingWM", "ManagedToplevel", "Window", "WmDelegate", "WmHost"]

log = logging.getLogger(__name__)

CASCADE_STEP = 32
KEY_LEFT, KEY_UP, KEY_RIGHT, KEY_DOWN = 0xFF51, 0xFF52, 0xFF53, 0xFF54  # XKB keysyms
MOD_SUPER = 64  # the seat's modifier bits (wayray_wm_manager_v1.modifier)
EDGE_TOP, EDGE_BOTTOM, EDGE_LEFT, EDGE_RIGHT = 1, 2, 4, 8


class WmHost(Protocol):
    """What the window manager needs of the compositor (``Core``): the seat, the layers, the clock."""

    def scene_changed(self) -> None:
        """Something moved, appeared or changed stacking: composite soon."""

    def usable_area(self) -> Rect:
        """The output minus what panels reserve (layer-shell exclusive zones), layout pixels."""

    def update_keyboard_focus(self) -> None:
        """The active window changed: give the keyboard to whom it belongs now."""

    @property
    def pointer_position(self) -> tuple[float, float]: ...

    def button_serial_valid(self, surface: Surface | None, serial: int) -> bool:
        """Whether ``serial`` is the press of a button still held on ``surface``'s client."""

    def start_pointer_grab(self, grab: PointerGrab) -> None:
        """Run ``grab`` (an interactive move or resize) until the buttons are up."""

    def grab_window_gone(self, window: object) -> None:
        """``window`` was unmapped: end a grab that moves or resizes it."""

    @property
    def pointer_buttons_held(self) -> bool:
        """Whether a pointer button is down (a press on a title bar is still going on)."""
        ...


class _MoveGrab:
    """Dragging a window by the pointer: its top-left corner follows it."""

    kind = GrabKind.MOVE

    def __init__(self, wm: FloatingWM, window: Window, lag: tuple[float, float] = (0, 0)) -> None:
        self.wm = wm
        self.window = window
        # ``lag``: how far the pointer went since the drag began, before the grab started.
        self.start = window.rect.translate(int(lag[0]), int(lag[1]))

    def motion(self, dx: float, dy: float) -> None:
        self.window.x = self.start.x + int(dx)
        self.window.y = self.start.y + int(dy)
        self.wm.host.scene_changed()

    def released(self) -> None:
        if self.wm.delegate is not None:
            self.wm.delegate.window_changed(self.window)  # where the drag left it


class _ResizeGrab:
    """Resizing a window by the pointer: the client is asked for the size, the opposite edges stay."""

    kind = GrabKind.RESIZE

    def __init__(self, wm: FloatingWM, window: Window, edges: int) -> None:
        self.wm = wm
        self.window = window
        self.edges = edges
        self.start = window.rect

    def motion(self, dx: float, dy: float) -> None:
        self.wm.resize_to(self.window, self.start, self.edges, dx, dy)

    def released(self) -> None:
        self.wm.end_resize(self.window)


class FloatingWM:
    def __init__(self, host: WmHost, output: Output) -> None:
        self.host = host
        self.output = output
        self._windows: dict[ManagedToplevel, Window] = {}  # in creation order
        self.stack: list[Window] = []  # mapped, visible windows, bottom to top
        self.focused: Window | None = None
        self.mru: list[Window] = []  # most recently focused first
        self._cycle: list[Window] | None = None
        self._cycle_index = 0
        self._last_placed: Window | None = None
        self.delegate: WmDelegate | None = None  # an external window manager, while one runs
        self.workspace = 0  # the workspace shown (an external WM's; the built-in one has one)

    @property
    def windows(self) -> list[Window]:
        """Every toplevel's window, mapped or not, oldest first."""
        return list(self._windows.values())

    # Window life (the toplevel hooks of xdg_shell.XdgShellHost) -----------------------------------

    def new_toplevel(self, toplevel: ManagedToplevel) -> Window:
        w = self._windows[toplevel] = Window(self, toplevel)
        if self.delegate is not None:
            self.delegate.window_new(w)
        return w

    def toplevel_initial_commit(self, toplevel: ManagedToplevel) -> None:
        window = self._windows[toplevel]
        if self.delegate is not None:
            self.delegate.window_changed(window)
        window.initial_done = True
        window.configure(window.wm_size)  # the size an external WM asked for before, if any

    def toplevel_mapped(self, toplevel: ManagedToplevel) -> None:
        window = self._windows[toplevel]
        window.mapped = True
        if not window.placed:
            if not window.wm_placed:
                self._place(window)
            window.placed = True
        if window.maximized or window.fullscreen:
            self._snap(window)
        if window.shown:
            self.stack.append(window)
        if self.delegate is not None:
            self.delegate.window_changed(window)
            self.delegate.window_mapped(window, True)
        else:
            self.focus(window)
        self.host.scene_changed()

    def toplevel_committed(self, toplevel: ManagedToplevel) -> None:
        window = self._windows[toplevel]
        acked = window.toplevel.acked_state
        if window.maximized or window.fullscreen:
            self._snap(window)
        elif (
            window.restore is not None and acked is not None and not acked.maximized and not acked.fullscreen
        ):
            window.x, window.y = window.restore.x, window.restore.y
            window.restore = None
        elif window.resize_edges:
            g = window.geometry
            ax, ay = window.resize_anchor
            if window.resize_edges & EDGE_LEFT:
                window.x = ax - g.width
            if window.resize_edges & EDGE_TOP:
                window.y = ay - g.height
            # Anchored until the client has drawn the last size the drag asked for: a busy client
            # commits older sizes after the drag is over, and the last one must keep the corner too.
            if not window.resizing and not window.toplevel.redrawing:
                window.resize_edges = 0
        if self.delegate is not None:
            self.delegate.window_changed(window)
        self.host.scene_changed()

    def toplevel_unmapped(self, toplevel: ManagedToplevel) -> None:
        self._unmap(self._windows[toplevel])

    def _unmap(self, window: Window) -> None:
        window.mapped = False
        window.placed = False
        window.wm_placed = False
        if self.delegate is not None:
            self.delegate.window_mapped(window, False)
        if window in self.stack:
            self.stack.remove(window)
        for popup in list(window.popups):
            popup.dismiss()
        self.host.grab_window_gone(window)
        if self.focused is window:
            self.focused = None
            self._focus_next()
        self.host.scene_changed()

    def toplevel_destroyed(self, toplevel: ManagedToplevel) -> None:
        window = self._windows.get(toplevel)
        if window is None:
            return
        if window.mapped:
            self._unmap(window)
        del self._windows[toplevel]
        if self.delegate is not None:
            self.delegate.window_gone(window)
        if window in self.mru:
            self.mru.remove(window)
        if self._cycle is not None and window in self._cycle:
            self._cycle.remove(window)
        if self._last_placed is window:
            self._last_placed = None

    # Placement ------------------------------------------------------------------------------------

    def usable_area(self) -> Rect:
        """The output minus what panels reserve (layer-shell exclusive zones)."""
        return self.host.usable_area()

    def _place(self, window: Window) -> None:
        area = self.usable_area()
        g = window.geometry
        parent_toplevel = window.toplevel.parent
        parent = self._windows.get(parent_toplevel) if parent_toplevel is not None else None
        if parent is not None and parent.mapped:
            pr = parent.rect
            x = pr.x + (pr.width - g.width) // 2
            y = pr.y + (pr.height - g.height) // 2
        elif self._last_placed is None or not self._last_placed.mapped:
            x = area.x + (area.width - g.width) // 2
            y = area.y + (area.height - g.height) // 2
        else:
            x = self._last_placed.x + CASCADE_STEP
            y = self._last_placed.y + CASCADE_STEP
            if x + g.width > area.x2 or y + g.height > area.y2:
                x, y = area.x + CASCADE_STEP, area.y + CASCADE_STEP
        # Keep the top-left corner (where title bars are) on the output.
        t = window.title_height
        window.x = max(area.x, min(x, area.x2 - min(g.width, area.width)))
        window.y = max(area.y + t, min(y, area.y2 - min(g.height, area.height)))
        self._last_placed = window

    def _snap(self, window: Window) -> None:
        if window.fullscreen:
            window.x, window.y = 0, 0
        elif window.maximized:
            area = self.usable_area()
            window.x, window.y = area.x, area.y + window.title_height

    # Focus and stacking ---------------------------------------------------------------------------

    def focus(self, window: Window | None, *, raise_: bool = True) -> None:
        old = self.focused
        if window is not None and (not window.mapped or not window.toplevel.alive):
            window = None
        if window is not None and not window.shown and not window.minimized:
            window = None  # hidden by an external WM, or on another workspace
        self.focused = window
        if window is not None:
            if window.minimized:
                self._minimize(window, False)
            if raise_:
                self.raise_(window)
            if window in self.mru:
                self.mru.remove(window)
            self.mru.insert(0, window)
        if old is not window:
            if old is not None and old.mapped:
                old.configure()
            if window is not None:
                window.configure()
                window.toplevel.activated()
                if self.delegate is not None:
                    self.delegate.window_request(window, "activated")
        self.host.update_keyboard_focus()

    def raise_(self, window: Window) -> None:
        """To the top, with its dialogs still above it (stacking.py)."""
        if window not in self.stack:
            return
        before = list(self.stack)
        self.stack.remove(window)
        self.stack.append(window)
        keep_transients_above(self.stack, self._parent_window)
        if self.stack != before:
            for w in self.stack[self.stack.index(window) :]:
                w.toplevel.raised()
            self.host.scene_changed()

    def lower(self, window: Window) -> None:
        """To the bottom, its dialogs still above it (stacking.py)."""
        if window in self.stack and self.stack[0] is not window:
            self.stack.remove(window)
            self.stack.insert(0, window)
            keep_transients_above(self.stack, self._parent_window)
            self.host.scene_changed()

    def _parent_window(self, window: Window) -> Window | None:
        parent = window.toplevel.parent
        return self._windows.get(parent) if parent is not None else None

    def _focus_next(self) -> None:
        for w in self.mru:
            if w.mapped and w.shown:
                self.focus(w)
                return
        self.focus(self.stack[-1] if self.stack else None)

    def window_at(self, surface: Surface) -> Window | None:
        root = surface.root()
        for w in self.windows:
            if w.surface is root:
                return w
        return None

    def clicked(self, surface: Surface | None) -> None:
        """Click to focus and raise (called by the seat on a button press)."""
        if surface is None:
            return
        window = self.window_at(surface)
        if window is not None and window.mapped:
            window.titlebar_press = False
            if self.delegate is not None:
                self.delegate.window_request(window, "clicked")
            else:
                self.focus(window)

    # Requests from clients (the request hooks of xdg_shell.XdgShellHost) ---------------------------

    # Under an external WM each request is passed on to it; the protocol's configure is sent at once.

    def maximize_requested(self, toplevel: ManagedToplevel, on: bool) -> None:
        window = self._windows[toplevel]
        if self.delegate is not None:
            window.configure()
            self.delegate.window_request(window, "request_maximized", int(on))
            return
        self._maximize(window, on)

    def fullscreen_requested(self, toplevel: ManagedToplevel, on: bool) -> None:
        window = self._windows[toplevel]
        if self.delegate is not None:
            window.configure()
            self.delegate.window_request(window, "request_fullscreen", int(on))
            return
        self._fullscreen(window, on)

    def minimize_requested(self, toplevel: ManagedToplevel) -> None:
        window = self._windows[toplevel]
        if self.delegate is not None:
            self.delegate.window_request(window, "request_minimize")
            return
        self._minimize(window, True)

    def activate_requested(self, toplevel: ManagedToplevel) -> None:
        """The client (or a pager) asks for it to be the active window: raised, focused, restored."""
        window = self._windows.get(toplevel)
        if window is not None and window.mapped:
            if self.delegate is not None:
                self.delegate.window_request(window, "request_activate")
                return
            self.focus(window)

    def move_requested(
        self, toplevel: ManagedToplevel, serial: int, anchor: tuple[int, int] | None = None
    ) -> None:
        window = self._windows[toplevel]
        window.move_anchor = anchor
        if self.delegate is not None:
            # Passed on only with a button still held on it: the WM may then start the move.
            if window.mapped and self.host.button_serial_valid(window.surface, serial):
                window.grab_serial = serial
                self.delegate.window_request(window, "request_move")
            return
        self._begin_move(window, serial)

    def resize_requested(self, toplevel: ManagedToplevel, serial: int, edges: int) -> None:
        window = self._windows[toplevel]
        if self.delegate is not None:
            if window.mapped and self.host.button_serial_valid(window.surface, serial):
                window.grab_serial = serial
                self.delegate.window_request(window, "request_resize", edges)
            return
        self._begin_resize(window, serial, edges)

    def external_move(self, window: Window) -> None:
        """An external WM starts the interactive move the application asked for (while its button is
        still held)."""
        serial, window.grab_serial = window.grab_serial, None
        press, window.titlebar_press = window.titlebar_press, False
        if serial is not None:
            self._begin_move(window, serial)
        elif press and self.host.pointer_buttons_held and window.mapped:
            # A drag of the compositor's title bar, as the built-in WM does it (titlebar_pressed).
            if not (window.maximized or window.fullscreen):
                self.host.start_pointer_grab(_MoveGrab(self, window))

    def external_resize(self, window: Window, edges: int) -> None:
        serial, window.grab_serial = window.grab_serial, None
        if serial is not None and edges:
            self._begin_resize(window, serial, edges)

    def _maximize(self, window: Window, on: bool) -> None:
        if on == window.maximized:
            window.configure()  # the protocol wants a configure in any case
            return
        if on and window.mapped and not window.fullscreen and window.restore is None:
            window.restore = window.rect
        window.maximized = on
        size = None
        if not on and window.restore is not None and not window.fullscreen:
            size = (window.restore.width, window.restore.height)
        window.configure(size)

    def _fullscreen(self, window: Window, on: bool) -> None:
        if on == window.fullscreen:
            window.configure()
            return
        if on and window.mapped and not window.maximized and window.restore is None:
            window.restore = window.rect
        window.fullscreen = on
        size = None
        if not on and window.restore is not None and not window.maximized:
            size = (window.restore.width, window.restore.height)
        window.configure(size)
        self.host.scene_changed()

    def _minimize(self, window: Window, on: bool) -> None:
        if window.minimized == on:
            return
        window.minimized = on
        self.update_shown(window)

    def update_shown(self, window: Window) -> None:
        """Take a window that is no longer shown off the stack (and the focus), put a shown one on top."""
        if not window.shown:
            if window in self.stack:
                self.stack.remove(window)
            if self.focused is window:
                self.focused = None
                self._focus_next()
        elif window.mapped and window not in self.stack:
            self.stack.append(window)
        self.host.scene_changed()

    def show_workspace(self, workspace: int) -> None:
        self.workspace = workspace
        for w in self.windows:
            self.update_shown(w)
        if self.focused is None:
            self._focus_next()

    def external_gone(self) -> None:
        """The external WM went away: every window comes back, where it is, on one workspace."""
        self.delegate = None
        self.workspace = 0
        for w in self.windows:
            w.hidden = False
            w.workspace = 0
            w.wm_handle = None
            self.update_shown(w)
        if self.focused is None:
            self._focus_next()

    # Interactive move and resize ------------------------------------------------------------------

    def _begin_move(self, window: Window, serial: int) -> None:
        anchor, window.move_anchor = window.move_anchor, None
        if not window.mapped or window.fullscreen:
            return
        if not self.host.button_serial_valid(window.surface, serial):
            return
        lag = (0.0, 0.0)
        if anchor is not None and window.rect.contains(*anchor) and not window.maximized:
            px, py = self.host.pointer_position  # (an anchor outside the window is not believed)
            lag = (px - anchor[0], py - anchor[1])
        if window.maximized:
            # Dragging a maximized window off its place restores its size under the pointer.
            px, py = self.host.pointer_position
            restore = window.restore or window.rect
            window.maximized = False
            ratio = (px - window.x) / max(1, window.rect.width)
            window.x = int(px - ratio * restore.width)
            window.restore = None
            window.configure((restore.width, restore.height))
        self.host.start_pointer_grab(_MoveGrab(self, window, lag))

    def titlebar_pressed(self, bar: TitleBar, sx: float, sy: float) -> None:
        """A press on a server-side title bar: close, toggle maximize (double click) or move."""
        window = next((w for w in self._windows.values() if w.titlebar is bar), None)
        if window is None:
            return
        action = window.titlebar.pressed(sx, sy)
        if self.delegate is not None:
            # Under an external WM the close button still closes; the rest is a click for it to judge,
            # and a title-bar press it may answer with begin_move while the button is held.
            if action == "close":
                window.close()
            else:
                self.delegate.window_request(window, "clicked")
                window.titlebar_press = True
                self.delegate.window_request(window, "title_bar_pressed", int(action == "maximize"))
            return
        self.focus(window)
        if action == "close":
            window.close()
        elif action == "maximize":
            self._maximize(window, not window.maximized)
        elif not window.maximized:
            self.host.start_pointer_grab(_MoveGrab(self, window))

    def _begin_resize(self, window: Window, serial: int, edges: int) -> None:
        if not window.mapped or window.fullscreen or window.maximized:
            return
        if not self.host.button_serial_valid(window.surface, serial):
            return
        r = window.rect
        window.resize_edges = edges
        window.resize_anchor = (r.x2 if edges & EDGE_LEFT else r.x, r.y2 if edges & EDGE_TOP else r.y)
        window.resizing = True
        self.host.start_pointer_grab(_ResizeGrab(self, window, edges))

    def resize_to(self, window: Window, start: Rect, edges: int, dx: float, dy: float) -> None:
        w, h = start.width, start.height
        if edges & EDGE_LEFT:
            w -= int(dx)
        elif edges & EDGE_RIGHT:
            w += int(dx)
        if edges & EDGE_TOP:
            h -= int(dy)
        elif edges & EDGE_BOTTOM:
            h += int(dy)
        mn = window.toplevel.min_size
        mx = window.toplevel.max_size
        w = max(w, mn[0], 1)
        h = max(h, mn[1], 1)
        if mx[0]:
            w = min(w, mx[0])
        if mx[1]:
            h = min(h, mx[1])
        window.configure((w, h))

    def end_resize(self, window: Window) -> None:
        window.resizing = False
        # Keep the last size the drag asked for: the client may not have committed it yet, and its
        # current geometry would send it back to an intermediate size.
        want = window.toplevel.want
        window.configure((want.width, want.height) if want.width and want.height else None)

    # Keyboard bindings ----------------------------------------------------------------------------

    def key_binding(self, keysym: int, modifiers: int) -> bool:
        """The built-in WM's Super bindings (not while an external WM runs): Super+Left/Right snap the
        active window to that half of the usable area, Super+Up maximizes it, Super+Down restores it.
        True when the key was taken."""
        if self.delegate is not None or modifiers != MOD_SUPER:
            return False
        if keysym not in (KEY_LEFT, KEY_RIGHT, KEY_UP, KEY_DOWN):
            return False
        window = self.focused
        if window is None or window.fullscreen:
            return True
        if keysym == KEY_UP:
            self._maximize(window, True)
        elif keysym == KEY_DOWN:
            if window.maximized:
                self._maximize(window, False)
            elif window.snapped is not None:
                back, window.snapped = window.snapped, None
                window.x, window.y = back.x, back.y
                window.configure((back.width, back.height))
        else:
            self.snap(window, left=keysym == KEY_LEFT)
        self.host.scene_changed()
        return True

    def snap(self, window: Window, *, left: bool) -> None:
        """Fill the left or right half of the usable area (its title bar included)."""
        if window.maximized:
            self._maximize(window, False)
            window.restore = None
        if window.snapped is None:
            window.snapped = window.rect
        area = self.usable_area()
        half = area.width // 2
        t = window.title_height
        window.x = area.x if left else area.x + half
        window.y = area.y + t
        window.configure((half if left else area.width - half, area.height - t))

    def close_focused(self) -> None:
        if self.focused is not None:
            log.debug("Alt+F4: closing %r", self.focused)
            self.focused.close()

    def cycle(self, backwards: bool) -> None:
        """Alt+Tab: focus the next window in MRU order; the order freezes until Alt is released."""
        if self._cycle is None:
            # Minimized windows are brought back, and so are those an external WM hid on the
            # workspace shown (its minimize): it is asked to activate them. Windows on other
            # workspaces are skipped.
            self._cycle = [
                w for w in self.mru if w.mapped and (w.shown or w.minimized or self._wm_hidden(w))
            ]
            self._cycle += [w for w in reversed(self.stack) if w not in self._cycle]
            self._cycle_index = 0
        if len(self._cycle) < 2:
            return
        self._cycle_index = (self._cycle_index + (-1 if backwards else 1)) % len(self._cycle)
        window = self._cycle[self._cycle_index]
        if self._wm_hidden(window) and self.delegate is not None:
            self.delegate.window_request(window, "request_activate")
        else:
            self.focus(window)

    def _wm_hidden(self, window: Window) -> bool:
        return self.delegate is not None and window.hidden and window.workspace == self.workspace

    def end_cycle(self) -> None:
        self._cycle = None

    # Output changes -------------------------------------------------------------------------------

    def output_changed(self) -> None:
        """The output was resized: re-configure maximized/fullscreen windows, keep others on screen."""
        area = self.usable_area()
        if self.delegate is not None:
            self.delegate.usable_area_changed(area)
        for w in self.windows:
            if not w.mapped:
                continue
            if w.maximized or w.fullscreen:
                w.configure()
                self._snap(w)
            else:
                g = w.rect
                w.x = max(area.x, min(w.x, area.x2 - min(g.width, area.width)))
                w.y = max(area.y + w.title_height, min(w.y, area.y2 - min(g.height, area.height)))
        self.host.scene_changed()

    # Restacking asked by applications (X programs' ConfigureRequest with a stack mode) --------------

    def restack_requested(
        self, toplevel: ManagedToplevel, how: StackRequest, sibling: ManagedToplevel | None = None
    ) -> bool:
        """Put the window where it asks among the windows shown (stacking.py), the focus untouched.
        True when the stack changed."""
        window = self._windows.get(toplevel)
        sib = self._windows.get(sibling) if sibling is not None else None
        if window is None or (sibling is not None and sib is None):
            return False
        order = restacked(self.stack, window, how, sib, lambda a, b: not a.frame.intersect(b.frame).empty)
        if order is None:
            return False
        before = list(self.stack)
        self.stack[:] = order
        keep_transients_above(self.stack, self._parent_window)  # (a dialog asking to go under stays)
        if self.stack == before:
            return False
        self.host.scene_changed()
        return True
