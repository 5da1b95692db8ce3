"""Smaller protocols: xdg-decoration, wp_viewporter, wp_cursor_shape_v1, keyboard-shortcuts-inhibit,
and the input methods' three (text-input-v3, input-method-v2, virtual-keyboard-v1).

``register_extensions`` adds their globals (after the core protocols'); they hook into the objects
they extend (a toplevel's decoration, a surface's viewport, the seat's cursor).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pywayland.protocol.cursor_shape_v1 import WpCursorShapeDeviceV1, WpCursorShapeManagerV1
from pywayland.protocol.keyboard_shortcuts_inhibit_unstable_v1 import ZwpKeyboardShortcutsInhibitManagerV1
from pywayland.protocol.text_input_unstable_v3 import ZwpTextInputManagerV3
from pywayland.protocol.viewporter import WpViewport, WpViewporter
from pywayland.protocol.xdg_decoration_unstable_v1 import ZxdgDecorationManagerV1, ZxdgToplevelDecorationV1

from wayray.compositor.globals import GLOBAL_VERSIONS
from wayray.compositor.shortcuts import ShortcutsInhibitManager
from wayray.compositor.surface import Surface, SurfaceState
from wayray.compositor.text_input import InputMethodManager, TextInputManager, VirtualKeyboardManager
from wayray.compositor.xdg_shell import ToplevelRole
from wayray.wayland.protocols.generated.input_method_unstable_v2 import ZwpInputMethodManagerV2
from wayray.wayland.protocols.generated.virtual_keyboard_unstable_v1 import ZwpVirtualKeyboardManagerV1
from wayray.wayland.server import Display, Global, NewId, ProtocolError, Resource

if TYPE_CHECKING:
    from wayray.compositor.seat import PointerResource, Seat

log = logging.getLogger(__name__)


def register_extensions(display: Display, seat: Seat, decorations: str) -> None:
    """Advertise the extensions' globals (``decorations``: the mode xdg-decoration tells clients)."""
    mode = (
        ZxdgToplevelDecorationV1.mode.server_side
        if decorations == "server"
        else ZxdgToplevelDecorationV1.mode.client_side
    )
    Global(
        display,
        ZxdgDecorationManagerV1,
        GLOBAL_VERSIONS["zxdg_decoration_manager_v1"],
        lambda n: DecorationManager(n, mode),
    )
    Global(display, WpViewporter, GLOBAL_VERSIONS["wp_viewporter"], Viewporter)
    Global(
        display,
        WpCursorShapeManagerV1,
        GLOBAL_VERSIONS["wp_cursor_shape_manager_v1"],
        lambda n: CursorShapeManager(n, seat),
    )
    Global(
        display,
        ZwpKeyboardShortcutsInhibitManagerV1,
        GLOBAL_VERSIONS["zwp_keyboard_shortcuts_inhibit_manager_v1"],
        lambda n: ShortcutsInhibitManager(n, seat.shortcuts),
    )
    Global(
        display,
        ZwpTextInputManagerV3,
        GLOBAL_VERSIONS["zwp_text_input_manager_v3"],
        lambda n: TextInputManager(n, seat.text_inputs),
    )
    Global(
        display,
        ZwpInputMethodManagerV2,
        GLOBAL_VERSIONS["zwp_input_method_manager_v2"],
        lambda n: InputMethodManager(n, seat.text_inputs),
    )
    Global(
        display,
        ZwpVirtualKeyboardManagerV1,
        GLOBAL_VERSIONS["zwp_virtual_keyboard_manager_v1"],
        lambda n: VirtualKeyboardManager(n, seat.text_inputs),
    )


# xdg-decoration ----------------------------------------------------------------------------------


class DecorationManager(Resource):
    interface = ZxdgDecorationManagerV1

    def __init__(self, new_id: NewId, mode: int) -> None:
        super().__init__(new_id)
        self.mode = mode

    def destroy(self) -> None:
        pass

    def get_toplevel_decoration(self, id: NewId, toplevel: ToplevelRole) -> None:
        deco = ToplevelDecoration(id, toplevel, self.mode)
        if getattr(toplevel, "decoration", None) is not None:
            raise ProtocolError(
                deco,
                ZxdgToplevelDecorationV1.error.already_constructed,
                "the toplevel already has a decoration",
            )
        surface = toplevel.surface
        if surface is not None and surface.has_content:
            raise ProtocolError(
                deco, ZxdgToplevelDecorationV1.error.unconfigured_buffer, "the toplevel already has a buffer"
            )
        toplevel.decoration = deco
        deco.send_mode()


class ToplevelDecoration(Resource):
    """The session's preference wins (the protocol lets the compositor decide)."""

    interface = ZxdgToplevelDecorationV1

    def __init__(self, new_id: NewId, toplevel: ToplevelRole, mode: int) -> None:
        super().__init__(new_id)
        self.toplevel: ToplevelRole | None = toplevel
        self.mode = mode
        self.requested: int | None = None

    @property
    def server_side(self) -> bool:
        return self.mode == ZxdgToplevelDecorationV1.mode.server_side

    def send_mode(self) -> None:
        if self.toplevel is None or not self.toplevel.alive:
            return
        self.post("configure", self.mode)
        self.toplevel.xdg_surface.schedule_configure()
        self.toplevel.host.scene_changed()

    def destroy(self) -> None:
        pass

    def set_mode(self, mode: int) -> None:
        if mode not in (
            ZxdgToplevelDecorationV1.mode.client_side,
            ZxdgToplevelDecorationV1.mode.server_side,
        ):
            raise ProtocolError(
                self, ZxdgToplevelDecorationV1.error.invalid_mode, f"no decoration mode {mode}"
            )
        self.requested = mode
        self.send_mode()

    def unset_mode(self) -> None:
        self.requested = None
        self.send_mode()

    def toplevel_destroyed(self) -> None:
        # The spec calls this an "orphaned" error, but foot and others destroy the toplevel first on
        # exit; like wlroots and weston we make the decoration inert instead of killing the client.
        self.toplevel = None

    def on_destroy(self) -> None:
        if self.toplevel is not None and getattr(self.toplevel, "decoration", None) is self:
            self.toplevel.decoration = None
            self.toplevel.host.scene_changed()
        self.toplevel = None


# wp_viewporter -----------------------------------------------------------------------------------


class Viewporter(Resource):
    interface = WpViewporter

    def destroy(self) -> None:
        pass

    def get_viewport(self, id: NewId, surface: Surface) -> None:
        vp = Viewport(id, surface)
        if surface.viewport is not None:
            vp.surface = None
            raise ProtocolError(
                self, WpViewporter.error.viewport_exists, f"wl_surface@{surface.id} has a viewport"
            )
        surface.viewport = vp


class Viewport(Resource):
    interface = WpViewport

    def __init__(self, new_id: NewId, surface: Surface) -> None:
        super().__init__(new_id)
        self.surface: Surface | None = surface
        self.source: tuple[float, float, float, float] | None = None
        self.destination: tuple[int, int] | None = None
        surface.destroy_listeners.append(self._surface_gone)

    def _surface_gone(self, _surface: Surface) -> None:
        self.surface = None

    def _surface(self) -> Surface:
        if self.surface is None or not self.surface.alive:
            raise ProtocolError(self, WpViewport.error.no_surface, "the wl_surface was destroyed")
        return self.surface

    def _stage(self) -> None:
        s = self._surface()
        s.pending.viewport_source = self.source
        s.pending.viewport_destination = self.destination
        s.pending.viewport_set = True

    def destroy(self) -> None:
        if self.surface is not None and self.surface.alive:
            self.source = self.destination = None
            self._stage()

    def set_source(self, x: float, y: float, width: float, height: float) -> None:
        self._surface()
        if (x, y, width, height) == (-1.0, -1.0, -1.0, -1.0):
            self.source = None
        elif x < 0 or y < 0 or width <= 0 or height <= 0:
            raise ProtocolError(
                self, WpViewport.error.bad_value, f"source {x},{y} {width}x{height} is invalid"
            )
        else:
            self.source = (x, y, width, height)
        self._stage()

    def set_destination(self, width: int, height: int) -> None:
        self._surface()
        if (width, height) == (-1, -1):
            self.destination = None
        elif width <= 0 or height <= 0:
            raise ProtocolError(self, WpViewport.error.bad_value, f"destination {width}x{height} is invalid")
        else:
            self.destination = (width, height)
        self._stage()

    def precommit(self, surface: Surface, state: SurfaceState) -> None:
        """Errors the viewporter spec requires at commit time."""
        src = state.viewport_source if state.viewport_set else surface.viewport_source
        dst = state.viewport_destination if state.viewport_set else surface.viewport_destination
        if (
            src is not None
            and dst is None
            and not (float(src[2]).is_integer() and float(src[3]).is_integer())
        ):
            raise ProtocolError(
                self, WpViewport.error.bad_size, "a fractional source size needs a destination"
            )
        if src is None:
            return
        tex = surface.texture
        if state.buffer_attached and state.buffer is not None:
            from wayray.wayland.shm import ShmBuffer

            shm = ShmBuffer.of(state.buffer)
            bw, bh = (shm.width, shm.height) if shm is not None else (0, 0)
        elif tex is not None:
            bw, bh = tex.width, tex.height
        else:
            return
        scale = state.scale or surface.scale
        transform = state.transform if state.transform is not None else surface.transform
        if transform.swaps_axes:
            bw, bh = bh, bw
        if src[0] + src[2] > bw / scale + 1e-6 or src[1] + src[3] > bh / scale + 1e-6:
            raise ProtocolError(
                self, WpViewport.error.out_of_buffer, "the source rectangle extends outside the buffer"
            )

    def on_destroy(self) -> None:
        if self.surface is not None and self.surface.viewport is self:
            self.surface.viewport = None


# wp_cursor_shape_v1 ------------------------------------------------------------------------------

SHAPE_NAMES = {int(v): v.name.replace("_", "-") for v in WpCursorShapeDeviceV1.shape}


class CursorShapeManager(Resource):
    interface = WpCursorShapeManagerV1

    def __init__(self, new_id: NewId, seat: Seat) -> None:
        super().__init__(new_id)
        self.seat = seat

    def destroy(self) -> None:
        pass

    def get_pointer(self, cursor_shape_device: NewId, pointer: PointerResource) -> None:
        CursorShapeDevice(cursor_shape_device, self.seat, pointer)

    def get_tablet_tool_v2(self, cursor_shape_device: NewId, tablet_tool: Resource) -> None:
        CursorShapeDevice(cursor_shape_device, self.seat, None)  # no tablets: an inert device


class CursorShapeDevice(Resource):
    interface = WpCursorShapeDeviceV1

    def __init__(self, new_id: NewId, seat: Seat, pointer: PointerResource | None) -> None:
        super().__init__(new_id)
        self.seat = seat
        self.pointer = pointer

    def destroy(self) -> None:
        pass

    def set_shape(self, serial: int, shape: int) -> None:
        name = SHAPE_NAMES.get(shape)
        if name is None or (shape > 34 and self.version < 2):
            raise ProtocolError(self, WpCursorShapeDeviceV1.error.invalid_shape, f"no cursor shape {shape}")
        seat = self.seat
        p = self.pointer
        if p is None or seat.pointer_focus is None or seat.pointer_focus.client is not p.client:
            return
        if seat.enter_serials.get(p.client) != serial:
            return
        seat.cursor.use_default(name)
