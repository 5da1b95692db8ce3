"""Rectangles and the buffer <-> surface <-> output coordinate maps (pure functions, no protocol)."""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

Matrix = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
IDENTITY: Matrix = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True, slots=True)
class Rect:
    """An axis-aligned rectangle: origin and size (width/height may be 0 for an empty one)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def x2(self) -> int:
        return self.x + self.width

    @property
    def y2(self) -> int:
        return self.y + self.height

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px < self.x2 and self.y <= py < self.y2

    def translate(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.width, self.height)

    def intersect(self, other: Rect) -> Rect:
        x1, y1 = max(self.x, other.x), max(self.y, other.y)
        x2, y2 = min(self.x2, other.x2), min(self.y2, other.y2)
        return Rect(x1, y1, max(0, x2 - x1), max(0, y2 - y1))

    def scale(self, factor: int) -> Rect:
        return Rect(self.x * factor, self.y * factor, self.width * factor, self.height * factor)


class Transform(enum.IntEnum):
    """wl_output.transform: how the client rotated/flipped its buffer relative to the surface."""

    NORMAL = 0
    ROTATE_90 = 1
    ROTATE_180 = 2
    ROTATE_270 = 3
    FLIPPED = 4
    FLIPPED_90 = 5
    FLIPPED_180 = 6
    FLIPPED_270 = 7

    @property
    def swaps_axes(self) -> bool:
        return self.value & 1 == 1


def _mul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(  # type: ignore[return-value]
        tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3)
    )


def _translate(tx: float, ty: float) -> Matrix:
    return ((1.0, 0.0, tx), (0.0, 1.0, ty), (0.0, 0.0, 1.0))


def _scale(sx: float, sy: float) -> Matrix:
    return ((sx, 0.0, 0.0), (0.0, sy, 0.0), (0.0, 0.0, 1.0))


def transform_matrix(transform: Transform, width: float, height: float) -> Matrix:
    """Map a point of the transformed (surface-oriented) buffer, ``width`` x ``height``, to the raw buffer.

    The same table as weston's ``weston_transformed_coord``.
    """
    w, h = width, height
    rows: dict[Transform, Matrix] = {
        Transform.NORMAL: IDENTITY,
        Transform.FLIPPED: ((-1.0, 0.0, w), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        Transform.ROTATE_90: ((0.0, 1.0, 0.0), (-1.0, 0.0, w), (0.0, 0.0, 1.0)),
        Transform.FLIPPED_90: ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
        Transform.ROTATE_180: ((-1.0, 0.0, w), (0.0, -1.0, h), (0.0, 0.0, 1.0)),
        Transform.FLIPPED_180: ((1.0, 0.0, 0.0), (0.0, -1.0, h), (0.0, 0.0, 1.0)),
        Transform.ROTATE_270: ((0.0, -1.0, h), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
        Transform.FLIPPED_270: ((0.0, -1.0, h), (-1.0, 0.0, w), (0.0, 0.0, 1.0)),
    }
    return rows[transform]


def apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    return (m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2])


@dataclass(frozen=True)
class BufferMapping:
    """How a surface's buffer is shown: size of the surface and the map surface -> buffer pixels."""

    surface_width: int
    surface_height: int
    surface_to_buffer: Matrix
    trivial: bool  # buffer pixels are surface pixels times ``scale`` with no other change

    @functools.cached_property
    def buffer_to_surface(self) -> Matrix:
        return invert(self.surface_to_buffer)

    def buffer_rect_to_surface(self, rect: Rect) -> Rect:
        """Bounding box in surface coordinates of a rectangle of buffer pixels (rounded outward)."""
        return _bbox(self.buffer_to_surface, rect)

    def surface_rect_to_buffer(self, rect: Rect) -> Rect:
        return _bbox(self.surface_to_buffer, rect)

    def source_pixels(self) -> Rect:
        """The buffer pixels the whole surface shows, rounded inward (a fractional viewport source
        only half-covers its edge pixels, which must not be sampled)."""
        w, h = self.surface_width, self.surface_height
        pts = [apply(self.surface_to_buffer, x, y) for x in (0, w) for y in (0, h)]
        x1 = math.ceil(min(p[0] for p in pts) - 1e-6)
        y1 = math.ceil(min(p[1] for p in pts) - 1e-6)
        x2 = math.floor(max(p[0] for p in pts) + 1e-6)
        y2 = math.floor(max(p[1] for p in pts) + 1e-6)
        if x2 <= x1 or y2 <= y1:
            return _bbox(self.surface_to_buffer, Rect(0, 0, self.surface_width, self.surface_height))
        return Rect(x1, y1, x2 - x1, y2 - y1)


@functools.lru_cache(maxsize=64, typed=True)
def buffer_mapping(
    buffer_width: int,
    buffer_height: int,
    scale: int,
    transform: Transform,
    source: tuple[float, float, float, float] | None,
    destination: tuple[int, int] | None,
) -> BufferMapping:
    """How a buffer of this size, scale and transform shows; ``source`` and ``destination`` are
    wp_viewport's (in surface-oriented buffer units / 1).

    The same arguments give the same (immutable) mapping: a client committing a buffer of the same
    size every frame gets it from a cache instead of three matrix products in Python."""
    tw, th = (buffer_height, buffer_width) if transform.swaps_axes else (buffer_width, buffer_height)
    # Transformed buffer in surface units (before any viewport).
    lw, lh = tw / scale, th / scale
    if source is not None:
        sx, sy, sw, sh = source
    else:
        sx, sy, sw, sh = 0.0, 0.0, lw, lh
    if destination is not None:
        dw, dh = destination
    elif source is not None:
        dw, dh = int(sw), int(sh)
    else:
        dw, dh = int(lw), int(lh)
    # surface -> viewport source (surface units of the transformed buffer) -> buffer px -> raw.
    m = _translate(sx, sy)
    if dw > 0 and dh > 0:
        m = _mul(m, _scale(sw / dw, sh / dh))
    m = _mul(_scale(scale, scale), m)
    m = _mul(transform_matrix(transform, tw, th), m)
    trivial = transform == Transform.NORMAL and source is None and destination is None
    return BufferMapping(dw, dh, m, trivial)


def _bbox(m: Matrix, rect: Rect) -> Rect:
    pts = [apply(m, x, y) for x in (rect.x, rect.x2) for y in (rect.y, rect.y2)]
    x1 = math.floor(min(p[0] for p in pts))
    y1 = math.floor(min(p[1] for p in pts))
    x2 = math.ceil(max(p[0] for p in pts))
    y2 = math.ceil(max(p[1] for p in pts))
    return Rect(x1, y1, x2 - x1, y2 - y1)


def invert(m: Matrix) -> Matrix:
    """Inverse of an affine 3x3 matrix (last row 0 0 1)."""
    a, b, c = m[0]
    d, e, f = m[1]
    det = a * e - b * d
    if det == 0:
        raise ZeroDivisionError("singular transform")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return ((ia, ib, -(ia * c + ib * f)), (id_, ie, -(id_ * c + ie * f)), (0.0, 0.0, 1.0))


def output_to_buffer(mapping: BufferMapping, output_scale: int) -> Matrix:
    """Map output pixels (relative to the surface origin on the output) to raw buffer pixels."""
    return _mul(mapping.surface_to_buffer, _scale(1 / output_scale, 1 / output_scale))
