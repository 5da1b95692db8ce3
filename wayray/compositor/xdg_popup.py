"""xdg_popup: a popup's placement (through its positioner), its grab, and its dismissal.

A popup's parent is an xdg_surface (a toplevel's or another popup's) or a layer surface
(``zwlr_layer_surface_v1.get_popup``): whatever offers ``PopupParent``. Its own xdg_surface
(``xdg_shell.XdgSurfaceRole``) runs the configure/ack cycle and calls the role hooks here; what the
popup needs of the compositor -- the seat for grabs, the output to stay on, the clock -- is
``PopupHost``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pywayland.protocol.xdg_shell import XdgPopup, XdgWmBase

from wayray.compositor.geometry import Rect
from wayray.compositor.positioner import Positioner, PositionerRules, place
from wayray.wayland.server import NewId, ProtocolError, Resource

if TYPE_CHECKING:
    from wayray.compositor.output import Output
    from wayray.compositor.seat import SeatResource
    from wayray.compositor.surface import Surface, SurfaceState


class PopupHost(Protocol):
    """What popups need of the compositor (``Core``; part of ``xdg_shell.XdgShellHost``)."""

    @property
    def output(self) -> Output:
        """Popups are kept on it."""

    def scene_changed(self) -> None: ...

    def popup_grab(self, popup: PopupRole, serial: int) -> None:
        """A popup that asked for a grab with ``serial`` was mapped: grant it or dismiss the popup."""

    def popup_unmapped(self, popup: PopupRole) -> None:
        """Its grab (if any) ends; the pointer and keyboard may move on."""


class PopupSurface(Protocol):
    """What a popup needs of its own xdg_surface (``xdg_shell.XdgSurfaceRole``)."""

    mapped: bool

    @property
    def host(self) -> PopupHost: ...

    @property
    def wm_base(self) -> Resource:
        """The xdg_wm_base, which carries most of the popup errors."""

    @property
    def surface(self) -> Surface | None: ...

    @property
    def initial_commit_done(self) -> bool: ...

    @property
    def window_geometry(self) -> Rect: ...

    def configure_now(self) -> None: ...

    def schedule_configure(self) -> None: ...


class PopupParent(Protocol):
    """What a popup's parent offers: an xdg toplevel or popup (its xdg_surface), or a layer surface."""

    @property
    def popups(self) -> list[PopupRole]: ...

    @property
    def popup_parent_mapped(self) -> bool: ...

    def geometry_origin(self) -> tuple[int, int]: ...


class PopupRole(Resource):
    interface = XdgPopup

    def __init__(self, new_id: NewId, xdg_surface: PopupSurface, rules: PositionerRules) -> None:
        super().__init__(new_id)
        self.xdg_surface = xdg_surface
        self.host = xdg_surface.host
        self.rules = rules
        self.parent: PopupParent | None = None
        self.geometry = Rect(0, 0, rules.width, rules.height)  # relative to the parent's window geometry
        self.children: list[PopupRole] = []
        self.grab_requested = False
        self.grab_serial = 0
        self.dismissed = False
        self.reposition_token: int | None = None

    @property
    def surface(self) -> Surface | None:
        return self.xdg_surface.surface

    @property
    def is_mapped(self) -> bool:
        return self.xdg_surface.mapped

    def set_parent(self, parent: PopupParent) -> None:
        """Attach to a parent (an xdg_surface here, or a layer surface through get_popup)."""
        self.parent = parent
        parent.popups.append(self)

    # Requests -------------------------------------------------------------------------------------

    def destroy(self) -> None:
        if any(c.alive and c.xdg_surface.mapped for c in self.children):
            raise ProtocolError(
                self.xdg_surface.wm_base,
                XdgWmBase.error.not_the_topmost_popup,
                "a popup was destroyed while it still had child popups",
            )

    def grab(self, seat: SeatResource, serial: int) -> None:
        if self.xdg_surface.initial_commit_done:
            raise ProtocolError(self, XdgPopup.error.invalid_grab, "grab after the popup's initial commit")
        self.grab_requested = True
        self.grab_serial = serial

    def reposition(self, positioner: Positioner, token: int) -> None:
        self.rules = positioner.rules
        self.reposition_token = token
        self.geometry = self.compute_geometry()
        self.xdg_surface.schedule_configure()

    # Role hooks -----------------------------------------------------------------------------------

    def precommit(self, state: SurfaceState) -> None:
        if self.parent is None and not self.xdg_surface.initial_commit_done:
            raise ProtocolError(
                self.xdg_surface.wm_base,
                XdgWmBase.error.invalid_popup_parent,
                "popup committed without a parent",
            )

    def initial_commit(self) -> None:
        self.geometry = self.compute_geometry()
        self.xdg_surface.configure_now()

    def mapped(self) -> None:
        if self.parent is None or not self.parent.popup_parent_mapped:
            self.dismiss()
            return
        self.host.scene_changed()
        if self.grab_requested:
            self.host.popup_grab(self, self.grab_serial)

    def committed(self) -> None:
        pass

    def unmapped(self) -> None:
        self.host.popup_unmapped(self)
        self.host.scene_changed()

    def acked(self, serial: int) -> None:
        pass

    def send_configure(self, serial: int) -> None:
        if self.reposition_token is not None:
            self.post("repositioned", self.reposition_token)
            self.reposition_token = None
        g = self.geometry
        self.post("configure", g.x, g.y, g.width, g.height)

    # Geometry -------------------------------------------------------------------------------------

    def compute_geometry(self) -> Rect:
        """Place the popup: constraint box is the output, in parent-geometry-relative coordinates."""
        if self.parent is None:
            return Rect(0, 0, self.rules.width, self.rules.height)
        px, py = self.parent.geometry_origin()
        out = self.host.output.logical
        g = place(self.rules, out.translate(-px, -py))
        # An anchor rectangle and offset of int32s can put the popup beyond configure's int32.
        return Rect(_int32(g.x), _int32(g.y), g.width, g.height)

    def origin(self) -> tuple[int, int]:
        """Layout position of the popup's window-geometry origin."""
        if self.parent is None:
            return (0, 0)
        px, py = self.parent.geometry_origin()
        return (px + self.geometry.x, py + self.geometry.y)

    def geometry_origin(self) -> tuple[int, int]:
        return self.origin()

    def surface_origin(self) -> tuple[int, int]:
        ox, oy = self.origin()
        g = self.xdg_surface.window_geometry
        return (ox - g.x, oy - g.y)

    @property
    def popups(self) -> list[PopupRole]:
        return self.children

    @property
    def popup_parent_mapped(self) -> bool:
        return self.xdg_surface.mapped

    def root_client_surface(self) -> Surface | None:
        return self.surface

    def dismiss(self) -> None:
        """popup_done for this popup and its children (topmost first)."""
        for child in list(self.children):
            child.dismiss()
        if not self.dismissed:
            self.dismissed = True
            self.post("popup_done")
        self.host.popup_unmapped(self)

    def on_destroy(self) -> None:
        for child in list(self.children):
            child.parent = None
        if self.parent is not None and self in self.parent.popups:
            self.parent.popups.remove(self)
        if self.xdg_surface.mapped:
            self.xdg_surface.mapped = False
            self.unmapped()
        self.host.popup_unmapped(self)
        self.host.scene_changed()


def _int32(v: int) -> int:
    return max(-(2**31), min(2**31 - 1, v))
