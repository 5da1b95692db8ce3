"""The compositor's hub: owns the display, the globals and every subsystem, and runs the frame clock.

No subsystem sees ``Core``. Each declares what it needs of its host as a ``typing.Protocol`` (as
Smithay's protocol modules declare handler traits): ``SurfaceHost``, ``OutputHost``, ``SeatHost``,
``XdgShellHost`` (with ``PopupHost``), ``LayerShellHost``, ``WmHost`` and the consumers'
``FrameSource``. ``Core`` implements them, mostly by passing the call to the part whose job it is: the
built-in window manager (``self.wm``) answers the toplevel hooks, the seat the popup grabs, the layer
shell the usable area. Another window manager, or Xwayland's, plugs in at these hooks.

The frame clock composites when something changed, at most at the target rate while the session is
viewed and at the idle rate when it is not, hands the damage to every ``FrameSink`` and sends frame
callbacks right after each composite.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Protocol

from pywayland.protocol.wayland import (
    WlCompositor,
    WlDataDeviceManager,
    WlOutput,
    WlSeat,
    WlSubcompositor,
)
from pywayland.protocol.wp_primary_selection_unstable_v1 import ZwpPrimarySelectionDeviceManagerV1
from pywayland.protocol.xdg_output_unstable_v1 import ZxdgOutputManagerV1
from pywayland.protocol.xdg_shell import XdgWmBase

from wayray.common import trace
from wayray.compositor import xwayland_shell
from wayray.compositor.cursor import CursorState
from wayray.compositor.data_device import (
    DataDeviceManager,
    PipeWriter,
    PrimaryDeviceManager,
    Selection,
    SelectionKind,
)
from wayray.compositor.geometry import Rect
from wayray.compositor.globals import GLOBAL_VERSIONS
from wayray.compositor.layer_shell import LayerShell, LayerShellGlobal
from wayray.compositor.output import Output, OutputResource, XdgOutputManager
from wayray.compositor.scene import Renderer, Scene, View
from wayray.compositor.seat import PointerGrab, Seat, SeatResource
from wayray.compositor.surface import Callback, CompositorGlobal, SubcompositorGlobal, Surface
from wayray.compositor.titlebar import TitleBar
from wayray.compositor.wm import FloatingWM, ManagedToplevel
from wayray.compositor.wm_protocol import WmService
from wayray.compositor.xdg_popup import PopupRole
from wayray.compositor.xdg_shell import ShellWindow, WmBase, XdgSurfaceRole
from wayray.compositor.xwayland import Xwayland
from wayray.wayland.pixman import Region
from wayray.wayland.protocols.generated.wlr_layer_shell_unstable_v1 import ZwlrLayerShellV1
from wayray.wayland.server import Client, Display, Global
from wayray.wayland.shm import EXTRA_FORMATS

if TYPE_CHECKING:
    from wayray.compositor.avsync import AvSync
    from wayray.compositor.stacking import StackRequest
    from wayray.compositor.xwm import Xwm

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    """Whoever takes frames (``frames.FrameConsumer``): what the frame clock tells it."""

    def on_damage(self, damage: Region) -> None:
        """A composite changed ``damage`` (output pixels)."""

    def on_cursor_changed(self) -> None:
        """The cursor's image or hotspot changed."""

    def on_reset(self) -> None:
        """The output was resized: the next frame is all of it."""

    def close(self) -> None:
        """The compositor closes (or the consumer is done): no more frames; ``remove_consumer`` follows."""


class Core:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        size: tuple[int, int],
        scale: int,
        refresh_hz: float,
        idle_hz: float,
    ) -> None:
        self.loop = loop
        self.refresh_hz = refresh_hz
        self.idle_hz = idle_hz
        self.viewed = True
        self.display = Display()
        self.output = Output(self, size[0], size[1], scale, refresh_hz)
        self.renderer = Renderer(size[0], size[1], scale)
        self.surfaces: set[Surface] = set()
        self.frame_callbacks: list[Callback] = []
        self.consumers: list[FrameSink] = []
        self.frame_seq = 0
        self.layers = LayerShell(self, self.output)
        self.wm = FloatingWM(self, self.output)
        self.wm_service = WmService(self.display, loop, self.wm)  # an external window manager
        self.scene = Scene(self.output, self.layers, self.wm)
        self.seat = Seat(self, self.display, self.output)
        self.scene.text_inputs = self.seat.text_inputs
        self.clipboard = Selection(SelectionKind.CLIPBOARD, self.seat, self.display)
        self.primary = Selection(SelectionKind.PRIMARY, self.seat, self.display)
        self.pipe_writer = PipeWriter(loop)
        self._frame_timer: asyncio.TimerHandle | None = None
        self._last_frame = 0.0
        self._frame_at = 0.0
        self._dirty = True
        self._start = time.monotonic()
        self.xwayland: Xwayland | None = None  # the session's X display, if X11 is on
        self.xwm: Xwm | None = None  # while Xwayland runs
        self.xwayland_shell: Global | None = None  # offered once Xwayland is started, to it only
        self.av_sync: AvSync | None = None  # while some windows' pixels wait for their sound
        self.av_clock: Callable[[], float] = loop.time  # what av-sync stamps snapshots with (tests step it)

    def create_globals(self) -> None:
        d = self.display
        v = GLOBAL_VERSIONS
        d.init_shm(tuple(int(f) for f in EXTRA_FORMATS))
        Global(d, WlCompositor, v["wl_compositor"], lambda n: CompositorGlobal(n, self))
        Global(d, WlSubcompositor, v["wl_subcompositor"], SubcompositorGlobal)
        Global(d, WlOutput, v["wl_output"], lambda n: OutputResource(n, self.output))
        Global(
            d, ZxdgOutputManagerV1, v["zxdg_output_manager_v1"], lambda n: XdgOutputManager(n, self.output)
        )
        Global(d, WlSeat, v["wl_seat"], lambda n: SeatResource(n, self.seat))
        Global(d, XdgWmBase, v["xdg_wm_base"], lambda n: WmBase(n, self))
        Global(
            d,
            WlDataDeviceManager,
            v["wl_data_device_manager"],
            lambda n: DataDeviceManager(n, self.clipboard),
        )
        Global(
            d,
            ZwpPrimarySelectionDeviceManagerV1,
            v["zwp_primary_selection_device_manager_v1"],
            lambda n: PrimaryDeviceManager(n, self.primary),
        )
        Global(d, ZwlrLayerShellV1, v["zwlr_layer_shell_v1"], lambda n: LayerShellGlobal(n, self.layers))
        self.wm_service.register()

    # SurfaceHost ----------------------------------------------------------------------------------

    def surface_created(self, surface: Surface) -> None:
        self.surfaces.add(surface)
        surface.destroy_listeners.append(self.seat.surface_gone)
        if self.xwm is not None and surface.client is self.xwm.client:
            self.xwm.surface_created(surface)

    def surface_destroyed(self, surface: Surface) -> None:
        self.surfaces.discard(surface)
        if self.av_sync is not None:
            self.av_sync.forget(surface)
        self.scene_changed()

    def frame_requested(self, callbacks: list[Callback]) -> None:
        self.frame_callbacks.extend(callbacks)

    def scene_changed(self) -> None:
        self._dirty = True
        self.schedule_frame()

    # OutputHost -----------------------------------------------------------------------------------

    def output_bound(self, resource: OutputResource) -> None:
        for surface in self.surfaces:
            if surface.client is resource.client and surface.outputs_entered:
                self._enter(surface, resource)

    # SeatHost -------------------------------------------------------------------------------------

    def surface_at(self, x: float, y: float) -> tuple[Surface, int, int] | None:
        return self.scene.surface_at(x, y)

    def keyboard_focus_target(self) -> Surface | None:
        layer = self.layers.keyboard_target()
        if layer is not None:
            return layer
        w = self.wm.focused
        return w.surface if w is not None else None

    def clicked(self, surface: Surface | None) -> None:
        self.layers.clicked(surface)
        self.wm.clicked(surface)

    def titlebar_pressed(self, bar: TitleBar, sx: float, sy: float) -> None:
        self.wm.titlebar_pressed(bar, sx, sy)

    def x_pointer_grab(self, surface: Surface | TitleBar | None) -> tuple[Surface, int, int] | None:
        xwm = self.xwm
        if xwm is None or not xwm.unmanaged:
            return None
        if isinstance(surface, Surface) and surface.client is xwm.client:
            return None  # Xwayland gets it anyway, and X gives it to the grab
        return xwm.pointer_grab_surface()

    def cycle_windows(self, backwards: bool) -> None:
        self.wm.cycle(backwards)

    def end_window_cycle(self) -> None:
        self.wm.end_cycle()

    def close_focused_window(self) -> None:
        self.wm.close_focused()

    def window_manager_binding(self, keysym: int, modifiers: int) -> bool:
        if self.wm_service.key_binding(keysym, modifiers):
            return True
        return self.wm.key_binding(keysym, modifiers)

    def selection_focus_changed(self, client: Client | None) -> None:
        if client is not None:
            self.clipboard.offer_to(client)
            self.primary.offer_to(client)

    def round_trip(self, surface: Surface, then: Callable[[], None]) -> bool:
        role = surface.role
        if isinstance(role, XdgSurfaceRole) and role.wm_base.alive:
            role.wm_base.round_trip(then)
            return True
        return False

    def cursor_changed(self) -> None:
        for c in list(self.consumers):
            c.on_cursor_changed()

    # XdgShellHost: popups (the seat) and toplevels (the window manager) ---------------------------

    def popup_grab(self, popup: PopupRole, serial: int) -> None:
        self.seat.popup_grab(popup, serial)

    def popup_unmapped(self, popup: PopupRole) -> None:
        self.seat.popup_unmapped(popup)

    def usable_area(self) -> Rect:
        return self.layers.usable_area()

    def new_toplevel(self, toplevel: ManagedToplevel) -> ShellWindow:
        return self.wm.new_toplevel(toplevel)

    def toplevel_initial_commit(self, toplevel: ManagedToplevel) -> None:
        self.wm.toplevel_initial_commit(toplevel)

    def toplevel_mapped(self, toplevel: ManagedToplevel) -> None:
        self.wm.toplevel_mapped(toplevel)

    def toplevel_committed(self, toplevel: ManagedToplevel) -> None:
        self.wm.toplevel_committed(toplevel)

    def toplevel_unmapped(self, toplevel: ManagedToplevel) -> None:
        self.wm.toplevel_unmapped(toplevel)

    def toplevel_destroyed(self, toplevel: ManagedToplevel) -> None:
        self.wm.toplevel_destroyed(toplevel)

    def move_requested(
        self, toplevel: ManagedToplevel, serial: int, anchor: tuple[int, int] | None = None
    ) -> None:
        self.wm.move_requested(toplevel, serial, anchor)

    def resize_requested(self, toplevel: ManagedToplevel, serial: int, edges: int) -> None:
        self.wm.resize_requested(toplevel, serial, edges)

    def maximize_requested(self, toplevel: ManagedToplevel, on: bool) -> None:
        self.wm.maximize_requested(toplevel, on)

    def fullscreen_requested(self, toplevel: ManagedToplevel, on: bool) -> None:
        self.wm.fullscreen_requested(toplevel, on)

    def minimize_requested(self, toplevel: ManagedToplevel) -> None:
        self.wm.minimize_requested(toplevel)

    def activate_requested(self, toplevel: ManagedToplevel) -> None:
        self.wm.activate_requested(toplevel)

    def restack_requested(
        self, toplevel: ManagedToplevel, how: StackRequest, sibling: ManagedToplevel | None
    ) -> None:
        if self.wm.restack_requested(toplevel, how, sibling) and self.xwm is not None:
            self.xwm.restack([w.toplevel for w in self.wm.stack])

    # XwaylandHost ---------------------------------------------------------------------------------

    def create_client(self, fd: int) -> Client:
        if self.xwayland_shell is None:  # before Xwayland's first roundtrip; its filter admits it only
            self.xwayland_shell = xwayland_shell.register(self.display, self, self._is_xwayland)
        return self.display.create_client(fd)

    def _is_xwayland(self, client: Client) -> bool:
        return self.xwayland is not None and client is self.xwayland.client

    # XwaylandShellHost ----------------------------------------------------------------------------

    def xwayland_surface_serial(self, surface: Surface, serial: int) -> None:
        if self.xwm is not None:
            self.xwm.surface_serial(surface, serial)
        else:
            log.debug("xwayland_shell_v1 serial %d with no X window manager running", serial)

    def xwayland_surface_gone(self, surface: Surface) -> None:
        if self.xwm is not None:
            self.xwm.serial_surface_gone(surface)

    def xwayland_ready(self, wm_socket: socket.socket, client: Client) -> None:
        # Imported here: xcffib loads libxcb, which a session without X11 does not need.
        from wayray.compositor.xwm import Xwm

        self.xwm = Xwm(self, wm_socket, client)
        self.scene.overlays = self.xwm.unmanaged  # type: ignore[assignment]

    def button_press_serial(self, client: Client) -> int:
        return self.seat.press_serials.get(client, -1)

    def xwayland_gone(self) -> None:
        if self.xwm is not None:
            self.xwm.close()
            self.xwm = None
            self.scene.overlays = []
            self.scene_changed()

    # LayerShellHost -------------------------------------------------------------------------------

    def update_keyboard_focus(self) -> None:
        self.seat.update_keyboard_focus()

    def usable_area_changed(self) -> None:
        self.wm.output_changed()

    # WmHost ---------------------------------------------------------------------------------------

    @property
    def pointer_position(self) -> tuple[float, float]:
        return self.seat.pointer_position

    def button_serial_valid(self, surface: Surface | None, serial: int) -> bool:
        return self.seat.button_serial_valid(surface, serial)

    def start_pointer_grab(self, grab: PointerGrab) -> None:
        self.seat.start_grab(grab)

    def grab_window_gone(self, window: object) -> None:
        self.seat.grab_window_gone(window)

    @property
    def pointer_buttons_held(self) -> bool:
        return bool(self.seat.buttons)

    # Frame consumers (FrameSource) ----------------------------------------------------------------

    def add_consumer(self, consumer: FrameSink) -> None:
        self.consumers.append(consumer)

    def remove_consumer(self, consumer: FrameSink) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)

    def park(self) -> bool:
        """Let the output framebuffer go while nobody looks (not viewed, no frame consumer): True if
        it went (or was gone). Its next use draws it again whole (``Renderer.park``). The surfaces'
        pixels are kept compressed meanwhile (``Texture.squeeze``), until each one's next use."""
        if self.viewed or self.consumers:
            return False
        if not self.renderer.parked:
            self.renderer.park(self.scene.views)
        for surface in self.surfaces:
            if surface.texture is not None:
                surface.texture.squeeze()
        return True

    @property
    def cursor_serial(self) -> int:
        return self.seat.cursor.serial

    def cursor_state(self) -> CursorState:
        return self.seat.cursor_state()

    # Frame clock ----------------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        return self.refresh_hz if self.viewed else self.idle_hz

    def schedule_frame(self) -> None:
        if self._frame_timer is not None:
            return
        now = self.loop.time()
        at = max(now, self._last_frame + 1.0 / self.rate)
        self._frame_at = at
        self._frame_timer = self.loop.call_at(at, self._frame)

    def set_viewed(self, viewed: bool) -> None:
        if viewed == self.viewed:
            return
        self.viewed = viewed
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
            self.schedule_frame()

    def time_ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000) & 0xFFFFFFFF

    def _frame(self) -> None:
        self._frame_timer = None
        # Pace on the deadline, not on when the timer actually fired (asyncio wakes up to a
        # millisecond late, which would otherwise turn 60 Hz into 56); after an idle gap, restart.
        now = self.loop.time()
        self._last_frame = self._frame_at if now - self._frame_at < 1.0 / self.rate else now
        try:
            self.composite()
        except Exception:
            log.exception("compositing failed")
        callbacks, self.frame_callbacks = self.frame_callbacks, []
        if callbacks:
            t = self.time_ms()
            for cb in callbacks:
                cb.post("done", t)
                cb.destroy_resource()
        self.display.schedule_flush()

    def composite(self) -> None:
        """Composite what changed since the last frame and hand the damage to every consumer."""
        if not self._dirty:
            return
        self._dirty = False
        views = self.scene.views()
        if self.av_sync is not None:
            self.av_sync.feed(v.surface for v in views)
        damage = self.renderer.damage(views, self.surfaces)
        self._send_enters(views)
        if not damage:
            return
        self.renderer.render(views, damage)
        self.frame_seq += 1
        if trace.ENABLED:
            trace.pass_on("committed", "composited")
        for c in list(self.consumers):
            c.on_damage(damage)
        self.seat.refresh_pointer_focus()

    def set_av_sync(self, pids: Collection[int], delay_ms: float) -> None:
        """Show the pixels of the windows whose program's pid is in ``pids`` ``delay_ms`` late (clamped
        to ``avsync.MAX_DELAY_MS``); no pids or no delay turns it off (docs/compositor.md, av-sync)."""
        from wayray.compositor import avsync

        if not math.isfinite(delay_ms):
            raise ValueError(f"av-sync delay must be a finite number of milliseconds, not {delay_ms!r}")
        wanted = frozenset(int(p) for p in pids if int(p) > 0)  # 0: an X window whose pid is unknown
        delay_s = min(max(float(delay_ms), 0.0), avsync.MAX_DELAY_MS) / 1000.0
        if not wanted or delay_s <= 0.0:
            if self.av_sync is not None:
                self.av_sync.close()
                self.av_sync = None
                self.renderer.delayed = {}
                self.scene_changed()
            return
        if self.av_sync is None:
            self.av_sync = avsync.AvSync(
                self.loop, lambda: self.wm.windows, self.scene_changed, lambda: self.av_clock()
            )
            self.renderer.delayed = self.av_sync.shown
        self.av_sync.configure(wanted, delay_s)
        self.scene_changed()

    def _send_enters(self, views: list[View]) -> None:
        for view in views:
            s = view.surface
            if s.client is None:  # a server-side title bar
                continue
            if not s.outputs_entered:
                for res in self.output.resources_for(s.client):
                    self._enter(s, res)

    def _enter(self, surface: Surface, resource: OutputResource) -> None:
        if resource in surface.outputs_entered:
            return
        surface.outputs_entered.add(resource)
        surface.post("enter", resource)
        surface.post("preferred_buffer_scale", self.output.scale)
        surface.post("preferred_buffer_transform", 0)

    # Output ---------------------------------------------------------------------------------------

    def resize_output(self, width: int, height: int, scale: int) -> None:
        scale_changed = scale != self.output.scale
        self.output.resize(width, height, scale)
        self.renderer.resize(width, height, scale)
        if scale_changed:
            for s in self.surfaces:
                if s.outputs_entered:
                    s.post("preferred_buffer_scale", scale)
        self.layers.arrange()
        self.wm.output_changed()
        # Composite into the new framebuffer now (the surfaces as they are): consumers take their next
        # frame from it at once, and it must not be a blank one.
        self._dirty = True
        self.composite()
        for c in list(self.consumers):
            c.on_reset()
        self.scene_changed()

    def destroy(self) -> None:
        if self.xwayland is not None:
            self.xwayland.close()
            self.xwayland = None
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
        if self.av_sync is not None:
            self.av_sync.close()
            self.av_sync = None
        self.display.destroy()
        self.pipe_writer.close()
