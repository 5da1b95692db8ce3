"""The frame checksum, kept up to date tile by tile.

Definition (docs/encoding.md, "Checksum"): every 64x64 tile (edge tiles cut to the surface) gets the
CRC-32 (zlib's, ISO-HDLC polynomial) of its pixels as bytes, rows packed, B, G, R, X per pixel; a
tile inside an active video stream counts as 0, because H.264 is lossy and only its exact refresh
makes it comparable again. The frame checksum is the CRC-32 of the little-endian u32 sequence
``width, height, tile_crc[0], tile_crc[1], ...`` with tiles in row-major order.

Both sides recompute only the tiles a frame touched, so a typed character costs microseconds and a
full 1080p change about 3 ms.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from wayray.codec.geometry import TILE, TileSpan, tile_blocks, tile_grid

#: Up to this many touched tiles are checksummed one by one (the block path's set-up costs more).
_FEW_TILES = 6


class TileChecksums:
    """Per-tile CRC-32s of one framebuffer and the frame checksum built from them."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        rows, cols = tile_grid(width, height)
        self._crc = np.zeros((rows, cols), dtype="<u4")
        self._header = np.array([width, height], dtype="<u4").tobytes()

    @property
    def shape(self) -> tuple[int, int]:
        """Tile rows and columns."""
        rows, cols = self._crc.shape
        return rows, cols

    def refresh(self, fb: NDArray[np.uint32], span: TileSpan) -> None:
        """Recompute the tiles of ``span`` from ``fb``."""
        crc = self._crc
        for ty in range(span.ty0, span.ty1):
            band = fb[ty * TILE : (ty + 1) * TILE]
            for tx in range(span.tx0, span.tx1):
                tile = np.ascontiguousarray(band[:, tx * TILE : (tx + 1) * TILE])
                crc[ty, tx] = zlib.crc32(tile.data)

    def refresh_mask(self, fb: NDArray[np.uint32], touched: NDArray[np.bool_]) -> None:
        """Recompute the ``touched`` tiles: whole tiles a block at a time (one copy into tile order,
        then one CRC per tile, instead of a copy per tile); tiles cut by the surface's edges alone."""
        crc = self._crc
        if int(np.count_nonzero(touched)) <= _FEW_TILES:  # a typed character: blocks cost more
            for ty, tx in zip(*np.nonzero(touched), strict=True):
                tile = np.ascontiguousarray(fb[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE])
                crc[ty, tx] = zlib.crc32(tile.data)
            return
        full_rows, full_cols = self.height // TILE, self.width // TILE
        inner = touched.copy()
        inner[full_rows:, :] = False
        inner[:, full_cols:] = False
        size = TILE * TILE * 4
        for sp in tile_blocks(inner):
            r, c = sp.ty1 - sp.ty0, sp.tx1 - sp.tx0
            band = fb[sp.ty0 * TILE : sp.ty1 * TILE, sp.tx0 * TILE : sp.tx1 * TILE]
            tiles = np.ascontiguousarray(band.reshape(r, TILE, c, TILE).swapaxes(1, 2)).data.cast("B")
            crc[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = np.array(
                [zlib.crc32(tiles[i * size : (i + 1) * size]) for i in range(r * c)], dtype="<u4"
            ).reshape(r, c)
        edge = touched & ~inner
        for ty, tx in zip(*np.nonzero(edge), strict=True):
            tile = np.ascontiguousarray(fb[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE])
            crc[ty, tx] = zlib.crc32(tile.data)

    def refresh_all(self, fb: NDArray[np.uint32]) -> None:
        rows, cols = self._crc.shape
        self.refresh(fb, TileSpan(0, rows, 0, cols))

    def blank(self, span: TileSpan) -> None:
        """Tiles of a video stream: not compared (their pixels are lossy until refreshed)."""
        self._crc[span.ty0 : span.ty1, span.tx0 : span.tx1] = 0

    def value(self) -> int:
        return zlib.crc32(self._crc.tobytes(), zlib.crc32(self._header))


def frame_checksum(fb: NDArray[np.uint32], video: Iterable[TileSpan] = ()) -> int:
    """The checksum of a whole framebuffer from scratch (the reference the incremental one must match)."""
    height, width = fb.shape
    sums = TileChecksums(width, height)
    sums.refresh_all(fb)
    for span in video:
        sums.blank(span)
    return sums.value()
