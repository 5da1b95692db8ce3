"""Vertical scroll detection: find rows of the new frame that are rows of the client's old one, moved.

A terminal that scrolls by a line repaints its whole window, yet all but one line are pixels the
client already has, a few rows higher. Sending a COPY of those rows plus the newly exposed line is
what makes a scrolling terminal cheaper than waypipe's diffs.

Method: hash every row of the area (a sample of its pixels) in the old picture (the encoder's model)
and in the new one; rows whose hash is unique on both sides vote for an offset; the winning offset is
then checked pixel by pixel and the longest run of rows that really match becomes the copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from wayray.codec.geometry import Rect


@dataclass(frozen=True, slots=True)
class Scroll:
    """Rows ``dst`` of the new frame equal the old frame's rows at ``src_y`` (same columns)."""

    dst: Rect
    src_y: int


#: Row hashes sample at most this many pixel pairs per row, spread evenly over its width. Hashes only
#: vote for an offset and find candidate rows; every copied row is then compared pixel by pixel, so a
#: sample costs nothing in exactness, and it cuts the two hashing passes (the scroll search's main
#: cost on a flooding terminal) several times.
HASH_SAMPLES = 64


@lru_cache(maxsize=8)
def _weights(n: int) -> NDArray[np.uint64]:
    # Random odd multipliers: a row hash is sum(pixel_pair * weight) mod 2**64.
    rng = np.random.default_rng(0x57A7_C0DE)
    return rng.integers(0, 2**63, size=n, dtype=np.uint64) | np.uint64(1)


def row_hashes(pixels: NDArray[np.uint32]) -> NDArray[np.uint64]:
    """One 64-bit hash per row, of up to ``HASH_SAMPLES`` pixel pairs (u64 words) spread over the row
    (an odd last column is folded in)."""
    h, w = pixels.shape
    pairs = w // 2
    out = np.zeros(h, dtype=np.uint64)
    if pairs:
        words = pixels[:, : pairs * 2].view(np.uint64)
        step = -(-pairs // HASH_SAMPLES)  # ceil: at most HASH_SAMPLES columns
        if step > 1:
            words = words[:, step // 2 :: step]
        out = words @ _weights(words.shape[1])
    if w & 1:
        out = out ^ (pixels[:, -1].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return out


def find_vertical_scroll(
    fb: NDArray[np.uint32],
    model: NDArray[np.uint32],
    area: Rect,
    min_rows: int,
    *,
    new_hashes: NDArray[np.uint64] | None = None,
    old_hashes: NDArray[np.uint64] | None = None,
) -> Scroll | None:
    """The biggest vertical move of rows of ``model`` into ``fb`` inside ``area``, or None.

    ``new_hashes``, ``old_hashes``: the :func:`row_hashes` of the area in ``fb`` and in ``model``
    if the caller has them (an encoder whose model holds last frame's pixels has last frame's
    hashes). Wrong ones cost a scroll not found, never a wrong copy: rows are compared pixel by
    pixel before they are copied."""
    x, y, w, h = area
    new = fb[y : y + h, x : x + w]
    old = model[y : y + h, x : x + w]
    hn = row_hashes(new) if new_hashes is None else new_hashes
    ho = row_hashes(old) if old_hashes is None or old_hashes.shape != (h,) else old_hashes
    if np.array_equal(hn, ho):
        return None
    vn, in_, cn = np.unique(hn, return_index=True, return_counts=True)
    vo, io, co = np.unique(ho, return_index=True, return_counts=True)
    _, pick_n, pick_o = np.intersect1d(vn[cn == 1], vo[co == 1], assume_unique=True, return_indices=True)
    if pick_n.size == 0:
        return None
    # Offset so that new row i == old row i + dy, voted by rows unique on both sides.
    dys = io[co == 1][pick_o] - in_[cn == 1][pick_n]
    dys = dys[dys != 0]
    if dys.size == 0:
        return None
    values, votes = np.unique(dys, return_counts=True)
    dy = int(values[votes.argmax()])
    if abs(dy) >= h:
        return None
    # Rows a.. of the new picture against rows a+dy.. of the old one.
    a0, b0 = max(0, -dy), min(h, h - dy)
    same = (hn[a0:b0] == ho[a0 + dy : b0 + dy]).astype(np.int8)
    start, length = _longest_run(same)
    if length < min_rows:
        return None
    a = a0 + start
    b = a + length
    # Hashes can collide: trust only pixels. Shrink to the rows that truly match.
    exact = (new[a:b] == old[a + dy : b + dy]).all(axis=1)
    if not exact.all():
        s, n = _longest_run(exact.astype(np.int8))
        a, b = a + s, a + s + n
        if b - a < min_rows:
            return None
    # Worth it only if the copy changes something: rows already equal in place need nothing.
    if np.array_equal(hn[a:b], ho[a:b]):
        return None
    return Scroll(Rect(x, y + a, w, b - a), y + a + dy)


def _longest_run(flags: NDArray[np.int8]) -> tuple[int, int]:
    """Start and length of the longest run of ones."""
    if flags.size == 0:
        return 0, 0
    padded = np.concatenate(([0], flags, [0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    if starts.size == 0:
        return 0, 0
    i = int((ends - starts).argmax())
    return int(starts[i]), int(ends[i] - starts[i])
