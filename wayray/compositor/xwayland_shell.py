"""``xwayland_shell_v1``: how an Xwayland of 23.1 or later tells the WM which ``wl_surface`` is which
X window (docs/xwayland.md §4).

The global is offered to the session's Xwayland client only (``global_filter.restrict``: other
clients neither see nor bind it). ``get_xwayland_surface`` gives a surface the role
``xwayland_surface`` (the same role the X window takes once paired); ``set_serial`` is applied on the
surface's next commit, and the X window whose ``WL_SURFACE_SERIAL`` client message carries the same
64-bit serial is paired with it by the XWM (``Xwm.surface_serial``), whichever of the two comes
first. An Xwayland that bound this global sends no ``WL_SURFACE_ID``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from pywayland.protocol.xwayland_shell_v1 import XwaylandShellV1, XwaylandSurfaceV1

from wayray.compositor.surface import Role, Surface
from wayray.wayland.global_filter import restrict
from wayray.wayland.server import Client, Display, Global, NewId, ProtocolError, Resource

log = logging.getLogger(__name__)

VERSION = 1
#: The role's name: the X window's (``xwm.XWindow.name``) once paired, so the two are one kind.
ROLE = "xwayland_surface"


class XwaylandShellHost(Protocol):
    """What the protocol needs of the compositor (``Core``)."""

    def xwayland_surface_serial(self, surface: Surface, serial: int) -> None:
        """``surface`` committed its serial: pair it with the X window that names the same."""

    def xwayland_surface_gone(self, surface: Surface) -> None:
        """``surface`` went before any X window named its serial."""


def register(display: Display, host: XwaylandShellHost, is_xwayland: Callable[[Client], bool]) -> Global:
    """The global, seen by the clients ``is_xwayland`` accepts only."""
    glob = Global(display, XwaylandShellV1, VERSION, lambda new_id: XwaylandShell(new_id, host))
    restrict(glob, is_xwayland)
    return glob


class XwaylandShell(Resource):
    interface = XwaylandShellV1

    def __init__(self, new_id: NewId, host: XwaylandShellHost) -> None:
        super().__init__(new_id)
        self.host = host

    def destroy(self) -> None:
        pass  # the surfaces it made keep their role

    def get_xwayland_surface(self, id: NewId, surface: Surface) -> None:
        if surface.role_name not in (None, ROLE) or surface.role is not None:
            raise ProtocolError(
                self, XwaylandShellV1.error.role, f"wl_surface@{surface.id} already has a role"
            )
        role = XwaylandSurface(id, self.host, surface)
        surface.set_role(ROLE, role, self, XwaylandShellV1.error.role)


class XwaylandSurface(Role, Resource):
    """The role object until the X window is paired (then the ``XWindow`` is the surface's role)."""

    interface = XwaylandSurfaceV1
    name = ROLE

    def __init__(self, new_id: NewId, host: XwaylandShellHost, surface: Surface) -> None:
        Resource.__init__(self, new_id)
        self.host = host
        self.surface: Surface | None = surface
        self.pending: int | None = None
        self.associated = False

    def set_serial(self, serial_lo: int, serial_hi: int) -> None:
        if self.associated:  # (after pairing the X window's role gets the commits: say it now)
            raise ProtocolError(
                self, XwaylandSurfaceV1.error.already_associated, "this surface's serial was committed"
            )
        self.pending = (serial_hi << 32) | serial_lo

    def destroy(self) -> None:
        pass  # an association made stays

    def on_destroy(self) -> None:
        if self.surface is not None:
            self.surface.clear_role(self)

    # Role ---------------------------------------------------------------------------------------

    def precommit(self, state: object) -> None:
        if self.pending == 0:
            raise ProtocolError(self, XwaylandSurfaceV1.error.invalid_serial, "the serial 0 is not valid")

    def committed(self) -> None:
        if self.pending is None or self.surface is None:
            return
        serial, self.pending = self.pending, None
        self.associated = True
        self.host.xwayland_surface_serial(self.surface, serial)

    def surface_destroyed(self) -> None:
        surface, self.surface = self.surface, None
        if surface is not None:
            self.host.xwayland_surface_gone(surface)
