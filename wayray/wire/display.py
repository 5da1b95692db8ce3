"""Display-channel message bodies: the contract between the encoder (wayray.codec) and the wire.

The codec produces and consumes these objects; wayray.wire serializes them. Their fields are what the
protocol spec (docs/protocol.md) documents for the display channel. Pixel data inside is already
compressed or encoded; the wire treats it as opaque bytes and wrsrvd relays it without touching it.

Pixel format everywhere: 32-bit XRGB8888 / ARGB8888 words in little-endian memory order, i.e. bytes
B, G, R, X per pixel, rows packed (``width * 4`` bytes per row, no stride padding) unless an encoding
says otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RegionEncoding(enum.IntEnum):
    """How the bytes of one :class:`Region` turn into pixels."""

    #: zstd of the region's absolute pixels (B, G, R, X; rows packed).
    RAW_ZSTD = 1
    #: zstd of (new pixels XOR pixels the client already has in that rectangle).
    XOR_ZSTD = 2
    #: The whole rectangle is one colour; data is 4 bytes (B, G, R, X).
    FILL = 3
    #: One H.264 access unit for the video stream ``stream_id`` covering this rectangle.
    H264 = 4
    #: Copy pixels the client already has: data is the source (x, y) as two little-endian u32.
    COPY = 5
    #: Pixels the client remembered from an earlier region (the ``region-cache`` capability): data is
    #: the slot, a little-endian u16 (docs/encoding.md, "Region cache").
    CACHED = 6


@dataclass(frozen=True, slots=True)
class Region:
    x: int
    y: int
    width: int
    height: int
    encoding: RegionEncoding
    data: bytes
    #: For H264 regions: which video stream (decoder context) the access unit belongs to; else 0.
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class FrameUpdate:
    """One frame: the regions to apply, in order, and a checksum of the result.

    ``keyframe`` frames cover the whole output and do not depend on anything the client had;
    a client that has lost track (checksum mismatch, reconnect) waits for one.
    """

    seq: int
    width: int
    height: int
    keyframe: bool
    regions: tuple[Region, ...]
    #: Checksum of the client's framebuffer after applying this frame (codec defines the function).
    checksum: int


#: What a :class:`SmallFrameUpdate` can carry: every field of the frame and its regions fits its
#: narrower type (u16 coordinates, u16 data length, at most 255 regions, a 32-bit checksum).
_U16 = 0xFFFF


@dataclass(frozen=True, slots=True)
class SmallRegion:
    """A :class:`Region` of a :class:`SmallFrameUpdate`: the same, in narrower fields, no stream."""

    x: int
    y: int
    width: int
    height: int
    encoding: RegionEncoding
    data: bytes


@dataclass(frozen=True, slots=True)
class SmallFrameUpdate:
    """A FrameUpdate that is not a keyframe and has no video, in ~26 fewer bytes (the ``small-frames``
    capability): a typed character's frame. The wire turns it back into a :class:`FrameUpdate`; the
    application never sees this class."""

    seq: int
    width: int
    height: int
    regions: tuple[SmallRegion, ...]
    checksum: int

    @staticmethod
    def of(update: FrameUpdate) -> SmallFrameUpdate | None:
        """``update`` in the small form, or None when it does not fit it."""
        if (
            update.keyframe
            or update.width > _U16
            or update.height > _U16
            or len(update.regions) > 0xFF
            or update.checksum > 0xFFFF_FFFF
        ):
            return None
        regions = []
        for r in update.regions:
            if r.encoding == RegionEncoding.H264 or r.stream_id or len(r.data) > _U16:
                return None
            if max(r.x, r.y, r.width, r.height) > _U16:
                return None
            regions.append(SmallRegion(r.x, r.y, r.width, r.height, r.encoding, r.data))
        return SmallFrameUpdate(update.seq, update.width, update.height, tuple(regions), update.checksum)

    def expand(self) -> FrameUpdate:
        return FrameUpdate(
            seq=self.seq,
            width=self.width,
            height=self.height,
            keyframe=False,
            regions=tuple(Region(r.x, r.y, r.width, r.height, r.encoding, r.data) for r in self.regions),
            checksum=self.checksum,
        )


@dataclass(frozen=True, slots=True)
class CursorImage:
    """A new cursor image: sent only when the image changes. ``pixels`` is zstd of premultiplied ARGB."""

    serial: int
    width: int
    height: int
    hotspot_x: int
    hotspot_y: int
    pixels: bytes


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """Where the cursor is, drawn by the client with the image ``serial`` (hidden if not visible)."""

    x: int
    y: int
    visible: bool
    serial: int
