"""Named cursors from the installed Xcursor theme (the compositor's own cursor and cursor-shape).

Clients usually draw their cursor themselves (wl_pointer.set_cursor). The compositor needs its own
image where no client does: over the background, and for wp_cursor_shape_v1 names. Xcursor files
are a small binary format: a table of contents and premultiplied ARGB images per nominal size.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
