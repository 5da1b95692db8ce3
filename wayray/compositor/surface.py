"""wl_compositor, wl_surface, wl_region, wl_callback, wl_subcompositor and wl_subsurface.

A surface's state is double-buffered: requests change ``pending``; ``commit`` applies it (or, for a
synchronized subsurface, moves it into ``cached`` until the parent applies). Applying copies the
damaged part of the attached shm buffer into the surface's own texture and releases the buffer at
once, so clients can reuse it immediately; the compositor then composites from textures.

Roles (xdg_toplevel, xdg_popup, subsurface, layer surface, cursor) hook into commit through the
``Role`` interface below. What surfaces need of the compositor that holds them is ``SurfaceHost``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pywayland.protocol.wayland import (
    WlCallback,
    WlCompositor,
    WlRegion,
    WlSubcompositor,
    WlSubsurface,
    WlSurface,
)

from wayray.common import trace
from wayray.compositor.geometry import BufferMapping, Rect, Transform, buffer_mapping
from wayray.wayland.pixman import Image, Region
from wayray.wayland.server import ForeignResource, NewId, ProtocolError, Resource
from wayray.wayland.shm import ShmBuffer

log = logging.getLogger(__name__)

WL_BUFFER_RELEASE = 0
INFINITE = 1 << 30  # "infinite" input region half-size, in surface coordinates


class SurfaceHost(Protocol):
    """What surfaces need of the compositor that holds them (``Core``)."""

    def surface_created(self, surface: Surface) -> None:
        """A client created ``surface`` (it is complete: hooks may be added to it)."""

    def surface_destroyed(self, surface: Surface) -> None:
        """``surface`` is gone: its role, listeners and subsurfaces have been told."""

    def frame_requested(self, callbacks: list[Callback]) -> None:
        """A commit applied these ``wl_surface.frame`` callbacks: answer them after the next frame."""

    def scene_changed(self) -> None:
        """Something visible changed (content, position, stacking): composite soon."""


class Role:
    """What a surface is for; one kind per surface for its whole life."""

    name = "role"

    def precommit(self, state: SurfaceState) -> None:
        """Check ``state`` before it is applied; raise ProtocolError to refuse it."""

    def committed(self) -> None:
        """Called after state was applied to the surface."""

    def surface_destroyed(self) -> None:
        """The wl_surface is gone; the role object must forget it."""


@dataclass
class SurfaceState:
    """One set of double-buffered wl_surface state (pending, cached or current)."""

    buffer: ForeignResource | None = None
    buffer_attached: bool = False
    dx: int = 0
    dy: int = 0
    surface_damage: Region = field(default_factory=Region)
    buffer_damage: Region = field(default_factory=Region)
    opaque: Region | None = None
    opaque_set: bool = False
    input: Region | None = None  # None: the whole surface
    input_set: bool = False
    scale: int | None = None
    transform: Transform | None = None
    callbacks: list[Callback] = field(default_factory=list)
    viewport_source: tuple[float, float, float, float] | None = None
    viewport_destination: tuple[int, int] | None = None
    viewport_set: bool = False
    # Changes to this surface's children (subsurfaces), applied with this surface's state.
    child_positions: dict[Surface, tuple[int, int]] = field(default_factory=dict)
    child_order: list[Surface] | None = None

    def merge_into(self, older: SurfaceState) -> None:
        """Fold this (newer) state into ``older``; used for the synchronized-subsurface cache."""
        if self.buffer_attached:
            older.set_buffer(self.buffer)
            older.buffer_attached = True
        older.dx += self.dx
        older.dy += self.dy
        older.surface_damage.add(self.surface_damage)
        older.buffer_damage.add(self.buffer_damage)
        if self.opaque_set:
            older.opaque, older.opaque_set = self.opaque, True
        if self.input_set:
            older.input, older.input_set = self.input, True
        if self.scale is not None:
            older.scale = self.scale
        if self.transform is not None:
            older.transform = self.transform
        older.callbacks.extend(self.callbacks)
        if self.viewport_set:
            older.viewport_source = self.viewport_source
            older.viewport_destination = self.viewport_destination
            older.viewport_set = True
        older.child_positions.update(self.child_positions)
        if self.child_order is not None:
            older.child_order = list(self.child_order)
        self.reset()

    def set_buffer(self, buffer: ForeignResource | None) -> None:
        if self.buffer is not None:
            self.buffer.remove_destroy_callback(self)
        self.buffer = buffer
        if buffer is not None:
            buffer.add_destroy_callback(self, self._buffer_destroyed)

    def _buffer_destroyed(self, _buffer: ForeignResource) -> None:
        # A client may destroy an attached buffer before committing: then nothing is attached.
        self.buffer = None

    def reset(self) -> None:
        self.set_buffer(None)
        self.buffer_attached = False
        self.dx = self.dy = 0
        self.surface_damage.clear()
        self.buffer_damage.clear()
        self.opaque, self.opaque_set = None, False
        self.input, self.input_set = None, False
        self.scale = None
        self.transform = None
        self.callbacks = []
        self.viewport_source, self.viewport_destination, self.viewport_set = None, None, False
        self.child_positions = {}
        self.child_order = None


class Texture:
    """The surface's own copy of its buffer's pixels (so the client's buffer is released at once).

    While its session is not watched the copy may be kept compressed (:meth:`squeeze`, issue 15:
    memory of idle sessions); its next use (a composite, an upload, a cursor) restores it, the same
    pixels."""

    def __init__(self, width: int, height: int, fmt: Any) -> None:
        self.width = width
        self.height = height
        self.format = fmt  # ShmFormat
        bpp = fmt.pixman.bytes_per_pixel
        self._dtype = np.uint32 if bpp == 4 else np.uint16
        # pixman wants row strides in whole 32-bit words: pad 16-bit rows to an even width.
        self._padded = width if bpp == 4 else width + (width & 1)
        self._storage: np.ndarray | None = np.zeros((height, self._padded), dtype=self._dtype)
        self._image: Image | None = Image(self._storage, fmt.pixman, width)
        self._squeezed: bytes | None = None
        self.opaque = not fmt.pixman.has_alpha

    @property
    def storage(self) -> np.ndarray:
        if self._storage is None:
            self._unsqueeze()
        assert self._storage is not None
        return self._storage

    @property
    def array(self) -> np.ndarray:
        return self.storage[:, : self.width]

    @property
    def image(self) -> Image:
        if self._image is None:
            self._unsqueeze()
        assert self._image is not None
        return self._image

    @property
    def squeezed(self) -> bool:
        return self._squeezed is not None

    def squeeze(self) -> int:
        """Keep the pixels compressed until their next use; the bytes let go (0 if they already were,
        or if they hardly compress: noise-like pixels stay as they are)."""
        if self._storage is None:
            return 0
        import zstandard

        packed = zstandard.ZstdCompressor(level=1).compress(self._storage.tobytes())
        if len(packed) > self._storage.nbytes * 3 // 4:
            return 0
        self._squeezed = packed
        freed = self._storage.nbytes - len(packed)
        self._storage = self._image = None
        return freed

    def _unsqueeze(self) -> None:
        import zstandard

        assert self._squeezed is not None
        storage = np.empty((self.height, self._padded), dtype=self._dtype)
        storage.view(np.uint8).reshape(-1)[:] = np.frombuffer(
            zstandard.ZstdDecompressor().decompress(self._squeezed), dtype=np.uint8
        )
        self._storage, self._squeezed = storage, None
        self._image = Image(storage, self.format.pixman, self.width)

    def copy(self, into: np.ndarray | None = None) -> Texture:
        """Another texture with these pixels (its own storage): a snapshot av-sync shows later.
        ``into``: an array of the same shape and type to copy into (one a dropped snapshot left:
        writing over pages already mapped took half the time of fresh ones in bench/compositor_avsync)."""
        twin = Texture.__new__(Texture)
        twin.width, twin.height, twin.format, twin.opaque = self.width, self.height, self.format, self.opaque
        twin._dtype, twin._padded, twin._squeezed = self._dtype, self._padded, None
        src = self.storage
        if into is not None and into.shape == src.shape and into.dtype == src.dtype:
            np.copyto(into, src)
            twin._storage = into
        else:
            twin._storage = src.copy()
        twin._image = Image(twin._storage, self.format.pixman, self.width)
        return twin

    def upload(self, shm: ShmBuffer, damage: Region) -> None:
        bpp = self.format.pixman.bytes_per_pixel
        dst = self.storage.view(np.uint8)
        boxes = damage.boxes()
        with shm.access() as src:
            for b in boxes:
                x1, y1 = max(0, b.x1), max(0, b.y1)
                x2, y2 = min(self.width, b.x2), min(self.height, b.y2)
                if x2 > x1 and y2 > y1:
                    dst[y1:y2, x1 * bpp : x2 * bpp] = src[y1:y2, x1 * bpp : x2 * bpp]


class Callback(Resource):
    interface = WlCallback


class RegionResource(Resource):
    interface = WlRegion

    def __init__(self, new_id: NewId) -> None:
        super().__init__(new_id)
        self.region = Region()

    def destroy(self) -> None:
        pass

    def add(self, x: int, y: int, width: int, height: int) -> None:
        self.region.add_rect(x, y, width, height)

    def subtract(self, x: int, y: int, width: int, height: int) -> None:
        if width > 0 and height > 0:
            self.region.subtract_rect(x, y, width, height)


class Surface(Resource):
    interface = WlSurface

    def __init__(self, new_id: NewId, host: SurfaceHost) -> None:
        super().__init__(new_id)
        self.host = host
        self.pending = SurfaceState()
        self.cached: SurfaceState | None = None  # synchronized subsurface state awaiting the parent
        self.role: Role | None = None
        self.role_name: str | None = None
        # Current (applied) state.
        self.texture: Texture | None = None
        self.has_content = False
        self.scale = 1
        self.transform = Transform.NORMAL
        self.viewport_source: tuple[float, float, float, float] | None = None
        self.viewport_destination: tuple[int, int] | None = None
        self.mapping: BufferMapping | None = None
        self.opaque = Region()
        self.input: Region | None = None
        self.width = 0
        self.height = 0
        self.attach_offset = (0, 0)  # accumulated attach dx/dy since the role last consumed it
        self.frame_damage = Region()  # surface-local, since the last frame
        self.children: list[Surface] = [self]  # stacking order of subsurfaces, self included
        self.subsurface: Subsurface | None = None
        self.viewport: Any = None  # wp_viewport resource, if any
        self.outputs_entered: set[Any] = set()
        self.committed_once = False
        self.destroy_listeners: list[Any] = []
        host.surface_created(self)

    # Roles ----------------------------------------------------------------------------------------

    def set_role(self, name: str, role: Role, error_resource: Resource, error_code: int) -> None:
        """Give the surface role ``name``; raises the caller's ``role`` protocol error if it has another."""
        if self.role_name is not None and self.role_name != name:
            raise ProtocolError(
                error_resource, error_code, f"wl_surface@{self.id} already has role {self.role_name}"
            )
        if self.role is not None:
            raise ProtocolError(
                error_resource, error_code, f"wl_surface@{self.id} already has a {name} object"
            )
        self.role_name = name
        self.role = role

    def clear_role(self, role: Role) -> None:
        """The role object was destroyed; the surface keeps its role kind but has no role object."""
        if self.role is role:
            self.role = None

    # Requests -------------------------------------------------------------------------------------

    def destroy(self) -> None:
        pass

    def attach(self, buffer: ForeignResource | None, x: int, y: int) -> None:
        if self.version >= 5 and (x != 0 or y != 0):
            raise ProtocolError(
                self, WlSurface.error.invalid_offset, "attach with a non-zero offset (use offset)"
            )
        self.pending.set_buffer(buffer)
        self.pending.buffer_attached = True
        self.pending.dx += x
        self.pending.dy += y

    def offset(self, x: int, y: int) -> None:
        self.pending.dx += x
        self.pending.dy += y

    def damage(self, x: int, y: int, width: int, height: int) -> None:
        if width > 0 and height > 0:
            self.pending.surface_damage.add_rect(x, y, min(width, INFINITE), min(height, INFINITE))

    def damage_buffer(self, x: int, y: int, width: int, height: int) -> None:
        if width > 0 and height > 0:
            self.pending.buffer_damage.add_rect(x, y, min(width, INFINITE), min(height, INFINITE))

    def frame(self, callback: NewId) -> None:
        self.pending.callbacks.append(Callback(callback))

    def set_opaque_region(self, region: RegionResource | None) -> None:
        self.pending.opaque = None if region is None else region.region.copy()
        self.pending.opaque_set = True

    def set_input_region(self, region: RegionResource | None) -> None:
        self.pending.input = None if region is None else region.region.copy()
        self.pending.input_set = True

    def set_buffer_scale(self, scale: int) -> None:
        if scale < 1:
            raise ProtocolError(self, WlSurface.error.invalid_scale, f"buffer scale {scale} is not positive")
        self.pending.scale = scale

    def set_buffer_transform(self, transform: int) -> None:
        try:
            self.pending.transform = Transform(transform)
        except ValueError:
            raise ProtocolError(
                self, WlSurface.error.invalid_transform, f"no transform {transform}"
            ) from None

    def get_release(self, callback: NewId) -> None:
        # Only in wl_compositor v7, which we do not advertise; libwayland rejects it before us.
        Callback(callback).destroy_resource()

    def commit(self) -> None:
        if self.viewport is not None:
            self.viewport.precommit(self, self.pending)
        if self.role is not None:
            self.role.precommit(self.pending)
        if self.subsurface is not None and self.subsurface.synchronized:
            if self.cached is None:
                self.cached = SurfaceState()
            self.pending.merge_into(self.cached)
            return
        if self.cached is not None:
            self.pending.merge_into(self.cached)
            state = self.cached
            self.cached = None
            self._apply(state)
            state.reset()
        else:
            self._apply(self.pending)
            self.pending.reset()

    # Applying state -------------------------------------------------------------------------------

    def apply_cached(self) -> None:
        """Apply what a synchronized subsurface cached (its parent applied, or it became desynchronized)."""
        cached = self.cached
        if cached is not None:
            self.cached = None
            self._apply(cached)
            cached.reset()

    def _apply(self, state: SurfaceState) -> None:
        self.committed_once = True
        old_size = (self.width, self.height)
        self._apply_content(state)
        if self.mapping is not None and self.has_content:
            self._take_damage(state, old_size)
            if trace.ENABLED:
                trace.pass_on("delivered", "committed", owner=self.client)
        if state.opaque_set:
            self.opaque = state.opaque if state.opaque is not None else Region()
        if state.input_set:
            self.input = state.input
        self.attach_offset = (self.attach_offset[0] + state.dx, self.attach_offset[1] + state.dy)
        self.host.frame_requested(state.callbacks)
        state.callbacks = []
        self._apply_children(state)
        if self.role is not None:
            self.role.committed()
        self.host.scene_changed()

    def _apply_content(self, state: SurfaceState) -> None:
        """Scale, transform, viewport and buffer: what the surface shows, and at what size."""
        if state.scale is not None:
            self.scale = state.scale
        if state.transform is not None:
            self.transform = state.transform
        if state.viewport_set:
            self.viewport_source = state.viewport_source
            self.viewport_destination = state.viewport_destination
        if state.buffer_attached:
            if state.buffer is None:
                self.has_content = False
                self.texture = None
                self.mapping = None
                self.width = self.height = 0
            else:
                self._import(state)
        elif self.texture is not None and (
            state.scale is not None or state.transform is not None or state.viewport_set
        ):
            self._update_mapping(self.texture.width, self.texture.height)

    def _take_damage(self, state: SurfaceState, old_size: tuple[int, int]) -> None:
        """The commit's damage, in surface coordinates (all of it when the size changed)."""
        assert self.mapping is not None
        self.width, self.height = self.mapping.surface_width, self.mapping.surface_height
        damage = self.frame_damage
        damage.add(state.surface_damage)
        for b in state.buffer_damage.boxes():
            r = self.mapping.buffer_rect_to_surface(Rect(b.x1, b.y1, b.width, b.height))
            damage.add_rect(r.x, r.y, r.width, r.height)
        if (self.width, self.height) != old_size:
            damage.add_rect(0, 0, self.width, self.height)
        damage.intersect_rect(0, 0, self.width, self.height)

    def _apply_children(self, state: SurfaceState) -> None:
        """Subsurfaces' positions and stacking order take effect with this commit, and synchronized
        children apply their cached state together with their parent."""
        for child, pos in state.child_positions.items():
            if child.subsurface is not None:
                child.subsurface.position = pos
        if state.child_order is not None:
            self.children = [c for c in state.child_order if c is self or (c.alive and c.subsurface)]
        for child in list(self.children):
            if child is not self and child.subsurface is not None and child.cached is not None:
                if child.subsurface.synchronized:
                    child.apply_cached()

    def _update_mapping(self, bw: int, bh: int) -> None:
        self.mapping = buffer_mapping(
            bw, bh, self.scale, self.transform, self.viewport_source, self.viewport_destination
        )

    def _import(self, state: SurfaceState) -> None:
        buffer = state.buffer
        assert buffer is not None
        shm = ShmBuffer.of(buffer)
        if shm is None:
            # Only wl_shm is advertised, so this is a buffer from some protocol we do not offer.
            raise ProtocolError(self, WlSurface.error.invalid_size, "only wl_shm buffers can be attached")
        row = shm.width * shm.format.pixman.bytes_per_pixel
        if shm.stride < row:
            # libwayland's wl_shm only checks stride >= width (in bytes), not against the format.
            raise ProtocolError(
                self,
                WlSurface.error.invalid_size,
                f"buffer stride {shm.stride} is too small for {shm.width} {shm.format.name} pixels "
                f"({row} bytes a row)",
            )
        tex = self.texture
        damage = Region()
        if tex is None or (tex.width, tex.height, tex.format) != (shm.width, shm.height, shm.format):
            tex = self.texture = Texture(shm.width, shm.height, shm.format)
            damage.add_rect(0, 0, shm.width, shm.height)
        else:
            damage.add(state.buffer_damage)
        # A buffer whose size is not a multiple of the scale is tolerated (rounded down), as mutter does.
        self._update_mapping(shm.width, shm.height)
        assert self.mapping is not None
        for b in state.surface_damage.boxes():
            r = self.mapping.surface_rect_to_buffer(Rect(b.x1, b.y1, b.width, b.height))
            damage.add_rect(r.x, r.y, r.width, r.height)
        damage.intersect_rect(0, 0, shm.width, shm.height)
        if damage:
            tex.upload(shm, damage)
        self.has_content = True
        buffer.post_event(WL_BUFFER_RELEASE)

    # Lifetime -------------------------------------------------------------------------------------

    def on_destroy(self) -> None:
        for state in (self.pending, self.cached):
            if state is not None:
                for cb in state.callbacks:
                    cb.destroy_resource()
                state.reset()
        if self.role is not None:
            self.role.surface_destroyed()
        for fn in list(self.destroy_listeners):
            fn(self)
        # Subsurfaces of this surface lose their parent and unmap.
        for child in self.children:
            if child is not self and child.subsurface is not None:
                child.subsurface.parent_destroyed()
        self.children = []
        self.texture = None
        self.has_content = False
        self.host.surface_destroyed(self)

    # Queries --------------------------------------------------------------------------------------

    @property
    def mapped_content(self) -> bool:
        return self.has_content and self.width > 0 and self.height > 0

    def accepts_input_at(self, sx: float, sy: float) -> bool:
        if not self.mapped_content or not (0 <= sx < self.width and 0 <= sy < self.height):
            return False
        return self.input is None or self.input.contains(int(sx // 1), int(sy // 1))

    def take_offset(self) -> tuple[int, int]:
        off, self.attach_offset = self.attach_offset, (0, 0)
        return off

    def root(self) -> Surface:
        """The surface at the top of this surface's subsurface chain."""
        s = self
        while s.subsurface is not None and s.subsurface.parent is not None:
            s = s.subsurface.parent
        return s


class CompositorGlobal(Resource):
    interface = WlCompositor

    def __init__(self, new_id: NewId, host: SurfaceHost) -> None:
        super().__init__(new_id)
        self.host = host

    def create_surface(self, id: NewId) -> None:
        Surface(id, self.host)

    def create_region(self, id: NewId) -> None:
        RegionResource(id)

    def release(self) -> None:
        pass


class Subsurface(Resource, Role):
    interface = WlSubsurface
    name = "subsurface"

    def __init__(self, new_id: NewId, surface: Surface, parent: Surface) -> None:
        super().__init__(new_id)
        self.surface: Surface | None = surface
        self.parent: Surface | None = parent
        self.position = (0, 0)
        self.sync = True
        surface.subsurface = self
        # A new subsurface goes on top of its siblings, effective at once (as wlroots and weston do).
        parent.children.append(surface)
        if parent.pending.child_order is not None:
            parent.pending.child_order.append(surface)

    @property
    def synchronized(self) -> bool:
        """Effectively synchronized: itself, or any ancestor subsurface is."""
        sub: Subsurface | None = self
        while sub is not None:
            if sub.sync:
                return True
            sub = sub.parent.subsurface if sub.parent is not None else None
        return False

    @property
    def mapped(self) -> bool:
        return self.parent is not None and self.surface is not None and self.surface.mapped_content

    def _pending_order(self) -> list[Surface]:
        assert self.parent is not None
        if self.parent.pending.child_order is None:
            self.parent.pending.child_order = list(self.parent.children)
        return self.parent.pending.child_order

    def destroy(self) -> None:
        pass

    def set_position(self, x: int, y: int) -> None:
        if self.parent is not None and self.surface is not None:
            self.parent.pending.child_positions[self.surface] = (x, y)

    def _restack(self, sibling: Surface, above: bool) -> None:
        if self.parent is None or self.surface is None:
            return
        order = self._pending_order()
        if sibling is self.surface or sibling not in order:
            raise ProtocolError(
                self, WlSubsurface.error.bad_surface, "sibling is neither a sibling nor the parent"
            )
        order.remove(self.surface)
        i = order.index(sibling)
        order.insert(i + 1 if above else i, self.surface)

    def place_above(self, sibling: Surface) -> None:
        self._restack(sibling, above=True)

    def place_below(self, sibling: Surface) -> None:
        self._restack(sibling, above=False)

    def set_sync(self) -> None:
        self.sync = True

    def set_desync(self) -> None:
        was = self.synchronized
        self.sync = False
        if was and not self.synchronized and self.surface is not None and self.surface.cached is not None:
            # Cached state is applied at once when the subsurface becomes effectively desynchronized.
            self.surface.apply_cached()

    def parent_destroyed(self) -> None:
        self.parent = None
        if self.surface is not None:
            self.surface.host.scene_changed()

    def surface_destroyed(self) -> None:
        self._detach()
        self.surface = None

    def _detach(self) -> None:
        if self.parent is not None and self.surface is not None:
            if self.surface in self.parent.children:
                self.parent.children.remove(self.surface)
            if (
                self.parent.pending.child_order is not None
                and self.surface in self.parent.pending.child_order
            ):
                self.parent.pending.child_order.remove(self.surface)
            self.parent.pending.child_positions.pop(self.surface, None)
        self.parent = None

    def on_destroy(self) -> None:
        surface = self.surface
        self._detach()
        if surface is not None:
            surface.subsurface = None
            surface.clear_role(self)
            surface.host.scene_changed()


class SubcompositorGlobal(Resource):
    interface = WlSubcompositor

    def destroy(self) -> None:
        pass

    def get_subsurface(self, id: NewId, surface: Surface, parent: Surface) -> None:
        if surface is parent:
            raise ProtocolError(self, WlSubcompositor.error.bad_parent, "a surface cannot be its own parent")
        ancestor: Surface | None = parent
        while ancestor is not None:
            if ancestor is surface:
                raise ProtocolError(
                    self, WlSubcompositor.error.bad_parent, "the parent is a descendant of the surface"
                )
            ancestor = ancestor.subsurface.parent if ancestor.subsurface is not None else None
        if surface.role_name not in (None, "subsurface") or surface.role is not None:
            raise ProtocolError(
                self, WlSubcompositor.error.bad_surface, f"wl_surface@{surface.id} already has a role"
            )
        sub = Subsurface(id, surface, parent)
        surface.set_role("subsurface", sub, self, WlSubcompositor.error.bad_surface)
        surface.host.scene_changed()
