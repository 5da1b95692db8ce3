"""A toplevel as a window manager sees it (``Window``), whoever made it (``ManagedToplevel``: an
xdg_toplevel or an X window), and what an external window manager is told (``WmDelegate``).

``Window`` keeps what the WM decided: its position, states, stacking-independent visibility (an
external WM's hidden windows and workspaces). Its owner is the built-in ``wm.FloatingWM``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from wayray.compositor.geometry import Rect
from wayray.compositor.titlebar import HEIGHT as TITLE_HEIGHT
from wayray.compositor.titlebar import TitleBar
from wayray.compositor.xdg_popup import PopupRole
from wayray.compositor.xdg_shell import ToplevelConfigure

if TYPE_CHECKING:
    from wayray.compositor.output import Output
    from wayray.compositor.surface import Surface


class WindowOwner(Protocol):
    """What a window asks of its window manager (``wm.FloatingWM``)."""

    output: Output
    focused: Window | None
    workspace: int

    def usable_area(self) -> Rect: ...


class WmDelegate(Protocol):
    """An external window manager (``wm_protocol``): what the built-in one tells it and leaves to it
    while it runs. Every hook returns at once; the compositor never waits for the external WM."""

    def window_new(self, window: Window) -> None: ...

    def window_changed(self, window: Window) -> None:
        """Its properties (title, app id, parent, size hints, size) may have changed."""

    def window_mapped(self, window: Window, mapped: bool) -> None: ...

    def window_gone(self, window: Window) -> None: ...

    def window_request(self, window: Window, request: str, *args: int) -> None:
        """The application asks (``request_maximized``, ``request_fullscreen``, ``request_minimize``,
        ``request_activate``, ``request_move``, ``request_resize``), was clicked (``clicked``) or
        became the active window (``activated``)."""

    def usable_area_changed(self, area: Rect) -> None: ...


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

    def __init__(self, wm: WindowOwner, toplevel: ManagedToplevel) -> None:
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
        # What an external WM decides besides geometry (wm_protocol): kept when it goes away.
        self.hidden = False
        self.workspace = 0
        self.wm_placed = False  # an external WM gave it a position before it was mapped
        self.wm_size: tuple[int, int] | None = None  # the size it asked for before the first configure
        self.initial_done = False  # the initial configure went out (xdg-shell allows none before)
        self.wm_handle: object = None  # its wayray_wm_window_v1, while an external WM runs
        self.grab_serial: int | None = None  # a move/resize the application asked for, for an external WM
        # Where the pointer was when the program's own drag began (an X program's _NET_WM_MOVERESIZE
        # says): the window catches up with the pointer's motion before the WM heard of the drag.
        self.move_anchor: tuple[int, int] | None = None
        self.titlebar_press = False  # its server-side title bar was pressed: an external WM may move it
        self.snapped: Rect | None = None  # where it was before Super+Left/Right snapped it

    @property
    def shown(self) -> bool:
        """Drawn and given input when mapped: not minimized, hidden, or on another workspace."""
        return not self.minimized and not self.hidden and self.workspace == self.wm.workspace

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
            want = self.toplevel.want
            if self.mapped and self.toplevel.redrawing and want.width and want.height:
                size = (want.width, want.height)  # a size asked for and not drawn yet stays asked
            else:
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
