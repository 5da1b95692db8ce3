"""The lossless path: which tiles really changed, which rectangles to send, and how to encode each.

Everything is measured against the encoder's *model*: a copy of the pixels the client holds. Damage
from the compositor only says where to look; pixels that were damaged but did not change cost nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import zstandard
from numpy.typing import NDArray

from wayray.codec.errors import CodecError
from wayray.codec.geometry import TILE, Rect, TileSpan, tile_blocks, tile_runs
from wayray.codec.settings import EncoderSettings
from wayray.wire.display import Region, RegionEncoding

#: When at most this share of a region's pixels changed, XOR against the client's pixels is sent
#: without trying RAW: the unchanged pixels become zeros, which zstd nearly erases.
XOR_ONLY_SHARE = 0.1
#: When at least this share changed in a big region, RAW is sent without trying XOR (XOR of two
#: unrelated pictures compresses worse than either). In between, both are compressed and the smaller
#: one wins: text favours RAW (the same glyphs repeat, and zstd finds them; XOR mixes old and new
#: glyphs), animations favour XOR (bench/codec_bench.py shows both).
RAW_ONLY_SHARE = 0.9
#: Regions of at most this many pixels (a typed letter and the cursor after it: 14x14 in foot) always
#: try both RAW and XOR, never only the last winner there: it takes microseconds, and which is smaller
#: changes from letter to letter (a few bytes either way).
TINY_PIXELS = 4096


@dataclass(slots=True)
class TileDiff:
    """Per tile: did any pixel change, the bounding box of the changed pixels, how many changed."""

    changed: NDArray[np.bool_]
    #: x0, y0, x1, y1 in surface pixels (exclusive ends); meaningful only where ``changed``.
    bbox: NDArray[np.int32]
    count: NDArray[np.int64]

    @classmethod
    def empty(cls, rows: int, cols: int) -> TileDiff:
        return cls(
            np.zeros((rows, cols), dtype=bool),
            np.zeros((rows, cols, 4), dtype=np.int32),
            np.zeros((rows, cols), dtype=np.int64),
        )

    @classmethod
    def whole_tiles(cls, mask: NDArray[np.bool_], width: int, height: int) -> TileDiff:
        """Every tile of ``mask`` counted as entirely changed (keyframes, refreshes after video)."""
        rows, cols = mask.shape
        d = cls.empty(rows, cols)
        d.changed[:] = mask
        tx = np.arange(cols, dtype=np.int32) * TILE
        ty = np.arange(rows, dtype=np.int32) * TILE
        d.bbox[..., 0] = tx[None, :]
        d.bbox[..., 1] = ty[:, None]
        d.bbox[..., 2] = np.minimum(tx + TILE, width)[None, :]
        d.bbox[..., 3] = np.minimum(ty + TILE, height)[:, None]
        d.count[:] = (d.bbox[..., 2] - d.bbox[..., 0]) * (d.bbox[..., 3] - d.bbox[..., 1]) * mask
        return d


def diff_tiles(
    fb: NDArray[np.uint32], model: NDArray[np.uint32], damaged: NDArray[np.bool_], out: TileDiff
) -> None:
    """Compare ``fb`` with ``model`` on the ``damaged`` tiles, filling ``out`` for those tiles.

    Works on blocks of damaged tiles (:func:`tile_blocks`), a constant number of numpy passes each:
    a window's damage is one block, a full-screen change one, a typed character one small one.
    """
    height, width = fb.shape
    for sp in tile_blocks(damaged):
        y0, y1 = sp.ty0 * TILE, min(sp.ty1 * TILE, height)
        x0, x1 = sp.tx0 * TILE, min(sp.tx1 * TILE, width)
        ne = _not_equal(fb, model, y0, y1, x0, x1)
        rows, cols = sp.ty1 - sp.ty0, sp.tx1 - sp.tx0
        pad_y, pad_x = rows * TILE - (y1 - y0), cols * TILE - (x1 - x0)
        if pad_y or pad_x:  # edge tiles cut by the output: pad with "unchanged"
            ne = np.pad(ne, ((0, pad_y), (0, pad_x)))
        rowany = _row_any(ne, rows, cols)  # (rows, 64, cols)
        changed = rowany.any(axis=1)
        out.changed[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = changed
        if not changed.any():
            continue
        colcount = np.add.reduce(ne.view(np.uint8).reshape(rows, TILE, cols * TILE), axis=1, dtype=np.uint16)
        colcount = colcount.reshape(rows, cols, TILE)
        colany = colcount > 0
        bbox = out.bbox[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1]
        left = (x0 + np.arange(cols, dtype=np.int32) * TILE)[None, :]
        top = (y0 + np.arange(rows, dtype=np.int32) * TILE)[:, None]
        bbox[..., 0] = left + colany.argmax(axis=2)
        bbox[..., 1] = top + rowany.argmax(axis=1)
        bbox[..., 2] = left + TILE - colany[..., ::-1].argmax(axis=2)
        bbox[..., 3] = top + TILE - rowany[:, ::-1, :].argmax(axis=1)
        out.count[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = colcount.sum(axis=2)


def _not_equal(
    fb: NDArray[np.uint32], model: NDArray[np.uint32], y0: int, y1: int, x0: int, x1: int
) -> NDArray[np.bool_]:
    """``fb != model`` over rows ``y0:y1``, columns ``x0:x1``. numpy compares whole rows of a
    C-ordered picture (one contiguous run) four to five times faster per pixel than a rectangle
    inside it, so a rectangle at least a third as wide as the picture is compared whole rows wide
    and the columns are taken from that (a view)."""
    ne: NDArray[np.bool_]
    if 3 * (x1 - x0) >= fb.shape[1] and x1 - x0 < fb.shape[1]:
        ne = (fb[y0:y1] != model[y0:y1])[:, x0:x1]
    else:
        ne = fb[y0:y1, x0:x1] != model[y0:y1, x0:x1]
    return ne


def _row_any(ne: NDArray[np.bool_], rows: int, cols: int) -> NDArray[np.bool_]:
    """For each tile row of pixels (a tile's 64 pixels of one row): did any change? ``ne`` is
    ``rows`` x 64 by ``cols`` x 64. Packed one bit a pixel, a tile's row is one u64 word (numpy's
    packbits is several times faster than any() over 64 booleans)."""
    words = np.packbits(ne, axis=-1).view(np.uint64)  # (rows * 64, cols)
    result: NDArray[np.bool_] = (words != 0).reshape(rows, TILE, cols)
    return result


def changed_tiles(
    fb: NDArray[np.uint32], model: NDArray[np.uint32], tiles: NDArray[np.bool_], out: TileDiff
) -> None:
    """Only whether each of ``tiles`` changed (``out.changed``; its bbox and count stay unset).

    For tiles inside a video stream, which H.264 sends whole whatever changed in them: no
    per-column counts, about half the work of :func:`diff_tiles`.
    """
    height, width = fb.shape
    for sp in tile_blocks(tiles):
        y0, y1 = sp.ty0 * TILE, min(sp.ty1 * TILE, height)
        x0, x1 = sp.tx0 * TILE, min(sp.tx1 * TILE, width)
        rows, cols = sp.ty1 - sp.ty0, sp.tx1 - sp.tx0
        ne = _not_equal(fb, model, y0, y1, x0, x1)
        pad_y, pad_x = rows * TILE - (y1 - y0), cols * TILE - (x1 - x0)
        if pad_y or pad_x:  # edge tiles cut by the output: pad with "unchanged"
            ne = np.pad(ne, ((0, pad_y), (0, pad_x)))
        out.changed[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = _row_any(ne, rows, cols).any(axis=1)


@dataclass(frozen=True, slots=True)
class PlannedRegion:
    rect: Rect
    tiles: TileSpan
    #: Changed pixels inside (from the diff), to choose between XOR and RAW.
    changed_pixels: int


def plan_regions(diff: TileDiff, mask: NDArray[np.bool_], max_pixels: int) -> list[PlannedRegion]:
    """Group the changed tiles of ``mask`` into rectangles worth one region each.

    Runs of adjacent changed tiles in a tile row become one rectangle (the union of their changed
    bounding boxes); runs with the same tile columns in consecutive tile rows merge while the result
    stays under ``max_pixels``. Unchanged pixels caught inside cost little: XOR makes them zeros.
    """
    sel = diff.changed & mask
    open_runs: dict[tuple[int, int], PlannedRegion] = {}
    done: list[PlannedRegion] = []
    prev_row = -2
    for ty in np.flatnonzero(sel.any(axis=1)).tolist():
        if ty != prev_row + 1:  # a tile row without changes in between closes every open run
            done.extend(open_runs.values())
            open_runs = {}
        prev_row = ty
        bbox = diff.bbox[ty].tolist()
        counts = diff.count[ty].tolist()
        next_open: dict[tuple[int, int], PlannedRegion] = {}
        for tx0, tx1 in tile_runs(sel[ty]):
            boxes = bbox[tx0:tx1]
            x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
            count = sum(counts[tx0:tx1])
            prev = open_runs.pop((tx0, tx1), None)
            if prev is not None:
                px0, py0 = min(prev.rect.x, x0), prev.rect.y
                px1, py1 = max(prev.rect.right, x1), y1
                if (px1 - px0) * (py1 - py0) <= max_pixels:
                    next_open[(tx0, tx1)] = PlannedRegion(
                        Rect(px0, py0, px1 - px0, py1 - py0),
                        TileSpan(prev.tiles.ty0, ty + 1, tx0, tx1),
                        prev.changed_pixels + count,
                    )
                    continue
                done.append(prev)
            next_open[(tx0, tx1)] = PlannedRegion(
                Rect(x0, y0, x1 - x0, y1 - y0), TileSpan(ty, ty + 1, tx0, tx1), count
            )
        done.extend(open_runs.values())
        open_runs = next_open
    done.extend(open_runs.values())
    return done


class RegionCoder:
    """Turns a rectangle of new pixels into the smallest lossless Region (FILL, XOR_ZSTD, RAW_ZSTD)."""

    def __init__(self, settings: EncoderSettings) -> None:
        self._settings = settings
        self._small = zstandard.ZstdCompressor(level=settings.zstd_level_small, write_checksum=False)
        self._large = zstandard.ZstdCompressor(level=settings.zstd_level_large, write_checksum=False)
        self.tried_both = False

    def encode(
        self,
        fb: NDArray[np.uint32],
        model: NDArray[np.uint32],
        rect: Rect,
        *,
        base_known: bool,
        changed_pixels: int,
        noisy: bool = False,
        prefer: RegionEncoding | None = None,
    ) -> Region:
        """Encode ``fb``'s pixels in ``rect``; XOR against ``model`` only if ``base_known`` (client has it).

        ``noisy`` (photo-like content, known from what the tiles cost before) selects the fast zstd
        level whatever the size: the slow levels gain nothing there and cost several times the CPU.
        ``prefer`` (RAW_ZSTD or XOR_ZSTD, what won here the last time both were tried) compresses only
        that one where both would be tried: an animation's XOR wins frame after frame, and compressing
        it twice doubles the zstd time. ``tried_both`` says afterwards whether both were compressed.
        """
        self.tried_both = False
        x, y, w, h = rect
        px = fb[y : y + h, x : x + w]
        first = px[0, 0]
        if px[-1, -1] == first and px[h // 2, w // 2] == first and bool((px == first).all()):
            return Region(x, y, w, h, RegionEncoding.FILL, struct.pack("<I", int(first)))
        area = w * h
        small = area <= self._settings.zstd_small_pixels
        cctx = self._small if small and not noisy else self._large
        if area <= TINY_PIXELS and not noisy:
            prefer = None  # a typed letter: compressing both kinds takes microseconds
        if not base_known:
            return Region(x, y, w, h, RegionEncoding.RAW_ZSTD, cctx.compress(np.ascontiguousarray(px).data))
        share = changed_pixels / area
        raw: bytes | None = None
        if share > XOR_ONLY_SHARE:
            if prefer == RegionEncoding.XOR_ZSTD and not (share >= RAW_ONLY_SHARE and not small):
                return self._xor(px, model, rect, cctx)
            raw = cctx.compress(np.ascontiguousarray(px).data)
            if (share >= RAW_ONLY_SHARE and not small) or prefer == RegionEncoding.RAW_ZSTD:
                return Region(x, y, w, h, RegionEncoding.RAW_ZSTD, raw)
            self.tried_both = True
        xor = self._xor(px, model, rect, cctx)
        if raw is not None and len(raw) < len(xor.data):
            return Region(x, y, w, h, RegionEncoding.RAW_ZSTD, raw)
        return xor

    @staticmethod
    def _xor(
        px: NDArray[np.uint32], model: NDArray[np.uint32], rect: Rect, cctx: zstandard.ZstdCompressor
    ) -> Region:
        x, y, w, h = rect
        data = cctx.compress(np.bitwise_xor(px, model[y : y + h, x : x + w]).data)
        return Region(x, y, w, h, RegionEncoding.XOR_ZSTD, data)


def copy_region(dst: Rect, src_x: int, src_y: int) -> Region:
    return Region(dst.x, dst.y, dst.width, dst.height, RegionEncoding.COPY, struct.pack("<II", src_x, src_y))


_DECOMPRESSOR = zstandard.ZstdDecompressor()


def unpack_pixels(region: Region) -> NDArray[np.uint32]:
    """The pixels (or XOR mask) of a RAW_ZSTD / XOR_ZSTD region, checked against its rectangle."""
    expected = region.width * region.height * 4
    try:
        declared = zstandard.frame_content_size(region.data)
    except zstandard.ZstdError as e:
        raise CodecError(f"{_where(region)}: not a zstd frame ({e})") from e
    # Never let a frame header make us allocate more than the rectangle holds.
    if declared not in (expected, -1):
        raise CodecError(f"{_where(region)}: zstd frame holds {declared} bytes, rectangle needs {expected}")
    try:
        raw = _DECOMPRESSOR.decompress(region.data, max_output_size=expected)
    except zstandard.ZstdError as e:
        raise CodecError(f"{_where(region)}: corrupt zstd data ({e})") from e
    if len(raw) != expected:
        raise CodecError(f"{_where(region)}: {len(raw)} bytes of pixels, rectangle needs {expected}")
    return np.frombuffer(raw, dtype="<u4").reshape(region.height, region.width)


def unpack_fill(region: Region) -> int:
    if len(region.data) != 4:
        raise CodecError(f"{_where(region)}: FILL carries {len(region.data)} bytes, needs 4")
    return int(struct.unpack("<I", region.data)[0])


def unpack_copy(region: Region) -> tuple[int, int]:
    if len(region.data) != 8:
        raise CodecError(f"{_where(region)}: COPY carries {len(region.data)} bytes, needs 8")
    sx, sy = struct.unpack("<II", region.data)
    return int(sx), int(sy)


def _where(region: Region) -> str:
    return f"{region.encoding.name} region {region.width}x{region.height}+{region.x}+{region.y}"
