"""The frame decoder: applies FrameUpdates to its own framebuffer and checks the result.

The framebuffer has the compositor's layout (numpy uint32, height x width, XRGB8888). After every
update the decoder compares its checksum with the encoder's; on a mismatch, a gap in sequence numbers
or an update it could not apply, :attr:`Decoder.needs_keyframe` turns True and stays so until a
keyframe arrives. Meanwhile later updates are still applied, so the picture keeps moving while the
client waits; the client should ask for a keyframe once when the flag turns True.
"""

from __future__ import annotations

import enum
import logging

import numpy as np
from numpy.typing import NDArray

from wayray.codec.cache import DecoderCache, remembered
from wayray.codec.checksum import TileChecksums
from wayray.codec.errors import CodecError
from wayray.codec.geometry import Rect, TileSpan, tiles_of
from wayray.codec.lossless import unpack_copy, unpack_fill, unpack_pixels
from wayray.codec.support import h264_unavailable
from wayray.wire.display import FrameUpdate, Region, RegionEncoding

log = logging.getLogger(__name__)

#: Largest output a decoder accepts (8K): bounds the allocation a keyframe header can cause.
MAX_SIDE = 8192
#: Most video streams alive at once. Each is an H.264 decoder holding pictures of its rectangle, and
#: streams may not overlap: together they hold at most about one screen (docs/encoding.md, section 5).
MAX_VIDEO_STREAMS = 8


class Desync(enum.Enum):
    """Why a decoder waits for a keyframe. The client maps it to the wire's KeyframeReason:
    CHECKSUM_MISMATCH to CHECKSUM_MISMATCH, the others to DECODER_ERROR."""

    NO_KEYFRAME_YET = "no keyframe yet"
    CHECKSUM_MISMATCH = "checksum mismatch"
    UPDATES_LOST = "updates lost"
    BAD_UPDATE = "update could not be applied"


class _Stream:
    def __init__(self, rect: Rect, *, scaled: bool) -> None:
        self.rect = rect
        self.tiles: TileSpan = tiles_of(rect)
        why = h264_unavailable()
        if why is not None:
            raise CodecError(f"this viewer cannot decode H.264 video regions: {why}")
        from wayray.codec.video import H264StreamDecoder  # PyAV only when video is used

        self.codec = H264StreamDecoder(rect.width, rect.height, scaled=scaled)


class Decoder:
    def __init__(self, *, video_scaled: bool = False) -> None:
        """``video_scaled``: the viewer took the ``video-scaled`` capability: a video stream's pictures
        may come at half size, and are scaled up to its rectangle (docs/encoding.md section 5)."""
        self.video_scaled = video_scaled
        #: Video pictures that came at half size and were scaled up (``video-scaled``).
        self.scaled_pictures = 0
        self.framebuffer: NDArray[np.uint32] | None = None
        self._width = self._height = 0
        self._checksums = TileChecksums(1, 1)
        #: Small regions remembered since the last keyframe (the ``region-cache`` capability).
        self._cache = DecoderCache()
        self._streams: dict[int, _Stream] = {}
        self._last_seq: int | None = None
        self._needs_keyframe = True
        #: Why the decoder lost sync (the first cause), or None when in sync; and the same in words.
        self.desync: Desync | None = Desync.NO_KEYFRAME_YET
        self.desync_reason: str | None = "no keyframe yet"

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def needs_keyframe(self) -> bool:
        """True until the first keyframe, and again from a mismatch or a failure until the next one."""
        return self._needs_keyframe

    @property
    def video_streams(self) -> int:
        """How many video streams are live: their rectangles are H.264 pictures, not yet exact."""
        return len(self._streams)

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    def close(self) -> None:
        self._drop_streams()

    def apply(self, update: FrameUpdate) -> list[Rect]:
        """Apply one update; returns the rectangles of the framebuffer that changed (to present).

        Raises :class:`CodecError` for an update that cannot be applied (malformed region, undecodable
        video); the decoder then waits for a keyframe (``needs_keyframe``). Updates before the first
        keyframe are ignored (empty list).
        """
        if update.keyframe:
            self._start_keyframe(update)
        elif self.framebuffer is None:
            return []
        elif (update.width, update.height) != (self._width, self._height):
            self._lose_sync(
                Desync.BAD_UPDATE,
                f"update {update.seq} is {update.width}x{update.height}, screen is {self._size()}",
            )
            return []
        elif self._last_seq is not None and update.seq != self._last_seq + 1:
            self._lose_sync(
                Desync.UPDATES_LOST, f"update {update.seq} follows {self._last_seq}: updates were lost"
            )
        self._last_seq = update.seq
        fb = self.framebuffer
        assert fb is not None
        damage: list[Rect] = []
        touched = np.zeros(self._grid_shape(), dtype=bool)
        try:
            for region in update.regions:
                rect = self._apply_region(fb, region)
                if not update.keyframe and remembered(region):
                    x, y, w, h = region.x, region.y, region.width, region.height
                    self._cache.remember(fb[y : y + h, x : x + w])
                if rect is not None:
                    damage.append(rect)
                    sp = tiles_of(rect)
                    touched[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = True
        except CodecError as e:
            self._lose_sync(Desync.BAD_UPDATE, f"update {update.seq}: {e.message}")
            raise
        finally:
            self._refresh_checksums(fb, touched)
        if self._checksums.value() != update.checksum:
            self._lose_sync(
                Desync.CHECKSUM_MISMATCH,
                f"update {update.seq}: checksum mismatch, the picture differs from the server's",
            )
        elif update.keyframe and self._needs_keyframe:
            self._needs_keyframe = False
            self.desync = None
            self.desync_reason = None
        return damage

    # --- internals ---------------------------------------------------------------------------

    def _size(self) -> str:
        return f"{self._width}x{self._height}"

    def _grid_shape(self) -> tuple[int, int]:
        return self._checksums.shape

    def _start_keyframe(self, update: FrameUpdate) -> None:
        w, h = update.width, update.height
        if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
            self._lose_sync(Desync.BAD_UPDATE, f"keyframe {update.seq} has an impossible size {w}x{h}")
            raise CodecError(f"keyframe {update.seq}: size {w}x{h} is outside 1..{MAX_SIDE}")
        if self.framebuffer is None or (w, h) != (self._width, self._height):
            self.framebuffer = np.zeros((h, w), dtype=np.uint32)
            self._width, self._height = w, h
            self._checksums = TileChecksums(w, h)
        self._drop_streams()
        self._cache.clear()

    def _drop_streams(self) -> None:
        for st in self._streams.values():
            st.codec.close()
        self._streams.clear()

    def _lose_sync(self, cause: Desync, reason: str) -> None:
        # The first cause is the one worth reporting; what follows is usually its consequence.
        if not self._needs_keyframe:
            log.info("display out of sync, waiting for a keyframe: %s", reason)
            self.desync = cause
            self.desync_reason = reason
        self._needs_keyframe = True

    def _refresh_checksums(self, fb: NDArray[np.uint32], touched: NDArray[np.bool_]) -> None:
        video = np.zeros_like(touched)
        for st in self._streams.values():
            sp = st.tiles
            video[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = True
        self._checksums.refresh_mask(fb, touched & ~video)
        for st in self._streams.values():
            self._checksums.blank(st.tiles)

    def _apply_region(self, fb: NDArray[np.uint32], region: Region) -> Rect | None:
        rect = Rect(region.x, region.y, region.width, region.height)
        if rect.width <= 0 or rect.height <= 0 or rect.clip(self._width, self._height) != rect:
            raise CodecError(
                f"{region.encoding.name} region {rect.width}x{rect.height}+{rect.x}+{rect.y} "
                f"is outside the {self._size()} screen"
            )
        x, y, w, h = rect
        enc = region.encoding
        if enc == RegionEncoding.RAW_ZSTD:
            fb[y : y + h, x : x + w] = unpack_pixels(region)
        elif enc == RegionEncoding.XOR_ZSTD:
            fb[y : y + h, x : x + w] ^= unpack_pixels(region)
        elif enc == RegionEncoding.FILL:
            fb[y : y + h, x : x + w] = unpack_fill(region)
        elif enc == RegionEncoding.COPY:
            sx, sy = unpack_copy(region)
            if Rect(sx, sy, w, h).clip(self._width, self._height) != Rect(sx, sy, w, h):
                raise CodecError(f"COPY source {w}x{h}+{sx}+{sy} is outside the {self._size()} screen")
            fb[y : y + h, x : x + w] = fb[sy : sy + h, sx : sx + w].copy()
        elif enc == RegionEncoding.CACHED:
            fb[y : y + h, x : x + w] = self._cache.pixels(region)
        elif enc == RegionEncoding.H264:
            return self._apply_video(fb, region, rect)
        else:  # pragma: no cover - RegionEncoding is closed; the wire rejects unknown values
            raise CodecError(f"unknown region encoding {enc!r}")
        return rect

    def _apply_video(self, fb: NDArray[np.uint32], region: Region, rect: Rect) -> Rect | None:
        st = self._streams.get(region.stream_id)
        if not region.data:
            # End of stream: the encoder refreshes the rectangle losslessly in the same update.
            if st is not None:
                st.codec.close()
                del self._streams[region.stream_id]
            return None
        if st is None:
            self._check_new_stream(region.stream_id, rect)
            st = _Stream(rect, scaled=self.video_scaled)
            try:
                picture = st.codec.decode(region.data)
            except CodecError:
                st.codec.close()  # a stream that never started is not kept
                raise
            self._streams[region.stream_id] = st
        elif st.rect != rect:
            raise CodecError(
                f"video stream {region.stream_id} moved from {st.rect} to {rect}; "
                "a stream keeps its rectangle"
            )
        else:
            picture = st.codec.decode(region.data)
        x, y, w, h = rect
        fb[y : y + h, x : x + w] = picture
        self.scaled_pictures += st.codec.last_scaled
        return rect

    def _check_new_stream(self, stream_id: int, rect: Rect) -> None:
        if len(self._streams) >= MAX_VIDEO_STREAMS:
            raise CodecError(
                f"video stream {stream_id} would make more than {MAX_VIDEO_STREAMS} video streams at once"
            )
        for other_id, other in self._streams.items():
            r = other.rect
            if rect.x < r.right and r.x < rect.right and rect.y < r.bottom and r.y < rect.bottom:
                raise CodecError(f"video stream {stream_id} at {rect} overlaps stream {other_id} at {r}")
