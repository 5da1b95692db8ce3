"""One X window as the X window manager sees it (``xwm.Xwm``): its X state, and once paired the
role of its ``wl_surface``. An ``XWindow`` is a ``wm.ManagedToplevel``: the WM asks it for sizes and
states, and it passes them on to X through its ``Xwm`` (docs/xwayland.md §5).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from wayray.compositor.geometry import Rect
from wayray.compositor.surface import Role, Surface
from wayray.compositor.xdg_shell import ToplevelConfigure
from wayray.compositor.xprops import MAX_SIZE

if TYPE_CHECKING:
    from wayray.compositor.xdg_popup import PopupRole

NO_CONFIGURE = ToplevelConfigure(0, 0, False, False, False, False)


class _Loop(Protocol):
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...


class XwmOps(Protocol):
    """What an X window asks of its window manager (``xwm.Xwm``)."""

    windows: dict[int, XWindow]
    focused: XWindow | None

    @property
    def host(self) -> _Loop: ...

    def configure_window(
        self,
        win: XWindow,
        *,
        pos: tuple[int, int] | None = None,
        size: tuple[int, int] | None = None,
        always_notify: bool = False,
    ) -> None: ...

    def set_net_wm_state(self, win: XWindow, want: ToplevelConfigure) -> None: ...

    def focus_window(self, win: XWindow | None) -> None: ...

    def close_window(self, win: XWindow) -> None: ...

    def raise_window(self, win: XWindow) -> None: ...

    def surface_committed(self, win: XWindow) -> None: ...

    def surface_gone(self, win: XWindow) -> None: ...


class XWindow(Role):
    """One X window: its X state and, once paired, its surface (whose role it is)."""

    name = "xwayland_surface"

    def __init__(self, xwm: XwmOps, wid: int, rect: Rect, override_redirect: bool) -> None:
        self.xwm = xwm
        self.wid = wid
        self.x, self.y = rect.x, rect.y  # where X has it (root = layout coordinates)
        self.width, self.height = rect.width, rect.height
        self.override_redirect = override_redirect
        self.alive = True
        self.title = ""
        self.app_id = ""
        self.pid = 0
        self.protocols: set[int] = set()
        self.transient_for: int | None = None
        self.min_size = (0, 0)
        self.max_size = (0, 0)
        self.surface: Surface | None = None
        self.x_mapped = False  # X says it is mapped
        self.managed = False  # handed to the WM (between new_toplevel and toplevel_destroyed)
        self.wm_mapped = False  # the WM shows it (mapped in X, paired, with content)
        self.want = NO_CONFIGURE
        self.acked_state: ToplevelConfigure | None = None
        self.popups: list[PopupRole] = []
        self._move_pending = False
        self._wm_pos = (rect.x, rect.y)
        #: The client draws its own frame (_MOTIF_WM_HINTS without decorations: GTK's CSD) ...
        self.undecorated = False
        #: WM_HINTS input: whether the WM sets X's focus on it (False: it takes the focus itself)
        self.input_hint = True
        self.asked_size: tuple[int, int] | None = None  # the last size the WM asked X for
        self.above_sibling = 0  # the window X has just below it (its last ConfigureNotify; 0: none)
        #: ... with a shadow around it this wide (_GTK_FRAME_EXTENTS: left, right, top, bottom).
        self.extents = (0, 0, 0, 0)

    def __repr__(self) -> str:
        return f"<X window 0x{self.wid:x} {self.title!r}>"

    # wm.ManagedToplevel -----------------------------------------------------------------------

    @property
    def label(self) -> str:
        return self.title or self.app_id or f"X window 0x{self.wid:x}"

    @property
    def parent(self) -> XWindow | None:
        if self.transient_for is None:
            return None
        parent = self.xwm.windows.get(self.transient_for)
        return parent if parent is not None and parent.managed and parent is not self else None

    @property
    def size(self) -> tuple[int, int]:
        """The X window's size, or the one the WM asked for while X has not confirmed it yet."""
        return self.asked_size if self.asked_size is not None else (self.width, self.height)

    @property
    def geometry(self) -> Rect:
        left, right, top, bottom = self.extents
        w, h = self.size
        return Rect(left, top, max(1, w - left - right), max(1, h - top - bottom))

    @property
    def server_side_decorated(self) -> bool:
        return not self.undecorated

    @property
    def redrawing(self) -> bool:
        return False

    def configure(self, want: ToplevelConfigure) -> None:
        self.want = want
        self.acked_state = want  # X has no acknowledgement: what was asked is what holds
        left, right, top, bottom = self.extents
        w = want.width + left + right if want.width else self.size[0]
        h = want.height + top + bottom if want.height else self.size[1]
        w, h = clamp_size(w, h, self.min_size, self.max_size)
        if (w, h) != self.size:
            self.xwm.configure_window(self, size=(w, h))
        self.xwm.set_net_wm_state(self, want)
        if not want.activated and self.xwm.focused is self:
            self.xwm.focus_window(None)  # the keyboard went to another (a Wayland) window

    def moved(self, x: int, y: int) -> None:
        self._wm_pos = (x - self.extents[0], y - self.extents[2])  # the X window's, shadow included
        if not self._move_pending:
            self._move_pending = True
            self.xwm.host.loop.call_soon(self._send_move)

    def _send_move(self) -> None:
        self._move_pending = False
        if self.alive and (self.x, self.y) != self._wm_pos:
            self.xwm.configure_window(self, pos=self._wm_pos)

    def send_close(self) -> None:
        self.xwm.close_window(self)

    def activated(self) -> None:
        self.xwm.focus_window(self)

    def raised(self) -> None:
        self.xwm.raise_window(self)

    # Role (of its wl_surface) -----------------------------------------------------------------

    def committed(self) -> None:
        self.xwm.surface_committed(self)

    def surface_destroyed(self) -> None:
        self.xwm.surface_gone(self)


def clamp_size(w: int, h: int, mn: tuple[int, int], mx: tuple[int, int]) -> tuple[int, int]:
    w, h = max(w, mn[0], 1), max(h, mn[1], 1)
    if mx[0]:
        w = min(w, mx[0])
    if mx[1]:
        h = min(h, mx[1])
    return min(w, MAX_SIZE), min(h, MAX_SIZE)
