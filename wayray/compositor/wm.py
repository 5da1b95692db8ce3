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
from wayray.compositor.titlebar import HEIGHT as TITLE_HEIGHT
from wayray.compositor.titlebar import TitleBar
from wayray.compositor.xdg_popup import PopupRole
from wayray.compositor.xdg_shell import ToplevelConfigure

if TYPE_CHECKING:
    from wayray.compositor.output import Output
    from wayray.compositor.surface import Surface

log = logging.getLogger(__name__)

CASCADE_STEP = 32
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


class ManagedToplevel(Protocol):
    """A toplevel the WM manages, whoever it comes from: an xdg_toplevel (``xdg_shell.ToplevelRole``)
    or an X window (``xwm.XWindow``)."""

    @property
    def alive(self) -> bool: ...

    @property
    def label(self) -> str:
        """What logs call it (title, app id or object id)."""

    @property
    def title(self) -> str: ...

    @property
    def app_id(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def surface(self) -> Surface | None: ...

    @property
    def popups(self) -> list[PopupRole]: ...

    @property
    def parent(self) -> ManagedToplevel | None:
        """The window it is a dialog of (placed over it)."""

    @property
    def geometry(self) -> Rect:
        """Window geometry relative to the surface origin."""

    @property
    def min_size(self) -> tuple[int, int]: ...

    @property
    def max_size(self) -> tuple[int, int]:
        """0 = no limit."""

    @property
    def server_side_decorated(self) -> bool:
        """The compositor draws its title bar (when not fullscreen)."""

    @property
    def acked_state(self) -> ToplevelConfigure | None:
        """The last configure the client acknowledged."""

    @property
    def want(self) -> ToplevelConfigure:
        """The last configure asked."""

    @property
    def redrawing(self) -> bool:
        """Asked for a configure it has not drawn yet."""

    def configure(self, want: ToplevelConfigure) -> None:
        """Ask for ``want`` (size of the window geometry, states)."""

    def moved(self, x: int, y: int) -> None:
        """The WM put the window geometry's origin at layout (x, y) (X windows must be told)."""

    def send_close(self) -> None: ...

    def activated(self) -> None:
        """It got the focus (xdg: a ping to see it responds; X: SetInputFocus, WM_TAKE_FOCUS)."""

    def raised(self) -> None:
        """It went to the top of the stack."""


class Window:
    """A toplevel as the WM sees it: position (of its window geometry), stacking and states."""

    def __init__(self, wm: FloatingWM, toplevel: ManagedToplevel) -> None:
        self.wm = wm
        self.toplevel = toplevel
        self._x = 0
        self._y = 0
        self.placed = False
        self.mapped = False
        self.maximized = False
        self.fullscreen = False
        self.minimized = False
        self.resizing = False
        self.restore: Rect | None = None
        self.resize_edges = 0
        self.resize_anchor = (0, 0)  # the corner that stays put: (right or left x, bottom or top y)
        self.titlebar = TitleBar(self)

    def __repr__(self) -> str:
        return f"<window {self.toplevel.label!r}>"

    @property
    def x(self) -> int:
        """Layout position of the window geometry's origin."""
        return self._x

    @x.setter
    def x(self, value: int) -> None:
        if value != self._x:
            self._x = value
            self.toplevel.moved(self._x, self._y)

    @property
    def y(self) -> int:
        return self._y

    @y.setter
    def y(self, value: int) -> None:
        if value != self._y:
            self._y = value
            self.toplevel.moved(self._x, self._y)

    @property
    def surface(self) -> Surface | None:
        return self.toplevel.surface

    @property
    def popups(self) -> list[PopupRole]:
        return self.toplevel.popups

    @property
    def geometry(self) -> Rect:
        """Window geometry relative to the surface origin."""
        return self.toplevel.geometry

    @property
    def rect(self) -> Rect:
        """Window geometry in layout coordinates."""
        g = self.geometry
        return Rect(self.x, self.y, g.width, g.height)

    def surface_origin(self) -> tuple[int, int]:
        g = self.geometry
        return (self.x - g.x, self.y - g.y)

    @property
    def title(self) -> str:
        return self.toplevel.title

    @property
    def app_id(self) -> str:
        return self.toplevel.app_id

    @property
    def activated(self) -> bool:
        return self.wm.focused is self

    @property
    def server_decorated(self) -> bool:
        """The compositor draws this window's title bar (xdg-decoration server_side, not fullscreen)."""
        return self.toplevel.server_side_decorated and not self.fullscreen

    @property
    def title_height(self) -> int:
        return TITLE_HEIGHT if self.server_decorated else 0

    @property
    def frame(self) -> Rect:
        """The window with its server-side title bar, in layout coordinates."""
        r = self.rect
        t = self.title_height
        return Rect(r.x, r.y - t, r.width, r.height + t)

    def configure(self, size: tuple[int, int] | None = None) -> None:
        """Tell the client the current states, with ``size`` or the size it has now."""
        if not self.toplevel.alive:
            return
        if self.fullscreen:
            out = self.wm.output.logical
            size = (out.width, out.height)
        elif self.maximized:
            area = self.wm.usable_area()
            size = (area.width, area.height - self.title_height)
        elif size is None:
            size = (self.geometry.width, self.geometry.height) if self.mapped else (0, 0)
        self.toplevel.configure(
            ToplevelConfigure(
                width=max(0, size[0]),
                height=max(0, size[1]),
                maximized=self.maximized,
                fullscreen=self.fullscreen,
                activated=self.activated,
                resizing=self.resizing,
            )
        )

    def close(self) -> None:
        self.toplevel.send_close()


class _MoveGrab:
    """Dragging a window by the pointer: its top-left corner follows it."""

    kind = GrabKind.MOVE

    def __init__(self, wm: FloatingWM, window: Window) -> None:
        self.wm = wm
        self.window = window
        self.start = window.rect

    def motion(self, dx: float, dy: float) -> None:
        self.window.x = self.start.x + int(dx)
        self.window.y = self.start.y + int(dy)
        self.wm.host.scene_changed()

    def released(self) -> None:
        pass


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

    @property
    def windows(self) -> list[Window]:
        """Every toplevel's window, mapped or not, oldest first."""
        return list(self._windows.values())

    # Window life (the toplevel hooks of xdg_shell.XdgShellHost) -----------------------------------

    def new_toplevel(self, toplevel: ManagedToplevel) -> Window:
        w = self._windows[toplevel] = Window(self, toplevel)
        return w

    def toplevel_initial_commit(self, toplevel: ManagedToplevel) -> None:
        self._windows[toplevel].configure()

    def toplevel_mapped(self, toplevel: ManagedToplevel) -> None:
        window = self._windows[toplevel]
        window.mapped = True
        if not window.placed:
            self._place(window)
            window.placed = True
        if window.maximized or window.fullscreen:
            self._snap(window)
        if not window.minimized:
            self.stack.append(window)
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
        self.host.scene_changed()

    def toplevel_unmapped(self, toplevel: ManagedToplevel) -> None:
        self._unmap(self._windows[toplevel])

    def _unmap(self, window: Window) -> None:
        window.mapped = False
        window.placed = False
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

    def focus(self, window: Window | None) -> None:
        old = self.focused
        if window is not None and (not window.mapped or not window.toplevel.alive):
            window = None
        self.focused = window
        if window is not None:
            if window.minimized:
                self._minimize(window, False)
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

    def _parent_window(self, window: Window) -> Window | None:
        parent = window.toplevel.parent
        return self._windows.get(parent) if parent is not None else None

    def _focus_next(self) -> None:
        for w in self.mru:
            if w.mapped and not w.minimized:
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
            self.focus(window)

    # Requests from clients (the request hooks of xdg_shell.XdgShellHost) ---------------------------

    def maximize_requested(self, toplevel: ManagedToplevel, on: bool) -> None:
        self._maximize(self._windows[toplevel], on)

    def fullscreen_requested(self, toplevel: ManagedToplevel, on: bool) -> None:
        self._fullscreen(self._windows[toplevel], on)

    def minimize_requested(self, toplevel: ManagedToplevel) -> None:
        self._minimize(self._windows[toplevel], True)

    def activate_requested(self, toplevel: ManagedToplevel) -> None:
        """The client (or a pager) asks for it to be the active window: raised, focused, restored."""
        window = self._windows.get(toplevel)
        if window is not None and window.mapped:
            self.focus(window)

    def move_requested(self, toplevel: ManagedToplevel, serial: int) -> None:
        self._begin_move(self._windows[toplevel], serial)

    def resize_requested(self, toplevel: ManagedToplevel, serial: int, edges: int) -> None:
        self._begin_resize(self._windows[toplevel], serial, edges)

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
        if on:
            if window in self.stack:
                self.stack.remove(window)
            if self.focused is window:
                self.focused = None
                self._focus_next()
        elif window.mapped and window not in self.stack:
            self.stack.append(window)
        self.host.scene_changed()

    # Interactive move and resize ------------------------------------------------------------------

    def _begin_move(self, window: Window, serial: int) -> None:
        if not window.mapped or window.fullscreen:
            return
        if not self.host.button_serial_valid(window.surface, serial):
            return
        if window.maximized:
            # Dragging a maximized window off its place restores its size under the pointer.
            px, py = self.host.pointer_position
            restore = window.restore or window.rect
            window.maximized = False
            ratio = (px - window.x) / max(1, window.rect.width)
            window.x = int(px - ratio * restore.width)
            window.restore = None
            window.configure((restore.width, restore.height))
        self.host.start_pointer_grab(_MoveGrab(self, window))

    def titlebar_pressed(self, bar: TitleBar, sx: float, sy: float) -> None:
        """A press on a server-side title bar: close, toggle maximize (double click) or move."""
        window = next((w for w in self._windows.values() if w.titlebar is bar), None)
        if window is None:
            return
        self.focus(window)
        action = window.titlebar.pressed(sx, sy)
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

    def close_focused(self) -> None:
        if self.focused is not None:
            log.debug("Alt+F4: closing %r", self.focused)
            self.focused.close()

    def cycle(self, backwards: bool) -> None:
        """Alt+Tab: focus the next window in MRU order; the order freezes until Alt is released."""
        if self._cycle is None:
            self._cycle = [w for w in self.mru if w.mapped]
            self._cycle += [w for w in reversed(self.stack) if w not in self._cycle]
            self._cycle_index = 0
        if len(self._cycle) < 2:
            return
        self._cycle_index = (self._cycle_index + (-1 if backwards else 1)) % len(self._cycle)
        self.focus(self._cycle[self._cycle_index])

    def end_cycle(self) -> None:
        self._cycle = None

    # Output changes -------------------------------------------------------------------------------

    def output_changed(self) -> None:
        """The output was resized: re-configure maximized/fullscreen windows, keep others on screen."""
        area = self.usable_area()
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
