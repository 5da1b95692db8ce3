"""Rectangles and the 64x64 tile grid the codec reasons in.

The tile grid is part of the protocol: the frame checksum is defined over it (docs/encoding.md), and
video streams cover whole tiles, so the encoder and the decoder must agree on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

#: Side of a tile in pixels. Fixed by the protocol (checksum and video-stream geometry depend on it).
TILE = 64


class Rect(NamedTuple):
    """A pixel rectangle: left, top, width, height. Any ``(x, y, w, h)`` tuple is accepted as damage."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def area(self) -> int:
        return self.width * self.height

    def clip(self, width: int, height: int) -> Rect | None:
        """This rectangle cut to a ``width`` x ``height`` surface, or None when nothing is left."""
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + self.width, width), min(self.y + self.height, height)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)


class TileSpan(NamedTuple):
    """A rectangle of whole tiles: rows ``ty0 <= ty < ty1``, columns ``tx0 <= tx < tx1``."""

    ty0: int
    ty1: int
    tx0: int
    tx1: int

    @property
    def ntiles(self) -> int:
        return (self.ty1 - self.ty0) * (self.tx1 - self.tx0)


def tile_grid(width: int, height: int) -> tuple[int, int]:
    """Number of tile rows and columns covering a ``width`` x ``height`` surface (edge tiles may be cut)."""
    return (height + TILE - 1) // TILE, (width + TILE - 1) // TILE


def tiles_of(rect: Rect) -> TileSpan:
    """The tiles a (clipped) rectangle touches."""
    return TileSpan(
        rect.y // TILE,
        (rect.y + rect.height + TILE - 1) // TILE,
        rect.x // TILE,
        (rect.x + rect.width + TILE - 1) // TILE,
    )


def span_rect(span: TileSpan, width: int, height: int) -> Rect:
    """The pixels of a tile span, cut at the surface's right and bottom edges."""
    x0, y0 = span.tx0 * TILE, span.ty0 * TILE
    return Rect(x0, y0, min(span.tx1 * TILE, width) - x0, min(span.ty1 * TILE, height) - y0)


class RectLike(Protocol):
    """Anything with x, y, width, height (the compositor's Rect, this module's Rect)."""

    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


#: Damage as the encoder accepts it: (x, y, width, height) tuples or objects with those attributes.
DamageRect = tuple[int, int, int, int] | RectLike


def as_rect(r: DamageRect) -> Rect:
    if isinstance(r, tuple):
        x, y, w, h = r
        return Rect(int(x), int(y), int(w), int(h))
    return Rect(int(r.x), int(r.y), int(r.width), int(r.height))


def clip_all(rects: Iterable[DamageRect], width: int, height: int) -> list[Rect]:
    """Damage rectangles cut to the surface; empty and off-surface ones dropped."""
    out = []
    for r in rects:
        c = as_rect(r).clip(width, height)
        if c is not None:
            out.append(c)
    return out


def coalesce(rects: list[Rect]) -> list[Rect]:
    """Merge rectangles that overlap or touch into their bounding boxes (until none do).

    Used to find the areas worth searching for a scroll: a terminal's damage may arrive as several
    abutting strips, but the scroll moves all of them together.
    """
    merged = list(rects)
    changed = True
    while changed:
        changed = False
        out: list[Rect] = []
        for r in merged:
            for i, o in enumerate(out):
                if r.x <= o.right and o.x <= r.right and r.y <= o.bottom and o.y <= r.bottom:
                    x0, y0 = min(r.x, o.x), min(r.y, o.y)
                    out[i] = Rect(x0, y0, max(r.right, o.right) - x0, max(r.bottom, o.bottom) - y0)
                    changed = True
                    break
            else:
                out.append(r)
        merged = out
    return merged


def tile_runs(row: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, end) of each run of set entries in a row of tiles, left to right."""
    runs: list[tuple[int, int]] = []
    cols = np.flatnonzero(row).tolist()  # a tile row is short (30 tiles at 1920): plain Python wins
    if cols:
        start = prev = cols[0]
        for c in cols[1:]:
            if c != prev + 1:
                runs.append((start, prev + 1))
                start = c
            prev = c
        runs.append((start, prev + 1))
    return runs


def tile_blocks(mask: NDArray[np.bool_]) -> list[TileSpan]:
    """Rectangles of tiles covering the set tiles of ``mask`` exactly: runs of adjacent tiles in a
    tile row, merged with the tile rows below that have the very same run.

    A window's damage (the usual case) is one block, however many tile rows it spans.
    """
    blocks: list[TileSpan] = []
    open_runs: dict[tuple[int, int], int] = {}  # (tx0, tx1) -> first tile row
    rows = np.flatnonzero(mask.any(axis=1)).tolist()
    prev_row = -2
    for ty in rows:
        runs = dict.fromkeys(tile_runs(mask[ty]))
        next_open: dict[tuple[int, int], int] = {}
        for run, first in open_runs.items():
            if ty == prev_row + 1 and run in runs:
                next_open[run] = first
            else:
                blocks.append(TileSpan(first, prev_row + 1, run[0], run[1]))
        for run in runs:
            next_open.setdefault(run, ty)
        open_runs = next_open
        prev_row = ty
    blocks.extend(TileSpan(first, prev_row + 1, run[0], run[1]) for run, first in open_runs.items())
    return blocks
