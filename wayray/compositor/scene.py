"""What is on screen, in which order, and compositing it into the framebuffer with exact damage.

``Scene.views()`` flattens the layers, windows, subsurfaces and popups into a bottom-to-top list of
surfaces with their layout positions. ``Renderer.render()`` turns "what changed since the last
frame" into output damage -- client damage (wl_surface.damage/damage_buffer) translated to the
output, plus the old and new bounds of anything that moved, appeared, vanished or changed place in
the stack -- and repaints only that region with pixman.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from wayray.compositor.geometry import Rect, output_to_buffer
from wayray.wayland.pixman import LIMIT, Filter, Format, Image, Op, Region, composite

if TYPE_CHECKING:
    from wayray.compositor.avsync import Snapshot
    from wayray.compositor.layer_shell import LayerShell
    from wayray.compositor.output import Output
    from wayray.compositor.surface import Surface
    from wayray.compositor.text_input import TextInputs
    from wayray.compositor.wm import FloatingWM
    from wayray.compositor.xdg_popup import PopupRole

BACKGROUND = 0xFF2E3440  # the colour where no surface is (opaque, XRGB)


class Overlay(Protocol):
    """A surface placed by its client, above the windows: an X override-redirect window (a menu)."""

    @property
    def surface(self) -> Surface | None: ...

    @property
    def x(self) -> int: ...

    @property
    def y(self) -> int: ...


@dataclass(frozen=True, slots=True)
class View:
    """A surface drawn with its origin at (x, y) in layout coordinates."""

    surface: Surface
    x: int
    y: int


class Scene:
    """The stacking of the output: layer surfaces below and above the window manager's windows."""

    def __init__(self, output: Output, layers: LayerShell, wm: FloatingWM) -> None:
        self.output = output
        self.layers = layers
        self.wm = wm
        #: Override-redirect X windows, bottom to top (the XWM's list, while one runs).
        self.overlays: list[Overlay] = []
        #: The seat's input methods: their candidate windows are drawn on top of everything.
        self.text_inputs: TextInputs | None = None

    def views(self) -> list[View]:
        out: list[View] = []
        layers = self.layers
        for level in (0, 1):
            for ls in layers.mapped(level):
                self._tree(ls.surface, *ls.surface_origin(), out)
                self._popups(ls.popups, out)
        wm = self.wm
        fullscreen = wm.focused if wm.focused is not None and wm.focused.fullscreen else None
        for w in wm.stack:
            if w is fullscreen or w.surface is None or not w.surface.mapped_content:
                continue
            if w.server_decorated:
                w.titlebar.update(self.output.scale, self.output.logical.width)
                if w.titlebar.mapped_content:
                    out.append(View(w.titlebar, *w.titlebar.origin()))  # type: ignore[arg-type]
            self._tree(w.surface, *w.surface_origin(), out)
            self._popups(w.popups, out)
        if fullscreen is None:
            for ls in layers.mapped(2):
                self._tree(ls.surface, *ls.surface_origin(), out)
                self._popups(ls.popups, out)
        elif fullscreen.surface is not None:
            self._tree(fullscreen.surface, *fullscreen.surface_origin(), out)
            self._popups(fullscreen.popups, out)
        for overlay in self.overlays:
            self._tree(overlay.surface, overlay.x, overlay.y, out)
        for ls in layers.mapped(3):
            self._tree(ls.surface, *ls.surface_origin(), out)
            self._popups(ls.popups, out)
        if self.text_inputs is not None and self.text_inputs.popups:
            origin_of = {v.surface: (v.x, v.y) for v in out}
            for surface, x, y in self.text_inputs.popup_places(origin_of, self.output.logical):
                self._tree(surface, x, y, out)
        return out

    def _tree(self, surface: Surface | None, x: int, y: int, out: list[View]) -> None:
        if surface is None or not surface.mapped_content:
            return
        for child in surface.children:
            if child is surface:
                out.append(View(surface, x, y))
            else:
                sub = child.subsurface
                if sub is not None and sub.parent is surface:
                    px, py = sub.position
                    self._tree(child, x + px, y + py, out)

    def _popups(self, popups: list[PopupRole], out: list[View]) -> None:
        for popup in popups:
            if popup.alive and popup.is_mapped and popup.surface is not None:
                self._tree(popup.surface, *popup.surface_origin(), out)
                self._popups(popup.children, out)

    def surface_at(self, x: float, y: float) -> tuple[Surface, int, int] | None:
        """The topmost surface accepting input at layout point (x, y), with its origin."""
        for view in reversed(self.views()):
            if view.surface.accepts_input_at(x - view.x, y - view.y):
                return (view.surface, view.x, view.y)
        return None


class Renderer:
    """The output framebuffer (XRGB8888, uint32 H x W) and the repaint of damaged regions.

    :meth:`park` lets the framebuffer go (8 MiB at 1080p) while nobody looks at the output: damage
    is still tracked and nothing is drawn. The next use of :attr:`framebuffer` or :attr:`image`
    draws a new one whole from the views ``park`` was given (the surfaces keep their own pixels, so
    it is the picture a framebuffer kept all along would hold, bit for bit). A renderer nobody parks
    holds its framebuffer from the start, as a compositor run in-process (tests) always does."""

    def __init__(self, width: int, height: int, scale: int) -> None:
        self._views: Callable[[], list[View]] | None = None
        #: Surfaces drawn from an older copy of their pixels (av-sync, ``avsync.AvSync.shown``).
        self.delayed: dict[Surface, Snapshot] = {}
        self.resize(width, height, scale)

    def resize(self, width: int, height: int, scale: int) -> None:
        self.width, self.height, self.scale = width, height, scale
        self._previous: dict[Surface, tuple[Rect, int]] = {}
        self._views = None  # a resized output is drawn now, parked or not
        self._allocate()
        assert self._image is not None
        self._image.fill(Op.SRC, BACKGROUND, [Region.rect(0, 0, width, height).extents])

    def _allocate(self) -> None:
        self._framebuffer: np.ndarray | None = np.zeros((self.height, self.width), dtype=np.uint32)
        self._image: Image | None = Image(self._framebuffer, Format.X8R8G8B8, self.width)

    @property
    def parked(self) -> bool:
        return self._framebuffer is None

    def park(self, views: Callable[[], list[View]]) -> None:
        """Let the framebuffer go until it is next used; ``views`` then gives what to draw again."""
        self._views = views
        self._framebuffer = self._image = None

    def _unpark(self) -> None:
        views, self._views = self._views, None
        assert views is not None
        self._allocate()  # every pixel is drawn at once, background first
        self.render(views(), self.full_damage())

    @property
    def framebuffer(self) -> np.ndarray:
        if self._framebuffer is None:
            self._unpark()
        assert self._framebuffer is not None
        return self._framebuffer

    @property
    def image(self) -> Image:
        if self._image is None:
            self._unpark()
        assert self._image is not None
        return self._image

    def _output_rect(self, view: View) -> Rect:
        s = view.surface
        return Rect(view.x, view.y, s.width, s.height).scale(self.scale)

    def damage(self, views: list[View], surfaces: set[Surface]) -> Region:
        """Output damage since the last call; clears every surface's pending frame damage."""
        damage = Region()
        current: dict[Surface, tuple[Rect, int]] = {}
        for index, view in enumerate(views):
            rect = self._output_rect(view)
            current[view.surface] = (rect, index)
            before = self._previous.get(view.surface)
            if before is None or before != (rect, index):
                damage.add_rect(rect.x, rect.y, rect.width, rect.height)
                if before is not None:
                    r = before[0]
                    damage.add_rect(r.x, r.y, r.width, r.height)
                continue
            sd = view.surface.frame_damage
            if sd:
                snap = self.delayed.get(view.surface) if self.delayed else None
                mapping, scale = (view.surface.mapping, view.surface.scale) if snap is None else (
                    snap.mapping, snap.scale)  # fmt: skip
                trivial = mapping is not None and mapping.trivial
                pad = 0 if trivial and scale == self.scale else 1
                for b in sd.boxes():
                    damage.add_rect(
                        rect.x + b.x1 * self.scale - pad,
                        rect.y + b.y1 * self.scale - pad,
                        b.width * self.scale + 2 * pad,
                        b.height * self.scale + 2 * pad,
                    )
        for surface, (rect, _index) in self._previous.items():
            if surface not in current:
                damage.add_rect(rect.x, rect.y, rect.width, rect.height)
        for surface in surfaces:
            surface.frame_damage.clear()
        for view in views:
            view.surface.frame_damage.clear()
        self._previous = current
        damage.intersect_rect(0, 0, self.width, self.height)
        return damage

    def full_damage(self) -> Region:
        return Region.rect(0, 0, self.width, self.height)

    def render(self, views: list[View], damage: Region) -> None:
        """Repaint ``damage`` (output pixels): background, then every view bottom to top."""
        if not damage or self._image is None:
            return  # parked: the next use draws everything
        fb = self._image
        fb.set_clip(damage)
        fb.fill(Op.SRC, BACKGROUND, damage.boxes())
        extents = damage.extents
        delayed = self.delayed
        for view in views:
            s = view.surface
            snap = delayed.get(s) if delayed else None
            if snap is None:
                tex, mapping, s_scale = s.texture, s.mapping, s.scale
                if tex is None or mapping is None:
                    continue
                r = self._output_rect(view)
            else:  # av-sync: older pixels, at the current place, within both sizes
                tex, mapping, s_scale = snap.texture, snap.mapping, snap.scale
                w = min(s.width, mapping.surface_width)
                h = min(s.height, mapping.surface_height)
                r = Rect(view.x, view.y, w, h).scale(self.scale)
            # Only the part within the damage is drawn: a client may place or size a surface far
            # beyond the output (any int32, times the scale), and pixman takes int32 coordinates.
            x1, y1 = max(r.x, extents.x1), max(r.y, extents.y1)
            x2, y2 = min(r.x2, extents.x2), min(r.y2, extents.y2)
            if x2 <= x1 or y2 <= y1:
                continue
            op = Op.SRC if tex.opaque else Op.OVER
            if mapping.trivial and s_scale == self.scale:
                if x1 - r.x >= tex.width or y1 - r.y >= tex.height:
                    continue
                tex.image.set_transform(None, Filter.NEAREST)
                composite(op, tex.image, fb, x1 - r.x, y1 - r.y, x1, y1, x2 - x1, y2 - y1)
                continue
            # Scaled, transformed or cropped: sample only the part of the buffer the surface shows,
            # with its edges padded, so filtering never bleeds in pixels from outside that part.
            crop = mapping.source_pixels().intersect(Rect(0, 0, tex.width, tex.height))
            if crop.empty:
                continue
            m = output_to_buffer(mapping, self.scale)
            m = ((m[0][0], m[0][1], m[0][2] - crop.x), (m[1][0], m[1][1], m[1][2] - crop.y), m[2])
            integral = all(float(v).is_integer() for row in m for v in row)
            src = Image(tex.storage[crop.y : crop.y2, crop.x :], tex.image.format, crop.width)
            src.set_repeat_pad()
            src.set_transform(m, Filter.NEAREST if integral else Filter.BILINEAR)
            sx, sy = x1 - r.x, y1 - r.y
            if sx > LIMIT or sy > LIMIT:
                continue  # surface pixels this far from its origin are never on an output anyway
            composite(op, src, fb, sx, sy, x1, y1, x2 - x1, y2 - y1)
        fb.set_clip(None)
