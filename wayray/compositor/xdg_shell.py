"""xdg_wm_base, xdg_positioner, xdg_surface, xdg_toplevel and xdg_popup (xdg-shell up to version 6).

The protocol state machine lives here: roles, configure/ack serials, double-buffered window geometry
and size limits, and every error the specification requires. What windows look like and where they
go (placement, focus, maximize, interactive move/resize) is the window manager's (``wm.py``); the
shell reaches it, the seat (popup grabs) and the clock through ``XdgShellHost``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pywayland.protocol.xdg_shell import XdgSurface, XdgToplevel, XdgWmBase

from wayray.compositor.geometry import Rect
from wayray.compositor.positioner import Positioner
from wayray.compositor.surface import Role, Surface, SurfaceState
from wayray.compositor.xdg_popup import PopupHost, PopupRole
from wayray.wayland.server import NewId, ProtocolError, Resource

if TYPE_CHECKING:
    from wayray.compositor.output import OutputResource
    from wayray.compositor.seat import SeatResource

log = logging.getLogger(__name__)

PING_TIMEOUT = 10.0


class ShellWindow(Protocol):
    """The window manager's window for a toplevel, as the shell sees it: where it is."""

    @property
    def x(self) -> int:
        """Layout position of the window geometry's origin (the parent origin of its popups)."""

    @property
    def y(self) -> int: ...


class XdgShellHost(PopupHost, Protocol):
    """What xdg-shell needs of the compositor (``Core``): the window manager, the seat, the clock.

    The toplevel hooks are the window manager's (as Smithay's ``XdgShellHandler``); a toplevel's
    hooks run between ``new_toplevel`` and ``toplevel_destroyed``.
    """

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def usable_area(self) -> Rect:
        """What maximized windows get (xdg_toplevel.configure_bounds)."""

    def new_toplevel(self, toplevel: ToplevelRole) -> ShellWindow: ...

    def toplevel_initial_commit(self, toplevel: ToplevelRole) -> None:
        """Its first commit: set the states it should start in (the initial configure follows)."""

    def toplevel_mapped(self, toplevel: ToplevelRole) -> None: ...

    def toplevel_committed(self, toplevel: ToplevelRole) -> None:
        """A commit of a mapped toplevel (after ``toplevel_mapped`` for the one that maps it)."""

    def toplevel_unmapped(self, toplevel: ToplevelRole) -> None: ...

    def toplevel_destroyed(self, toplevel: ToplevelRole) -> None: ...

    def move_requested(self, toplevel: ToplevelRole, serial: int) -> None: ...

    def resize_requested(self, toplevel: ToplevelRole, serial: int, edges: int) -> None: ...

    def maximize_requested(self, toplevel: ToplevelRole, on: bool) -> None: ...

    def fullscreen_requested(self, toplevel: ToplevelRole, on: bool) -> None: ...

    def minimize_requested(self, toplevel: ToplevelRole) -> None: ...


class WmBase(Resource):
    interface = XdgWmBase

    def __init__(self, new_id: NewId, host: XdgShellHost) -> None:
        super().__init__(new_id)
        self.host = host
        self.surfaces: list[XdgSurfaceRole] = []
        self.ping_serial: int | None = None
        self.unresponsive = False
        self._ping_timer: asyncio.TimerHandle | None = None
        #: Round trips under way (``round_trip``): ping serial -> what to call, and its timeout.
        self._round_trips: dict[int, tuple[Callable[[], None], asyncio.TimerHandle]] = {}

    def destroy(self) -> None:
        if any(s.alive for s in self.surfaces):
            raise ProtocolError(
                self, XdgWmBase.error.defunct_surfaces, "xdg_wm_base destroyed before its surfaces"
            )

    def create_positioner(self, id: NewId) -> None:
        Positioner(id)

    def get_xdg_surface(self, id: NewId, surface: Surface) -> None:
        if surface.role is not None or surface.role_name not in (None, "xdg_toplevel", "xdg_popup"):
            what = surface.role_name if surface.role is None else surface.role.name
            XdgSurfaceRole(id, self, None)  # the id must exist before the error
            raise ProtocolError(
                self, XdgWmBase.error.role, f"wl_surface@{surface.id} already has role {what}"
            )
        xs = XdgSurfaceRole(id, self, surface)
        if surface.has_content or (surface.pending.buffer_attached and surface.pending.buffer is not None):
            raise ProtocolError(
                xs, XdgSurface.error.unconfigured_buffer, "xdg_surface created for a surface with a buffer"
            )
        surface.role = xs
        self.surfaces.append(xs)

    def pong(self, serial: int) -> None:
        trip = self._round_trips.pop(serial, None)
        if trip is not None:
            trip[1].cancel()
            trip[0]()
            return
        if serial == self.ping_serial:
            self.ping_serial = None
            if self.unresponsive:
                log.info("%r responds again", self.client)
            self.unresponsive = False

    def ping(self) -> None:
        """Ping the client; it is marked unresponsive if no pong arrives in time."""
        if self.ping_serial is not None:
            return
        serial = self.ping_serial = self.display.next_serial()
        self.post("ping", serial)

        def check() -> None:
            self._ping_timer = None
            if self.alive and self.ping_serial == serial:
                self.unresponsive = True
                log.warning("%r did not answer a ping in %.0f s", self.client, PING_TIMEOUT)

        self._ping_timer = self.host.loop.call_later(PING_TIMEOUT, check)

    def round_trip(self, then: Callable[[], None]) -> None:
        """Call ``then`` once the client has read everything sent to it before now: a ping, whose pong
        comes after every request the client made before it read the ping (a client answers at once,
        in the order it reads). A client that does not answer within PING_TIMEOUT is taken to have
        read it anyway (what waits on it must not wait for ever), and so is one that goes away."""
        serial = self.display.next_serial()

        def late() -> None:
            trip = self._round_trips.pop(serial, None)
            if trip is not None:
                log.warning(
                    "%r did not answer a ping in %.0f s: not waiting for it", self.client, PING_TIMEOUT
                )
                trip[0]()

        self._round_trips[serial] = (then, self.host.loop.call_later(PING_TIMEOUT, late))
        self.post("ping", serial)

    def on_destroy(self) -> None:
        if self._ping_timer is not None:  # it would keep the client's objects for PING_TIMEOUT
            self._ping_timer.cancel()
            self._ping_timer = None
        trips, self._round_trips = self._round_trips, {}
        for then, timer in trips.values():
            timer.cancel()
            then()


@dataclass
class _Geometry:
    rect: Rect | None = None
    set: bool = False


class XdgSurfaceRole(Resource, Role):
    """xdg_surface: the Role object of its wl_surface; its toplevel or popup does the rest."""

    interface = XdgSurface
    name = "xdg_surface"

    def __init__(self, new_id: NewId, wm_base: WmBase, surface: Surface | None) -> None:
        super().__init__(new_id)
        self.wm_base = wm_base
        self.host = wm_base.host
        self.surface = surface
        self.role_object: ToplevelRole | PopupRole | None = None
        self.pending_geometry = _Geometry()
        self.geometry: Rect | None = None  # as set by the client (None: the surface's bounds)
        self.sent_serials: list[int] = []
        self.configured = False  # the client acked a configure since the last (re)map cycle began
        self.initial_commit_done = False
        self.mapped = False
        self._configure_scheduled = False
        self.acked_serial: int | None = None
        #: The newest configure sent, and the acked one the client's last commit went with: equal when
        #: the client has drawn what it was last asked for.
        self.last_sent_serial: int | None = None
        self.committed_serial: int | None = None

    # Requests -------------------------------------------------------------------------------------

    def destroy(self) -> None:
        if self.role_object is not None and self.role_object.alive:
            raise ProtocolError(
                self,
                XdgSurface.error.defunct_role_object,
                "xdg_surface destroyed before its toplevel or popup",
            )

    def _check_role_free(self, name: str) -> Surface:
        if self.surface is None or not self.surface.alive:
            raise ProtocolError(self, XdgSurface.error.not_constructed, "the wl_surface is gone")
        if self.role_object is not None:
            raise ProtocolError(
                self, XdgSurface.error.already_constructed, "xdg_surface already has a role object"
            )
        if self.surface.role_name not in (None, name):
            raise ProtocolError(
                self.wm_base,
                XdgWmBase.error.role,
                f"wl_surface@{self.surface.id} already was an {self.surface.role_name}",
            )
        return self.surface

    def get_toplevel(self, id: NewId) -> None:
        surface = self._check_role_free("xdg_toplevel")
        surface.role_name = "xdg_toplevel"
        self.role_object = ToplevelRole(id, self)

    def get_popup(self, id: NewId, parent: XdgSurfaceRole | None, positioner: Positioner) -> None:
        surface = self._check_role_free("xdg_popup")
        popup = PopupRole(id, self, positioner.rules)
        if not positioner.rules.complete:
            raise ProtocolError(
                self.wm_base,
                XdgWmBase.error.invalid_positioner,
                "the positioner lacks a size or an anchor rect",
            )
        surface.role_name = "xdg_popup"
        if parent is not None:
            if parent.role_object is None:
                raise ProtocolError(
                    self.wm_base, XdgWmBase.error.invalid_popup_parent, "the popup's parent has no role"
                )
            popup.set_parent(parent)
        self.role_object = popup

    def set_window_geometry(self, x: int, y: int, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ProtocolError(
                self, XdgSurface.error.invalid_size, f"window geometry {width}x{height} is empty"
            )
        self.pending_geometry = _Geometry(Rect(x, y, width, height), True)

    def ack_configure(self, serial: int) -> None:
        if serial not in self.sent_serials:
            raise ProtocolError(
                self, XdgSurface.error.invalid_serial, f"serial {serial} was never sent or already acked"
            )
        self.sent_serials = self.sent_serials[self.sent_serials.index(serial) + 1 :]
        self.configured = True
        self.acked_serial = serial
        if self.role_object is not None:
            self.role_object.acked(serial)

    # Role hooks -----------------------------------------------------------------------------------

    def precommit(self, state: SurfaceState) -> None:
        if self.role_object is None or not self.role_object.alive:
            raise ProtocolError(
                self, XdgSurface.error.not_constructed, "commit before get_toplevel or get_popup"
            )
        attaches = state.buffer_attached and state.buffer is not None
        if attaches and not self.configured:
            raise ProtocolError(
                self,
                XdgSurface.error.unconfigured_buffer,
                "a buffer was attached before the first configure was acked",
            )
        self.role_object.precommit(state)

    def committed(self) -> None:
        self.committed_serial = self.acked_serial
        if self.pending_geometry.set:
            self.geometry = self.pending_geometry.rect
            self.pending_geometry = _Geometry()
        role = self.role_object
        surface = self.surface
        if role is None or surface is None:
            return
        if not surface.has_content:
            if self.mapped:
                self.mapped = False
                self.configured = False
                self.initial_commit_done = False
                role.unmapped()
            if not self.initial_commit_done:
                self.initial_commit_done = True
                role.initial_commit()
            return
        if not self.mapped:
            self.mapped = True
            role.mapped()
        role.committed()

    def surface_destroyed(self) -> None:
        if self.mapped and self.role_object is not None:
            self.mapped = False
            self.role_object.unmapped()
        self.surface = None

    def on_destroy(self) -> None:
        if self.surface is not None:
            self.surface.clear_role(self)
        if self in self.wm_base.surfaces:
            self.wm_base.surfaces.remove(self)

    # Configure ------------------------------------------------------------------------------------

    @property
    def redrawing(self) -> bool:
        """A configure is on its way or was sent, and the client has not committed after acking it."""
        return self._configure_scheduled or (
            self.last_sent_serial is not None and self.committed_serial != self.last_sent_serial
        )

    def schedule_configure(self) -> None:
        """Send the role's configure plus xdg_surface.configure soon (changes in one turn coalesce)."""
        if not self._configure_scheduled:
            self._configure_scheduled = True
            self.host.loop.call_soon(self._scheduled_configure)

    def _scheduled_configure(self) -> None:
        if self._configure_scheduled:  # not already sent by configure_now()
            self._send_configure()

    def configure_now(self) -> None:
        """Send the configure within the current request (the initial one answers the commit at once,
        as weston does, so a client's roundtrip after its first commit already sees it)."""
        self._send_configure()

    def _send_configure(self) -> None:
        self._configure_scheduled = False
        if not self.alive or self.role_object is None or not self.role_object.alive:
            return
        serial = self.display.next_serial()
        self.role_object.send_configure(serial)
        self.sent_serials.append(serial)
        self.last_sent_serial = serial
        self.post("configure", serial)

    # As a popup parent ----------------------------------------------------------------------------

    @property
    def popups(self) -> list[PopupRole]:
        role = self.role_object
        if isinstance(role, PopupRole):
            return role.children
        if isinstance(role, ToplevelRole):
            return role.popups
        return []

    @property
    def popup_parent_mapped(self) -> bool:
        return self.mapped

    def geometry_origin(self) -> tuple[int, int]:
        role = self.role_object
        if isinstance(role, PopupRole):
            return role.origin()
        if isinstance(role, ToplevelRole):
            return (role.window.x, role.window.y)
        return (0, 0)

    @property
    def window_geometry(self) -> Rect:
        """The window geometry, defaulting to the surface's bounds (subsurfaces ignored)."""
        s = self.surface
        bounds = Rect(0, 0, s.width, s.height) if s is not None else Rect(0, 0, 0, 0)
        if self.geometry is None:
            return bounds
        return self.geometry


@dataclass(frozen=True)
class ToplevelConfigure:
    """What one configure asked of the client."""

    width: int
    height: int
    maximized: bool
    fullscreen: bool
    activated: bool
    resizing: bool


class ToplevelState:
    """Toplevel states, as xdg_toplevel.state values."""

    MAXIMIZED = 1
    FULLSCREEN = 2
    RESIZING = 3
    ACTIVATED = 4
    SUSPENDED = 9


class ToplevelRole(Resource):
    interface = XdgToplevel

    def __init__(self, new_id: NewId, xdg_surface: XdgSurfaceRole) -> None:
        super().__init__(new_id)
        self.xdg_surface = xdg_surface
        self.host = xdg_surface.host
        self.title = ""
        self.app_id = ""
        self.parent: ToplevelRole | None = None
        self.children: list[ToplevelRole] = []
        self.popups: list[PopupRole] = []
        self.pending_min: tuple[int, int] | None = None
        self.pending_max: tuple[int, int] | None = None
        self.min_size = (0, 0)
        self.max_size = (0, 0)
        # What the next configure will ask (set by the WM) and what was last sent/acked.
        self.want = ToplevelConfigure(0, 0, False, False, False, False)
        self.sent: dict[int, ToplevelConfigure] = {}
        self.acked_state: ToplevelConfigure | None = None
        self.decoration: Any = None  # zxdg_toplevel_decoration_v1, if the client asked for one
        self.window = self.host.new_toplevel(self)

    @property
    def surface(self) -> Surface | None:
        return self.xdg_surface.surface

    # As the window manager's ManagedToplevel ------------------------------------------------------

    @property
    def label(self) -> str:
        return self.title or self.app_id or f"xdg_toplevel@{self.id}"

    @property
    def pid(self) -> int:
        return self.client.pid

    @property
    def geometry(self) -> Rect:
        return self.xdg_surface.window_geometry

    @property
    def server_side_decorated(self) -> bool:
        deco = self.decoration
        return deco is not None and deco.alive and deco.server_side

    @property
    def redrawing(self) -> bool:
        return self.xdg_surface.redrawing

    def moved(self, x: int, y: int) -> None:
        pass  # a Wayland client never learns where its window is

    def activated(self) -> None:
        self.xdg_surface.wm_base.ping()

    def raised(self) -> None:
        pass

    # Requests -------------------------------------------------------------------------------------

    def destroy(self) -> None:
        pass

    def set_parent(self, parent: ToplevelRole | None) -> None:
        p = parent
        while p is not None:
            if p is self:
                raise ProtocolError(self, XdgToplevel.error.invalid_parent, "set_parent would make a loop")
            p = p.parent
        if self.parent is not None and self in self.parent.children:
            self.parent.children.remove(self)
        self.parent = parent
        if parent is not None:
            parent.children.append(self)

    def set_title(self, title: str) -> None:
        self.title = title

    def set_app_id(self, app_id: str) -> None:
        self.app_id = app_id

    def show_window_menu(self, seat: SeatResource, serial: int, x: int, y: int) -> None:
        pass  # no window menu in the built-in WM

    def move(self, seat: SeatResource, serial: int) -> None:
        self.host.move_requested(self, serial)

    def resize(self, seat: SeatResource, serial: int, edges: int) -> None:
        if edges not in (1, 2, 4, 5, 6, 8, 9, 10):
            raise ProtocolError(self, XdgToplevel.error.invalid_resize_edge, f"no resize edge {edges}")
        self.host.resize_requested(self, serial, edges)

    def set_max_size(self, width: int, height: int) -> None:
        if width < 0 or height < 0:
            raise ProtocolError(
                self, XdgToplevel.error.invalid_size, f"max size {width}x{height} is negative"
            )
        self.pending_max = (width, height)

    def set_min_size(self, width: int, height: int) -> None:
        if width < 0 or height < 0:
            raise ProtocolError(
                self, XdgToplevel.error.invalid_size, f"min size {width}x{height} is negative"
            )
        self.pending_min = (width, height)

    def set_maximized(self) -> None:
        self.host.maximize_requested(self, True)

    def unset_maximized(self) -> None:
        self.host.maximize_requested(self, False)

    def set_fullscreen(self, output: OutputResource | None) -> None:
        self.host.fullscreen_requested(self, True)

    def unset_fullscreen(self) -> None:
        self.host.fullscreen_requested(self, False)

    def set_minimized(self) -> None:
        self.host.minimize_requested(self)

    # Role hooks (called by XdgSurfaceRole) --------------------------------------------------------

    def precommit(self, state: SurfaceState) -> None:
        mn = self.pending_min if self.pending_min is not None else self.min_size
        mx = self.pending_max if self.pending_max is not None else self.max_size
        for i in (0, 1):
            if mx[i] and mn[i] > mx[i]:
                raise ProtocolError(
                    self, XdgToplevel.error.invalid_size, f"min size {mn} exceeds max size {mx}"
                )

    def initial_commit(self) -> None:
        if self.pending_min is not None:
            self.min_size, self.pending_min = self.pending_min, None
        if self.pending_max is not None:
            self.max_size, self.pending_max = self.pending_max, None
        self.host.toplevel_initial_commit(self)
        self.xdg_surface.configure_now()

    def mapped(self) -> None:
        self.committed_limits()
        self.host.toplevel_mapped(self)

    def committed(self) -> None:
        self.committed_limits()
        self.host.toplevel_committed(self)

    def committed_limits(self) -> None:
        if self.pending_min is not None:
            self.min_size, self.pending_min = self.pending_min, None
        if self.pending_max is not None:
            self.max_size, self.pending_max = self.pending_max, None

    def unmapped(self) -> None:
        self.host.toplevel_unmapped(self)

    def acked(self, serial: int) -> None:
        for s in [s for s in self.sent if s <= serial]:
            state = self.sent.pop(s)
            if s == serial:
                self.acked_state = state

    # Events ---------------------------------------------------------------------------------------

    def configure(self, want: ToplevelConfigure) -> None:
        """Ask the client for ``want`` (sent with the next xdg_surface.configure)."""
        if want != self.want or not self.sent:
            self.want = want
            self.xdg_surface.schedule_configure()

    def send_configure(self, serial: int) -> None:
        want = self.want
        states = []
        if want.maximized:
            states.append(ToplevelState.MAXIMIZED)
        if want.fullscreen:
            states.append(ToplevelState.FULLSCREEN)
        if want.resizing:
            states.append(ToplevelState.RESIZING)
        if want.activated:
            states.append(ToplevelState.ACTIVATED)
        bounds = self.host.usable_area()
        self.post("configure_bounds", bounds.width, bounds.height)
        if not self.sent and self.acked_state is None:
            self.post("wm_capabilities", struct.pack("<3I", 2, 3, 4))  # maximize, fullscreen, minimize
        self.post("configure", want.width, want.height, struct.pack(f"<{len(states)}I", *states))
        self.sent[serial] = want

    def send_close(self) -> None:
        self.post("close")

    def on_destroy(self) -> None:
        if self.decoration is not None and self.decoration.alive:
            self.decoration.toplevel_destroyed()
        if self.parent is not None and self in self.parent.children:
            self.parent.children.remove(self)
        for child in self.children:
            child.parent = self.parent
        if self.xdg_surface.mapped:
            self.xdg_surface.mapped = False
            self.host.toplevel_unmapped(self)
        self.host.toplevel_destroyed(self)
        if self.xdg_surface.surface is not None:
            self.xdg_surface.initial_commit_done = False
            self.xdg_surface.configured = False
