"""Surfaces: ``wl_surface`` with frame pacing and scale tracking, subsurfaces, viewports, outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wayray.toolkit.connection import WaylandConnection

if TYPE_CHECKING:
    from wayray.toolkit.display import Client
    from wayray.toolkit.shm import Buffer

RectTuple = tuple[int, int, int, int]


@dataclass
class Output:
    """A ``wl_output``: what we know of a monitor (scale for surfaces without preferred_buffer_scale)."""

    proxy: Any
    global_name: int
    scale: int = 1
    width: int = 0  # current mode, physical pixels
    height: int = 0
    name: str = ""


class Surface:
    """A ``wl_surface``: attach/damage/commit, frame callbacks, and the scale it should be drawn at.

    ``scale`` follows ``wl_surface.preferred_buffer_scale`` (wl_compositor 6) when the compositor sends
    it, else the largest scale of the outputs the surface is on. ``on_scale`` hears changes.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.conn: WaylandConnection = client.conn
        self.proxy = self.conn.track(client.compositor.create_surface())
        self.version: int = client.compositor.user_data
        # Until the compositor says which outputs the surface is on, guess the largest scale there is:
        # a HiDPI kiosk then gets a sharp first frame instead of a blurry one.
        self.scale = max((o.scale for o in client.outputs), default=1)
        self.on_scale: list[Callable[[int], None]] = []
        self._preferred: int | None = None
        self._outputs: list[Output] = []
        self._frame_pending = False
        self._frame_handlers: list[Callable[[], None]] = []
        self.viewport: Any = None
        self.conn.listen(
            self.proxy,
            enter=self._enter,
            leave=self._leave,
            preferred_buffer_scale=self._preferred_scale,
            preferred_buffer_transform=lambda _t: None,
        )

    # Scale ----------------------------------------------------------------------------------------

    def _enter(self, output: Any) -> None:
        out = self.client.output_for(output)
        if out is not None and out not in self._outputs:
            self._outputs.append(out)
            self._update_scale()

    def _leave(self, output: Any) -> None:
        out = self.client.output_for(output)
        if out in self._outputs:
            self._outputs.remove(out)
            self._update_scale()

    def _preferred_scale(self, factor: int) -> None:
        self._preferred = max(1, factor)
        self._update_scale()

    def outputs_changed(self) -> None:
        """An output's scale changed (called by the client)."""
        self._update_scale()

    def _update_scale(self) -> None:
        if self._preferred is not None:
            scale = self._preferred
        else:
            scale = max((o.scale for o in self._outputs), default=self.scale)
        if scale != self.scale:
            self.scale = scale
            for cb in list(self.on_scale):
                cb(scale)

    # Requests -------------------------------------------------------------------------------------

    def attach(self, buffer: Buffer | None, damage: Iterable[RectTuple] = ()) -> None:
        """Attach ``buffer`` (None unmaps) and damage ``damage`` (buffer pixels) for the next commit."""
        if buffer is None:
            self.proxy.attach(None, 0, 0)
        else:
            self.proxy.attach(buffer.proxy, 0, 0)
            buffer.busy = True
            for x, y, w, h in damage:
                if self.version >= 4:
                    self.proxy.damage_buffer(x, y, w, h)
                else:  # wl_surface.damage is in surface coordinates: too much is harmless
                    self.proxy.damage(0, 0, 2**31 - 1, 2**31 - 1)
                    break

    def set_buffer_scale(self, scale: int) -> None:
        if self.version >= 3:
            self.proxy.set_buffer_scale(scale)

    def set_input_region(self, rects: Iterable[RectTuple] | None) -> None:
        """Where the surface takes pointer input: None = everywhere, empty = nowhere."""
        if rects is None:
            self.proxy.set_input_region(None)
            return
        region = self.client.compositor.create_region()
        for x, y, w, h in rects:
            region.add(x, y, w, h)
        self.proxy.set_input_region(region)
        region.destroy()

    def set_opaque(self, width: int, height: int) -> None:
        region = self.client.compositor.create_region()
        region.add(0, 0, width, height)
        self.proxy.set_opaque_region(region)
        region.destroy()

    def set_destination(self, width: int, height: int) -> bool:
        """Scale the buffer to ``width`` x ``height`` surface pixels (wp_viewporter); False without it."""
        if self.client.viewporter is None:
            return False
        if self.viewport is None:
            self.viewport = self.conn.track(self.client.viewporter.get_viewport(self.proxy))
        self.viewport.set_destination(max(1, width), max(1, height))
        return True

    def request_frame(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the compositor wants the next frame (one wl_surface.frame per commit)."""
        self._frame_handlers.append(fn)
        if not self._frame_pending:
            self._frame_pending = True
            self.conn.frame_callback(self.proxy, self._frame_done)

    @property
    def frame_pending(self) -> bool:
        """A frame callback is outstanding: committing again now would draw faster than shown."""
        return self._frame_pending

    def _frame_done(self, _time: int) -> None:
        self._frame_pending = False
        handlers, self._frame_handlers = self._frame_handlers, []
        for fn in handlers:
            fn()

    def commit(self) -> None:
        self.proxy.commit()
        self.conn.flush()

    def destroy(self) -> None:
        if self.viewport is not None:
            self.conn.destroy(self.viewport)
            self.viewport = None
        self.conn.destroy(self.proxy)


class Subsurface:
    """A surface placed on a parent (``wl_subsurface``), desynchronized so it commits on its own."""

    def __init__(self, client: Client, parent: Surface, *, sync: bool = False) -> None:
        self.surface = Surface(client)
        self.conn = client.conn
        self.proxy = self.conn.track(client.subcompositor.get_subsurface(self.surface.proxy, parent.proxy))
        if not sync:
            self.proxy.set_desync()
        self.position = (0, 0)

    def set_position(self, x: int, y: int) -> None:
        """Move relative to the parent (applied with the parent's next commit)."""
        self.position = (x, y)
        self.proxy.set_position(x, y)

    def place_above(self, sibling: Surface) -> None:
        self.proxy.place_above(sibling.proxy)

    def destroy(self) -> None:
        self.conn.destroy(self.proxy)
        self.surface.destroy()
