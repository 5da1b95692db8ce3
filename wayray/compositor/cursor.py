"""The pointer's cursor: what the viewer draws (``Cursor``), and named cursors from the Xcursor theme.

The cursor is never composited into the framebuffer: viewers draw it themselves, from
``CursorState``. Clients usually provide it (a surface with the ``cursor`` role, from
wl_pointer.set_cursor). The compositor needs its own image where no client does: over the
background, and for wp_cursor_shape_v1 names. Xcursor files are a small binary format: a table of
contents and premultiplied ARGB images per nominal size.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from pywayland.protocol.wayland import WlPointer

from wayray.compositor.surface import Role, Surface
from wayray.wayland.server import ProtocolError, Resource

XCURSOR_MAGIC = b"Xcur"
XCURSOR_IMAGE_TYPE = 0xFFFD0002
ICON_DIRS = (Path.home() / ".icons", Path("/usr/share/icons"), Path("/usr/share/pixmaps"))
DEFAULT_SIZE = 24

# CSS cursor names (cursor-shape) -> older X11 names to try when a theme lacks the CSS one.
FALLBACKS = {
    "default": ("left_ptr", "arrow"),
    "pointer": ("hand2", "hand1"),
    "text": ("xterm", "ibeam"),
    "wait": ("watch",),
    "progress": ("left_ptr_watch",),
    "help": ("question_arrow",),
    "crosshair": ("cross",),
    "move": ("fleur",),
    "all-scroll": ("fleur",),
    "not-allowed": ("crossed_circle",),
    "grab": ("openhand", "hand1"),
    "grabbing": ("closedhand", "fleur"),
    "e-resize": ("right_side",),
    "w-resize": ("left_side",),
    "n-resize": ("top_side",),
    "s-resize": ("bottom_side",),
    "ne-resize": ("top_right_corner",),
    "nw-resize": ("top_left_corner",),
    "se-resize": ("bottom_right_corner",),
    "sw-resize": ("bottom_left_corner",),
    "ew-resize": ("sb_h_double_arrow", "h_double_arrow"),
    "ns-resize": ("sb_v_double_arrow", "v_double_arrow"),
}


@dataclass(frozen=True)
class CursorImage:
    pixels: np.ndarray  # premultiplied ARGB8888, uint32 (height, width)
    hotspot: tuple[int, int]


def parse_xcursor(data: bytes, size: int = DEFAULT_SIZE) -> CursorImage | None:
    """The first image of the nominal size closest to ``size`` in an Xcursor file, or None."""
    if len(data) < 16 or data[:4] != XCURSOR_MAGIC:
        return None
    header_size, _version, ntoc = struct.unpack_from("<III", data, 4)
    entries = []
    for i in range(min(ntoc, 4096)):
        off = header_size + i * 12
        if off + 12 > len(data):
            break
        kind, subtype, position = struct.unpack_from("<III", data, off)
        if kind == XCURSOR_IMAGE_TYPE:
            entries.append((abs(subtype - size), subtype, position))
    if not entries:
        return None
    _, _, position = min(entries)
    if position + 36 > len(data):
        return None
    _hsize, _kind, _nominal, _ver, width, height, xhot, yhot, _delay = struct.unpack_from(
        "<9I", data, position
    )
    start = position + 36
    end = start + width * height * 4
    if width == 0 or height == 0 or width > 1024 or height > 1024 or end > len(data):
        return None
    pixels = np.frombuffer(data[start:end], dtype="<u4").reshape(height, width).astype(np.uint32)
    return CursorImage(pixels=pixels, hotspot=(min(xhot, width - 1), min(yhot, height - 1)))


def _inherits(theme_dir: Path) -> list[str]:
    index = theme_dir / "index.theme"
    try:
        for line in index.read_text(errors="replace").splitlines():
            if line.strip().startswith("Inherits"):
                return [t.strip() for t in line.split("=", 1)[1].split(",") if t.strip()]
    except OSError:
        pass
    return []


def _find(theme: str, name: str, seen: set[str]) -> Path | None:
    if theme in seen:
        return None
    seen.add(theme)
    for base in ICON_DIRS:
        candidate = base / theme / "cursors" / name
        if candidate.is_file():
            return candidate
    for base in ICON_DIRS:
        if (base / theme).is_dir():
            for parent in _inherits(base / theme):
                found = _find(parent, name, seen)
                if found is not None:
                    return found
    return None


@functools.lru_cache(maxsize=64)
def load_cursor(name: str, theme: str | None = None, size: int = DEFAULT_SIZE) -> CursorImage | None:
    """A named cursor from ``theme`` ($XCURSOR_THEME or "default"), or None when none is installed."""
    theme = theme or os.environ.get("XCURSOR_THEME") or "default"
    for candidate in (name, *FALLBACKS.get(name, ())):
        path = _find(theme, candidate, set())
        if path is None and theme != "Adwaita":
            path = _find("Adwaita", candidate, set())
        if path is not None:
            try:
                image = parse_xcursor(path.read_bytes(), size)
            except OSError:
                image = None
            if image is not None:
                return image
    return None


# The cursor viewers draw ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CursorState:
    """The pointer as the viewer should draw it: separate from the framebuffer.

    ``image`` is premultiplied ARGB8888 (uint32, height x width) or None when hidden or unset;
    ``hotspot`` is in image pixels; ``serial`` changes exactly when image or hotspot change;
    ``x``/``y`` are output pixel coordinates; ``scale`` is the image's buffer scale.
    """

    image: np.ndarray | None
    hotspot: tuple[int, int]
    serial: int
    x: int
    y: int
    visible: bool
    scale: int = 1


class CursorHost(Protocol):
    """What the cursor needs of the compositor (``Core``, through the seat)."""

    def cursor_changed(self) -> None:
        """The image or hotspot changed (``serial`` moved on)."""

    def schedule_frame(self) -> None:
        """Run the frame clock soon (a cursor surface committed and waits for its frame callback)."""


class CursorRole(Role):
    """The ``cursor`` role of a surface a client passed to wl_pointer.set_cursor."""

    name = "cursor"

    def __init__(self, cursor: Cursor, surface: Surface) -> None:
        self.cursor = cursor
        self.surface: Surface | None = surface
        self.hotspot = (0, 0)

    def committed(self) -> None:
        s = self.surface
        if s is None:
            return
        dx, dy = s.take_offset()
        self.hotspot = (self.hotspot[0] - dx, self.hotspot[1] - dy)
        if self.cursor.surface is s:
            self.cursor.from_surface()
        # Cursor surfaces are never composited, but clients wait on their frame callbacks too.
        self.cursor.host.schedule_frame()

    def surface_destroyed(self) -> None:
        if self.cursor.surface is self.surface:
            self.cursor.surface = None
            self.cursor.set_image(None, (0, 0), 1)
        self.surface = None


class Cursor:
    """The cursor's image, hotspot and visibility: a client's cursor surface, a theme cursor, or none."""

    def __init__(self, host: CursorHost) -> None:
        self.host = host
        self.surface: Surface | None = None  # the client's cursor surface shown now, if any
        self.image: np.ndarray | None = None
        self.hotspot = (0, 0)
        self.scale = 1
        self.serial = 0
        self.visible = True
        self.use_default()

    def set_surface(self, surface: Surface, hx: int, hy: int, pointer: Resource) -> None:
        """wl_pointer.set_cursor with a surface (``pointer`` carries the role error)."""
        if surface.role is not None and not isinstance(surface.role, CursorRole):
            raise ProtocolError(
                pointer, WlPointer.error.role, f"wl_surface@{surface.id} already has another role"
            )
        if surface.role_name not in (None, "cursor"):
            raise ProtocolError(
                pointer, WlPointer.error.role, f"wl_surface@{surface.id} already has another role"
            )
        role = surface.role
        if role is None:
            role = CursorRole(self, surface)
            surface.set_role("cursor", role, pointer, WlPointer.error.role)
        assert isinstance(role, CursorRole)
        role.hotspot = (hx, hy)
        self.surface = surface
        self.from_surface()

    def hide(self) -> None:
        """wl_pointer.set_cursor without a surface."""
        self.surface = None
        self.set_image(None, (0, 0), 1, visible=False)

    def from_surface(self) -> None:
        s = self.surface
        if s is None:
            return
        role = s.role
        hx, hy = role.hotspot if isinstance(role, CursorRole) else (0, 0)
        tex = s.texture
        if tex is None or not s.has_content or tex.array.dtype != np.uint32:
            self.set_image(None, (0, 0), 1, visible=False)
            return
        image = tex.array.copy()
        if tex.opaque:
            image |= np.uint32(0xFF000000)
        self.set_image(image, (hx * s.scale, hy * s.scale), s.scale)

    def use_default(self, name: str = "default") -> None:
        """The theme's cursor ``name`` (a CSS cursor name), the compositor's own."""
        img = load_cursor(name)
        self.surface = None
        if img is None:
            self.set_image(None, (0, 0), 1, visible=True)
        else:
            self.set_image(img.pixels, img.hotspot, 1)

    def set_image(
        self, image: np.ndarray | None, hotspot: tuple[int, int], scale: int, *, visible: bool = True
    ) -> None:
        same = (
            visible == self.visible
            and hotspot == self.hotspot
            and scale == self.scale
            and (
                (image is None and self.image is None)
                or (
                    image is not None
                    and self.image is not None
                    and image.shape == self.image.shape
                    and bool(np.array_equal(image, self.image))
                )
            )
        )
        if same:
            return
        self.image = image
        self.hotspot = hotspot
        self.scale = scale
        self.visible = visible
        self.serial += 1
        self.host.cursor_changed()

    def state(self, x: int, y: int) -> CursorState:
        """What the viewer draws, with the pointer at output pixel (x, y)."""
        return CursorState(
            image=self.image,
            hotspot=self.hotspot,
            serial=self.serial,
            x=x,
            y=y,
            visible=self.visible and self.image is not None,
            scale=self.scale,
        )
