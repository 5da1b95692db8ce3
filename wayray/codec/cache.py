"""The region cache: small lossless regions both sides remember in the same numbered slots, so that
the same pixels again (a typed letter with the text cursor after it, a blinking cursor, a checkbox)
cost a two-byte slot number instead of their zstd (docs/encoding.md, section 3 and "Region cache").

Both sides follow one deterministic rule, so no message says what is cached: after a keyframe the
cache is empty; then every RAW_ZSTD and XOR_ZSTD region of at most :data:`MAX_PIXELS` pixels, in the
order the regions are applied, is remembered (its rectangle's pixels after it was applied) in slot
0, 1, 2, ... :data:`SLOTS` − 1, then 0 again (the oldest is replaced). A ``CACHED`` region names a
slot; it is not remembered again. The encoder keeps only a digest per slot (it finds a slot by the
digest of the new pixels); the decoder keeps the pixels, at most ``SLOTS × MAX_PIXELS × 4`` bytes
(4 MiB), and usually far less: a letter and its cursor are a few hundred pixels.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from numpy.typing import NDArray

from wayray.codec.errors import CodecError
from wayray.wire.display import Region, RegionEncoding

#: Slots on each side (part of the protocol: both sides must count the same way).
SLOTS = 256
#: Regions of at most this many pixels are remembered (part of the protocol, as SLOTS).
MAX_PIXELS = 4096
#: The encodings whose regions are remembered.
REMEMBERED = frozenset({RegionEncoding.RAW_ZSTD, RegionEncoding.XOR_ZSTD})


def remembered(region: Region) -> bool:
    """Whether ``region``, in an update that is not a keyframe, goes into the cache."""
    return region.encoding in REMEMBERED and region.width * region.height <= MAX_PIXELS


def cached_region(x: int, y: int, width: int, height: int, slot: int) -> Region:
    return Region(x, y, width, height, RegionEncoding.CACHED, struct.pack("<H", slot))


def _digest(pixels: NDArray[np.uint32]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(struct.pack("<II", pixels.shape[1], pixels.shape[0]))
    h.update(np.ascontiguousarray(pixels).data)
    return h.digest()


class EncoderCache:
    """The encoder's half: which slot holds which pixels (by digest)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._slot_of: dict[bytes, int] = {}
        self._digests: list[bytes | None] = [None] * SLOTS
        self._next = 0

    def find(self, pixels: NDArray[np.uint32]) -> tuple[int | None, bytes]:
        """The slot holding exactly ``pixels`` (None if none), and their digest (for :meth:`remember`)."""
        digest = _digest(pixels)
        return self._slot_of.get(digest), digest

    def remember(self, digest: bytes) -> None:
        """The pixels of a remembered region (see :func:`remembered`) go into the next slot."""
        slot = self._next
        old = self._digests[slot]
        if old is not None and self._slot_of.get(old) == slot:
            del self._slot_of[old]
        self._digests[slot] = digest
        self._slot_of[digest] = slot  # the same pixels in a newer slot: the newer one is named
        self._next = (slot + 1) % SLOTS


class DecoderCache:
    """The decoder's half: the pixels of each slot."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._slots: list[NDArray[np.uint32] | None] = [None] * SLOTS
        self._next = 0

    def remember(self, pixels: NDArray[np.uint32]) -> None:
        self._slots[self._next] = pixels.copy()
        self._next = (self._next + 1) % SLOTS

    def pixels(self, region: Region) -> NDArray[np.uint32]:
        """The pixels a CACHED region names; CodecError if its data, slot or size is wrong."""
        if len(region.data) != 2:
            raise CodecError(f"CACHED region data must be 2 bytes, got {len(region.data)}")
        (slot,) = struct.unpack("<H", region.data)
        if slot >= SLOTS:
            raise CodecError(f"CACHED region names slot {slot}; there are {SLOTS}")
        px: NDArray[np.uint32] | None = self._slots[slot]
        if px is None:
            raise CodecError(f"CACHED region names slot {slot}, which holds nothing")
        if px.shape != (region.height, region.width):
            raise CodecError(
                f"CACHED region is {region.width}x{region.height}, slot {slot} holds "
                f"{px.shape[1]}x{px.shape[0]} pixels"
            )
        return px
