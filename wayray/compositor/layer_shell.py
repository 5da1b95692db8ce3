"""zwlr_layer_shell_v1: panels, docks, launchers, wallpapers and notifications (version 4).

Layer surfaces are arranged on the one output like wlroots does: surfaces with an exclusive zone
first (each shrinks the usable area windows may use), then the others within what is left (or the
whole output for zone -1). Keyboard focus: an ``exclusive`` surface on the top or overlay layer
takes it while mapped; an ``on_demand`` one takes it when clicked. What the layer shell needs of the
compositor is ``LayerShellHost``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from wayray.compositor.geometry import Rect
from wayray.compositor.surface import Role, Surface, SurfaceState
from wayray.compositor.xdg_popup import PopupRole
from wayray.wayland.protocols.generated.wlr_layer_shell_unstable_v1 import (
    ZwlrLayerShellV1,
    ZwlrLayerSurfaceV1,
)
from wayray.wayland.server import NewId, ProtocolError, Resource

if TYPE_CHECKING:
    from wayray.compositor.output import Output, OutputResource

log = logging.getLogger(__name__)

ANCHOR_TOP, ANCHOR_BOTTOM, ANCHOR_LEFT, ANCHOR_RIGHT = 1, 2, 4, 8
KB_NONE, KB_EXCLUSIVE, KB_ON_DEMAND = 0, 1, 2
BACKGROUND, BOTTOM, TOP, OVERLAY = 0, 1, 2, 3


class LayerShellHost(Protocol):
    """What the layer shell needs of the compositor (``Core``)."""

    def scene_changed(self) -> None: ...

    def update_keyboard_focus(self) -> None:
        """A layer surface took or gave up the keyboard: decide who has it now."""

    def usable_area_changed(self) -> None:
        """The area left for windows changed: the window manager fits maximized windows to it."""


@dataclass(frozen=True)
class LayerState:
    width: int = 0
    height: int = 0
    anchor: int = 0
    zone: int = 0
    margin: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, right, bottom, left
    keyboard: int = KB_NONE
    layer: int = BACKGROUND


class LayerShellGlobal(Resource):
    interface = ZwlrLayerShellV1

    def __init__(self, new_id: NewId, layers: LayerShell) -> None:
        super().__init__(new_id)
        self.layers = layers

    def get_layer_surface(
        self, id: NewId, surface: Surface, output: OutputResource | None, layer: int, namespace: str
    ) -> None:
        ls = LayerSurface(id, self.layers, surface, layer, namespace)
        if surface.role is not None or surface.role_name not in (None, "layer_surface"):
            ls.surface = None
            raise ProtocolError(
                self, ZwlrLayerShellV1.error.role, f"wl_surface@{surface.id} already has a role"
            )
        if layer not in (BACKGROUND, BOTTOM, TOP, OVERLAY):
            raise ProtocolError(self, ZwlrLayerShellV1.error.invalid_layer, f"no layer {layer}")
        if surface.has_content or (surface.pending.buffer_attached and surface.pending.buffer is not None):
            raise ProtocolError(self, ZwlrLayerShellV1.error.already_constructed, "the surface has a buffer")
        surface.set_role("layer_surface", ls, self, ZwlrLayerShellV1.error.role)
        self.layers.surfaces.append(ls)

    def destroy(self) -> None:
        pass


class LayerSurface(Resource, Role):
    interface = ZwlrLayerSurfaceV1
    name = "layer_surface"

    def __init__(
        self, new_id: NewId, layers: LayerShell, surface: Surface, layer: int, namespace: str
    ) -> None:
        super().__init__(new_id)
        self.layers = layers
        self.surface: Surface | None = surface
        self.namespace = namespace
        self.pending = LayerState(layer=layer)
        self.current = LayerState(layer=layer)
        self.x = 0
        self.y = 0
        self.configured = False
        self.initial_commit_done = False
        self.mapped = False
        self.sent_serials: list[int] = []
        self.last_size: tuple[int, int] | None = None
        self.popups: list[PopupRole] = []

    def __repr__(self) -> str:
        return f"<layer surface {self.namespace!r}>"

    # Requests -------------------------------------------------------------------------------------

    def set_size(self, width: int, height: int) -> None:
        self.pending = replace(self.pending, width=width, height=height)

    def set_anchor(self, anchor: int) -> None:
        if anchor & ~0xF:
            raise ProtocolError(
                self, ZwlrLayerSurfaceV1.error.invalid_anchor, f"anchor {anchor} has unknown bits"
            )
        self.pending = replace(self.pending, anchor=anchor)

    def set_exclusive_zone(self, zone: int) -> None:
        self.pending = replace(self.pending, zone=zone)

    def set_margin(self, top: int, right: int, bottom: int, left: int) -> None:
        self.pending = replace(self.pending, margin=(top, right, bottom, left))

    def set_keyboard_interactivity(self, keyboard_interactivity: int) -> None:
        limit = KB_ON_DEMAND if self.version >= 4 else KB_EXCLUSIVE
        if not 0 <= keyboard_interactivity <= limit:
            raise ProtocolError(
                self,
                ZwlrLayerSurfaceV1.error.invalid_keyboard_interactivity,
                f"keyboard interactivity {keyboard_interactivity} is not defined in version {self.version}",
            )
        self.pending = replace(self.pending, keyboard=keyboard_interactivity)

    def get_popup(self, popup: PopupRole) -> None:
        if popup.parent is None:
            popup.set_parent(self)

    def ack_configure(self, serial: int) -> None:
        if serial not in self.sent_serials:
            raise ProtocolError(
                self, ZwlrLayerSurfaceV1.error.invalid_surface_state, f"serial {serial} was never sent"
            )
        self.sent_serials = self.sent_serials[self.sent_serials.index(serial) + 1 :]
        self.configured = True

    def destroy(self) -> None:
        pass

    def set_layer(self, layer: int) -> None:
        if layer not in (BACKGROUND, BOTTOM, TOP, OVERLAY):
            raise ProtocolError(self, ZwlrLayerShellV1.error.invalid_layer, f"no layer {layer}")
        self.pending = replace(self.pending, layer=layer)

    # Role hooks -----------------------------------------------------------------------------------

    def precommit(self, state: SurfaceState) -> None:
        p = self.pending
        if p.width == 0 and not (p.anchor & ANCHOR_LEFT and p.anchor & ANCHOR_RIGHT):
            raise ProtocolError(
                self, ZwlrLayerSurfaceV1.error.invalid_size, "width 0 needs left and right anchors"
            )
        if p.height == 0 and not (p.anchor & ANCHOR_TOP and p.anchor & ANCHOR_BOTTOM):
            raise ProtocolError(
                self, ZwlrLayerSurfaceV1.error.invalid_size, "height 0 needs top and bottom anchors"
            )
        if state.buffer_attached and state.buffer is not None and not self.configured:
            raise ProtocolError(
                self,
                ZwlrLayerSurfaceV1.error.invalid_surface_state,
                "a buffer was attached before the first configure",
            )

    def committed(self) -> None:
        s = self.surface
        if s is None:
            return
        self.current = self.pending
        if not s.has_content:
            if self.mapped:
                self.mapped = False
                self.configured = False
                self.initial_commit_done = False
                self.last_size = None
                for popup in list(self.popups):
                    popup.dismiss()
            if not self.initial_commit_done:
                self.initial_commit_done = True
                self.last_size = None
        elif not self.mapped:
            self.mapped = True
            self.layers.surface_mapped(self)
        self.layers.arrange()

    def surface_destroyed(self) -> None:
        self.surface = None
        self.mapped = False
        self.layers.remove(self)

    def on_destroy(self) -> None:
        if self.surface is not None:
            self.surface.clear_role(self)
            self.surface = None
        self.mapped = False
        self.layers.remove(self)

    # Placement ------------------------------------------------------------------------------------

    def configure(self, width: int, height: int) -> None:
        # Margins are any int32, so the size left between them may be beyond the event's u32.
        width, height = min(width, 0xFFFFFFFF), min(height, 0xFFFFFFFF)
        if self.last_size == (width, height):
            return
        self.last_size = (width, height)
        serial = self.display.next_serial()
        self.sent_serials.append(serial)
        self.post("configure", serial, width, height)

    def surface_origin(self) -> tuple[int, int]:
        return (self.x, self.y)

    def geometry_origin(self) -> tuple[int, int]:
        return (self.x, self.y)

    @property
    def popup_parent_mapped(self) -> bool:
        return self.mapped


class LayerShell:
    """All layer surfaces of the output, their arrangement and the area left for windows."""

    def __init__(self, host: LayerShellHost, output: Output) -> None:
        self.host = host
        self.output = output
        self.surfaces: list[LayerSurface] = []
        self._usable: Rect | None = None
        self.focused: LayerSurface | None = None  # on-demand focus, from a click

    def mapped(self, layer: int) -> list[LayerSurface]:
        return [
            ls for ls in self.surfaces if ls.mapped and ls.surface is not None and ls.current.layer == layer
        ]

    def remove(self, ls: LayerSurface) -> None:
        if ls in self.surfaces:
            self.surfaces.remove(ls)
        if self.focused is ls:
            self.focused = None
        for popup in list(ls.popups):
            popup.dismiss()
        self.arrange()
        self.host.update_keyboard_focus()
        self.host.scene_changed()

    def surface_mapped(self, ls: LayerSurface) -> None:
        if ls.current.keyboard == KB_EXCLUSIVE or (
            ls.current.keyboard == KB_ON_DEMAND and ls.current.layer >= TOP
        ):
            if ls.current.keyboard == KB_ON_DEMAND:
                self.focused = ls
        self.host.scene_changed()
        self.host.update_keyboard_focus()

    def usable_area(self) -> Rect:
        if self._usable is None:
            self.arrange()
        assert self._usable is not None
        return self._usable

    def keyboard_target(self) -> Surface | None:
        for layer in (OVERLAY, TOP):
            for ls in reversed(self.mapped(layer)):
                if ls.current.keyboard == KB_EXCLUSIVE:
                    return ls.surface
        if self.focused is not None and self.focused.mapped and self.focused.current.keyboard != KB_NONE:
            return self.focused.surface
        return None

    def clicked(self, surface: Surface | None) -> None:
        root = surface.root() if surface is not None else None
        for ls in self.surfaces:
            if ls.surface is root and ls.mapped:
                if ls.current.keyboard != KB_NONE and self.focused is not ls:
                    self.focused = ls
                    self.host.update_keyboard_focus()
                return
        if self.focused is not None and surface is not None:
            self.focused = None
            self.host.update_keyboard_focus()

    def arrange(self) -> None:
        out = self.output.logical
        usable = out
        for exclusive_pass in (True, False):
            for layer in (OVERLAY, TOP, BOTTOM, BACKGROUND):
                for ls in self.surfaces:
                    if ls.surface is None or not ls.initial_commit_done or ls.current.layer != layer:
                        continue
                    st = ls.current
                    if (st.zone > 0) != exclusive_pass:
                        continue
                    bounds = out if st.zone == -1 else usable
                    box = _place(st, bounds)
                    ls.x, ls.y = box.x, box.y
                    ls.configure(box.width, box.height)
                    if exclusive_pass:
                        usable = _exclude(st, usable)
        if usable.empty:
            # Panels reserving the whole output would leave windows nowhere to go (a maximized one
            # would be placed off screen): windows get the whole output instead.
            usable = out
        changed = usable != self._usable
        self._usable = usable
        if changed:
            self.host.usable_area_changed()
        self.host.scene_changed()


def _place(st: LayerState, bounds: Rect) -> Rect:
    top, right, bottom, left = st.margin
    w, h = st.width, st.height
    a = st.anchor
    if a & ANCHOR_LEFT and a & ANCHOR_RIGHT:
        if w == 0:
            x, w = bounds.x + left, bounds.width - left - right
        else:
            x = bounds.x + (bounds.width - w) // 2
    elif a & ANCHOR_LEFT:
        x = bounds.x + left
    elif a & ANCHOR_RIGHT:
        x = bounds.x2 - w - right
    else:
        x = bounds.x + (bounds.width - w) // 2
    if a & ANCHOR_TOP and a & ANCHOR_BOTTOM:
        if h == 0:
            y, h = bounds.y + top, bounds.height - top - bottom
        else:
            y = bounds.y + (bounds.height - h) // 2
    elif a & ANCHOR_TOP:
        y = bounds.y + top
    elif a & ANCHOR_BOTTOM:
        y = bounds.y2 - h - bottom
    else:
        y = bounds.y + (bounds.height - h) // 2
    return Rect(x, y, max(0, w), max(0, h))


def _exclude(st: LayerState, usable: Rect) -> Rect:
    """Shrink ``usable`` by a surface's exclusive zone when it is anchored to exactly one edge.

    What one surface reserves (zone plus margin, both any int32) is cut to what is left, so the usable
    area stays within the output: windows are placed and maximized there.
    """
    a = st.anchor
    top, right, bottom, left = st.margin
    horizontal = a & (ANCHOR_LEFT | ANCHOR_RIGHT)
    vertical = a & (ANCHOR_TOP | ANCHOR_BOTTOM)
    x, y, w, h = usable.x, usable.y, usable.width, usable.height
    if vertical == ANCHOR_TOP and horizontal in (0, ANCHOR_LEFT | ANCHOR_RIGHT):
        d = min(max(0, st.zone + top), h)
        y, h = y + d, h - d
    elif vertical == ANCHOR_BOTTOM and horizontal in (0, ANCHOR_LEFT | ANCHOR_RIGHT):
        h -= min(max(0, st.zone + bottom), h)
    elif horizontal == ANCHOR_LEFT and vertical in (0, ANCHOR_TOP | ANCHOR_BOTTOM):
        d = min(max(0, st.zone + left), w)
        x, w = x + d, w - d
    elif horizontal == ANCHOR_RIGHT and vertical in (0, ANCHOR_TOP | ANCHOR_BOTTOM):
        w -= min(max(0, st.zone + right), w)
    return Rect(x, y, w, h)
