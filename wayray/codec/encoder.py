"""The frame encoder: framebuffer + damage in, one FrameUpdate (or nothing) out. No I/O, time passed in.

The encoder keeps a *model*: the pixels the client holds, as of the last update it produced. Every
update is computed against it (skip unchanged tiles, XOR against what the client has, COPY rows it
already has) and advances it, so the caller must deliver every update it gets, in order; when it
cannot (client detached, frames dropped), it calls :meth:`Encoder.request_keyframe`.

Tiles inside an active H.264 stream are the exception: the client has a lossy picture there that the
model does not know. Those tiles are excluded from the checksum, never used as XOR base or COPY
source, and refreshed losslessly when the stream ends. See docs/encoding.md for the whole decision.

Driving it from a compositor frame pump::

    enc = Encoder(width, height)
    update = enc.encode(fb, damage_rects, now=time.monotonic())   # None: nothing visible changed
    if update: send(update)
    # and when nothing is damaged, still call it once the deadline passes (ends video streams):
    deadline = enc.next_deadline()
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from wayray.codec.cache import MAX_PIXELS as CACHE_MAX_PIXELS
from wayray.codec.cache import EncoderCache, cached_region, remembered
from wayray.codec.checksum import TileChecksums
from wayray.codec.geometry import (
    TILE,
    DamageRect,
    Rect,
    TileSpan,
    clip_all,
    coalesce,
    span_rect,
    tile_grid,
    tiles_of,
)
from wayray.codec.lossless import (
    PlannedRegion,
    RegionCoder,
    TileDiff,
    changed_tiles,
    copy_region,
    diff_tiles,
    plan_regions,
)
from wayray.codec.scroll import find_vertical_scroll, row_hashes
from wayray.codec.settings import EncoderSettings
from wayray.codec.support import h264_unavailable
from wayray.wire.display import FrameUpdate, Region, RegionEncoding

if TYPE_CHECKING:
    from wayray.codec.video import H264StreamEncoder

log = logging.getLogger(__name__)

_NO_STREAM = 0
_SCROLL_MAX_RECTS = 48
#: Where both RAW and XOR are compressed to keep the smaller, the winner is reused without trying the
#: other for this many regions over the same tiles, then both are tried again (content changes
#: character: a terminal flood favours RAW, an animation XOR; a wrong guess costs bytes, not exactness).
_CHOICE_REUSE = 8
_CHOICES = {1: RegionEncoding.RAW_ZSTD, 2: RegionEncoding.XOR_ZSTD}


@dataclass(slots=True)
class _Stream:
    id: int
    tiles: TileSpan
    rect: Rect
    codec: H264StreamEncoder
    #: What its tiles cost per frame losslessly when it started (bytes), the yardstick of probation.
    lossless_estimate: float
    started: bool = False
    #: Non-IDR frames sent and their bytes, until probation is passed.
    frames: int = 0
    bytes: int = 0
    proven: bool = False


@dataclass(frozen=True, slots=True)
class VideoStreamInfo:
    """An active video stream, for callers that want to show or log what goes as video."""

    stream_id: int
    rect: Rect


class Encoder:
    def __init__(
        self, width: int, height: int, settings: EncoderSettings | None = None, *, first_seq: int = 1
    ) -> None:
        """``first_seq``: the seq of the first update (a viewer connection that already saw frames of
        another encoder, e.g. a greeter's before the user's desktop, needs seqs that go on rising)."""
        if first_seq < 1:
            raise ValueError(f"first_seq must be at least 1, not {first_seq}")
        self.settings = settings or EncoderSettings()
        self._video = self.settings.video
        if self._video and (why := h264_unavailable()) is not None:
            log.warning("video regions disabled, everything is sent losslessly: %s", why)
            self._video = False
        self._coder = RegionCoder(self.settings)
        self._cache = EncoderCache() if self.settings.region_cache else None
        self._seq = first_seq - 1
        self._next_stream_id = 1
        self._streams: dict[int, _Stream] = {}
        #: The bit rate a full-output video region gets now (``settings.video_bitrate`` unless the
        #: caller lowered it with :meth:`set_video_bitrate`).
        self.video_bitrate = self.settings.video_bitrate
        #: Video regions coded at half size now (only with ``settings.video_scaling``).
        self.video_scaled = False
        #: ``next_deadline``'s answer, computed once after each update.
        self._deadline: float | None = None
        self._deadline_known = False
        self._setup(width, height)

    # --- public API ------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def video_streams(self) -> list[VideoStreamInfo]:
        return [VideoStreamInfo(s.id, s.rect) for s in self._streams.values()]

    def set_video_bitrate(self, bitrate: int) -> None:
        """Aim the video regions at ``bitrate`` bit/s for the whole output (each its share by area),
        from their next frame on; streams that start later start at it. At most the configured
        ``settings.video_bitrate``."""
        self.video_bitrate = max(
            self.settings.video_min_bitrate, min(int(bitrate), self.settings.video_bitrate)
        )
        for st in self._streams.values():
            st.codec.set_bitrate(self._stream_bitrate(st.rect))

    def set_video_scaled(self, scaled: bool) -> None:
        """Code video regions of at least ``settings.video_scale_min_pixels`` at half size (the
        viewer scales them back up), or at full size again. A live stream switches with an IDR at its
        next frame, keeping its id. Ignored without ``settings.video_scaling`` (a viewer without the
        ``video-scaled`` capability)."""
        self.video_scaled = scaled and self.settings.video_scaling

    def _scales(self, rect: Rect) -> bool:
        return self.video_scaled and rect.width * rect.height >= self.settings.video_scale_min_pixels

    def _stream_bitrate(self, rect: Rect) -> int:
        share = rect.width * rect.height / (self._width * self._height)
        return max(self.settings.video_min_bitrate, int(self.video_bitrate * share))

    def request_keyframe(self) -> None:
        """Make the next update a keyframe (client attached, reconnected, or reported a mismatch)."""
        self._keyframe_pending = True

    def resize(self, width: int, height: int) -> None:
        """The output changed size: forget everything; the next update is a keyframe at the new size."""
        self._close_streams()
        self._setup(width, height)

    def close(self) -> None:
        self._close_streams()

    def next_deadline(self) -> float | None:
        """When to call :meth:`encode` again even without damage (a video stream may have settled).

        None when nothing is pending. Calling earlier or later is harmless; later delays the lossless
        refresh that makes settled video sharp again.
        """
        # The pump asks before every frame and every wait; only encode() (and resize) change what
        # the answer depends on, so it is computed once per update.
        if not self._deadline_known:
            self._deadline = self._compute_deadline()
            self._deadline_known = True
        return self._deadline

    def _compute_deadline(self) -> float | None:
        settle = self.settings.video_settle_s
        deadlines = []
        for st in self._streams.values():
            t = self._last_change[st.tiles.ty0 : st.tiles.ty1, st.tiles.tx0 : st.tiles.tx1].ravel()
            # The needed-th latest change time: a stream is kept while that many tiles changed
            # within the settle time.
            k = t.size - self._keep_needed(st)
            deadlines.append(float(np.partition(t, k)[k]) + settle)
        return min(deadlines) if deadlines else None

    def encode(
        self,
        fb: NDArray[np.uint32],
        damage: Iterable[DamageRect],
        *,
        now: float,
        force_keyframe: bool = False,
        composites: int = 1,
    ) -> FrameUpdate | None:
        """Encode what changed in ``fb`` (height x width XRGB8888 words) inside ``damage``.

        ``damage`` rectangles are (x, y, width, height) tuples or objects with those attributes (the
        compositor's ``Frame.damage``), in output pixels; they may overlap and stick out of the output.
        They must cover every pixel that changed since the previous call (accumulate damage across
        frames that were not encoded). ``now`` is
        a monotonic time in seconds. Returns None when nothing the client shows would change.

        ``composites``: how many compositor frames this damage accumulates (a caller that paces
        frames to a slow link takes one in several): a changed tile counts as changed that many
        times, so content that changes every frame still goes to video when few frames are sent.
        """
        self._check_framebuffer(fb)
        self._deadline_known = False
        if force_keyframe or self._keyframe_pending:
            return self._keyframe(fb)
        rects = clip_all(damage, self._width, self._height)
        regions, moved = self._copy_scrolled(fb, rects, now)
        dirty = moved.copy()  # tiles whose checksum must be recomputed
        # A COPY may reach outside the damage (coalesced areas are bounding boxes): look there too.
        diff = self._diff(fb, self._damaged(rects) | moved)
        active = diff.changed | moved
        self._note_activity(active, now, composites)

        # Streams that settled (or did not pay) end first, then their rectangles are refreshed.
        ends, refresh = self._end_streams(now)
        if self._video:
            self._start_streams(now)
        lossless = (self._owner == _NO_STREAM) & ~refresh
        regions += self._lossless_regions(fb, diff, lossless, active, dirty)
        if refresh.any():
            regions += self._refreshed_regions(fb, refresh)
            dirty |= refresh
        regions += self._video_frames(fb, diff.changed)

        if not regions and not ends:
            return None
        self._checksums.refresh_mask(self._model, dirty & (self._owner == _NO_STREAM))
        return self._update(False, tuple(ends + regions))

    # --- the steps of an update ------------------------------------------------------------------

    def _damaged(self, rects: list[Rect]) -> NDArray[np.bool_]:
        """The tiles the damage touches."""
        damaged = np.zeros(self._grid, dtype=bool)
        for r in rects:
            sp = tiles_of(r)
            damaged[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = True
        return damaged

    def _copy_scrolled(
        self, fb: NDArray[np.uint32], rects: list[Rect], now: float
    ) -> tuple[list[Region], NDArray[np.bool_]]:
        """COPY regions for the scrolls in the damage, and the tiles whose content they changed."""
        regions = self._scrolls(fb, rects)
        moved = np.zeros(self._grid, dtype=bool)
        for region in regions:
            sp = tiles_of(Rect(region.x, region.y, region.width, region.height))
            moved[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = True
        self._last_copy[moved] = now
        return regions, moved

    def _diff(self, fb: NDArray[np.uint32], tiles: NDArray[np.bool_]) -> TileDiff:
        """How ``fb`` differs from the model in ``tiles``. Inside video streams only whether a tile
        changed: H.264 codes the whole rectangle, and a stream that ends is refreshed whole."""
        diff = TileDiff.empty(*self._grid)
        video = self._owner != _NO_STREAM
        if self._streams and _spans_few(tiles):
            # A small window with a video inside (an animation with still edges): one full pass
            # over all of it costs fewer numpy calls than a ring of blocks around the video and the
            # video apart, and the extra pixels are few. The video tiles' boxes and counts are
            # never read.
            diff_tiles(fb, self._model, tiles, diff)
            return diff
        if (lossless := tiles & ~video).any():
            diff_tiles(fb, self._model, lossless, diff)
        if (streamed := tiles & video).any():
            changed_tiles(fb, self._model, streamed, diff)
        return diff

    def _end_streams(self, now: float) -> tuple[list[Region], NDArray[np.bool_]]:
        """End the video streams that settled or did not pay for themselves: their end regions, and
        the tiles to refresh losslessly."""
        ends: list[Region] = []
        refresh = np.zeros(self._grid, dtype=bool)
        for st in list(self._streams.values()):
            keeps = self._keeps(st, now)
            if keeps and self._passes_probation(st):
                continue
            if keeps:
                self._back_off(st.tiles, now)
                log.debug(
                    "video stream %d at %s ends: %.0f bytes/frame vs %.0f lossless",
                    st.id,
                    st.rect,
                    st.bytes / max(st.frames, 1),
                    st.lossless_estimate,
                )
            else:
                log.debug("video stream %d at %s settled", st.id, st.rect)
            ends.append(self._end_stream(st))
            refresh[st.tiles.ty0 : st.tiles.ty1, st.tiles.tx0 : st.tiles.tx1] = True
        return ends, refresh

    def _lossless_regions(
        self,
        fb: NDArray[np.uint32],
        diff: TileDiff,
        lossless: NDArray[np.bool_],
        active: NDArray[np.bool_],
        dirty: NDArray[np.bool_],
    ) -> list[Region]:
        """The changed ``lossless`` tiles as regions against the model; their tiles are marked in
        ``dirty`` and what they cost goes into the cost averages of the ``active`` ones."""
        regions = []
        costs = np.zeros(self._grid, dtype=np.float64)
        for plan in plan_regions(diff, lossless, self.settings.max_region_pixels):
            region = self._emit(fb, plan, base_known=True)
            regions.append(region)
            self._charge(costs, plan, diff.changed, len(region.data))
            dirty[plan.tiles.ty0 : plan.tiles.ty1, plan.tiles.tx0 : plan.tiles.tx1] = True
        self._update_costs(costs, active & lossless)
        return regions

    def _refreshed_regions(self, fb: NDArray[np.uint32], refresh: NDArray[np.bool_]) -> list[Region]:
        """The whole of the ``refresh`` tiles (where video streams ended), depending on nothing."""
        whole = TileDiff.whole_tiles(refresh, self._width, self._height)
        return [
            self._emit(fb, plan, base_known=False)
            for plan in plan_regions(whole, refresh, self.settings.max_region_pixels)
        ]

    def _video_frames(self, fb: NDArray[np.uint32], changed: NDArray[np.bool_]) -> list[Region]:
        """A frame of each video stream that starts or whose tiles ``changed``."""
        regions = []
        for st in self._streams.values():
            sp = st.tiles
            if not st.started or changed[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1].any():
                rescaled = st.codec.scaled != self._scales(st.rect)
                if rescaled:  # a new context at the other size; its first picture is an IDR
                    st.codec.close()
                    st.codec = self._stream_codec(st.rect)
                    log.debug("video stream %d now at %s size", st.id, "half" if st.codec.scaled else "full")
                regions.append(self._video_frame(fb, st, idr=not st.started or rescaled))
        return regions

    def _stream_codec(self, rect: Rect) -> H264StreamEncoder:
        from wayray.codec.video import H264StreamEncoder  # PyAV only when video is used

        s = self.settings
        return H264StreamEncoder(
            rect.width,
            rect.height,
            bitrate=self._stream_bitrate(rect),
            fps=s.video_fps,
            vbv_s=s.video_vbv_s,
            qp_min=s.video_qp_min,
            threads=s.video_threads,
            scaled=self._scales(rect),
        )

    # --- set-up --------------------------------------------------------------------------------

    def _setup(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"output size must be positive, got {width}x{height}")
        self._width, self._height = width, height
        self._grid = tile_grid(width, height)
        rows, cols = self._grid
        self._model = np.zeros((height, width), dtype=np.uint32)
        self._checksums = TileChecksums(width, height)
        self._owner = np.zeros(self._grid, dtype=np.int64)  # stream id per tile, 0 = lossless
        k = self.settings.video_min_changes
        self._changes = np.full((rows, cols, k), -math.inf)  # ring of the last k change times
        self._ring = np.zeros(self._grid, dtype=np.int64)
        self._last_change = np.full(self._grid, -math.inf)
        self._cost = np.zeros(self._grid, dtype=np.float64)  # lossless bytes/pixel/frame, moving avg
        self._cost_known = np.zeros(self._grid, dtype=bool)  # the first sample sets the average
        self._cost_samples = np.zeros(self._grid, dtype=np.int64)  # lossless frames averaged so far
        self._last_copy = np.full(self._grid, -math.inf)  # last time a scroll moved the tile
        self._retry_at = np.full(self._grid, -math.inf)  # no video before (failed probation)
        self._failures = np.zeros(self._grid, dtype=np.int64)
        self._choice = np.zeros(self._grid, dtype=np.int8)  # RAW/XOR winner per tile, 0 = unknown
        self._choice_left = np.zeros(self._grid, dtype=np.int16)  # reuses left before both are tried
        ys = np.minimum(np.arange(1, rows + 1) * TILE, height) - np.arange(rows) * TILE
        xs = np.minimum(np.arange(1, cols + 1) * TILE, width) - np.arange(cols) * TILE
        self._tile_area = (ys[:, None] * xs[None, :]).astype(np.float64)
        self._keyframe_pending = True
        self._deadline_known = False
        #: Row hashes (scroll.row_hashes) of the areas the last update searched for scrolls.
        self._row_hashes: dict[Rect, NDArray[np.uint64]] = {}

    def _check_framebuffer(self, fb: NDArray[np.uint32]) -> None:
        if fb.shape != (self._height, self._width) or fb.dtype != np.uint32:
            raise ValueError(
                f"framebuffer is {fb.dtype} {fb.shape[::-1]}, encoder expects uint32 "
                f"({self._width}, {self._height}); call resize() when the output size changes"
            )

    # --- frames -------------------------------------------------------------------------------

    def _update(self, keyframe: bool, regions: tuple[Region, ...]) -> FrameUpdate:
        self._seq += 1
        return FrameUpdate(
            seq=self._seq,
            width=self._width,
            height=self._height,
            keyframe=keyframe,
            regions=regions,
            checksum=self._checksums.value(),
        )

    def _keyframe(self, fb: NDArray[np.uint32]) -> FrameUpdate:
        """The whole output, depending on nothing the client had (video streams restart with an IDR)."""
        self._keyframe_pending = False
        self._row_hashes = {}  # the next scroll search hashes the model afresh
        if self._cache is not None:
            self._cache.clear()  # the client empties its cache too; a keyframe's regions stay out
        lossless = self._owner == _NO_STREAM
        whole = TileDiff.whole_tiles(lossless, self._width, self._height)
        regions = [
            self._emit(fb, plan, base_known=False, keyframe=True)
            for plan in plan_regions(whole, lossless, self.settings.max_region_pixels)
        ]
        regions += [self._video_frame(fb, st, idr=True) for st in self._streams.values()]
        self._checksums.refresh_mask(self._model, lossless)
        return self._update(True, tuple(regions))

    def _emit(
        self, fb: NDArray[np.uint32], plan: PlannedRegion, *, base_known: bool, keyframe: bool = False
    ) -> Region:
        """Encode one planned rectangle losslessly and advance the model to it."""
        x, y, w, h = plan.rect
        cache = None if keyframe else self._cache
        digest = b""
        if cache is not None and w * h <= CACHE_MAX_PIXELS:
            slot, digest = cache.find(fb[y : y + h, x : x + w])
            if slot is not None:  # the client has exactly these pixels in that slot
                self._model[y : y + h, x : x + w] = fb[y : y + h, x : x + w]
                return cached_region(x, y, w, h, slot)
        sp = plan.tiles
        sl = np.s_[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1]
        cost = self._cost[sl]
        prefer = None
        if base_known:
            choice = self._choice[sl]
            first = int(choice[0, 0])
            if first and self._choice_left[sl].min() > 0 and bool((choice == first).all()):
                prefer = _CHOICES[first]
        coder = self._coder
        region = coder.encode(
            fb,
            self._model,
            plan.rect,
            base_known=base_known,
            changed_pixels=plan.changed_pixels,
            noisy=bool(cost.max() >= self.settings.noisy_bytes_per_pixel),
            prefer=prefer,
        )
        if coder.tried_both:
            self._choice[sl] = 1 if region.encoding == RegionEncoding.RAW_ZSTD else 2
            self._choice_left[sl] = _CHOICE_REUSE
        elif prefer is not None:
            self._choice_left[sl] -= 1
        self._model[y : y + h, x : x + w] = fb[y : y + h, x : x + w]
        if cache is not None and remembered(region):
            cache.remember(digest)
        return region

    def _scrolls(self, fb: NDArray[np.uint32], rects: list[Rect]) -> list[Region]:
        """COPY regions for vertical scrolls inside the damage; the model is moved accordingly."""
        s = self.settings
        out = []
        # Bound the work for a compositor that sends hundreds of small rectangles: the big ones
        # are where scrolls are.
        if len(rects) > _SCROLL_MAX_RECTS:
            rects = sorted(rects, key=lambda r: r.area, reverse=True)[:_SCROLL_MAX_RECTS]
        # Every update leaves the model equal to the frame it encoded, so the row hashes of an area
        # in this frame are those of the model there in the next (hashes only vote, see scroll.py).
        hashes, self._row_hashes = self._row_hashes, {}
        for area in coalesce(rects):
            if area.width < s.scroll_min_size or area.height < s.scroll_min_size:
                continue
            sp = tiles_of(area)
            if (self._owner[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] != _NO_STREAM).any():
                continue  # the model is not what the client has under video
            new = row_hashes(fb[area.y : area.bottom, area.x : area.right])
            self._row_hashes[area] = new
            found = find_vertical_scroll(
                fb, self._model, area, s.scroll_min_rows, new_hashes=new, old_hashes=hashes.get(area)
            )
            if found is None:
                continue
            d = found.dst
            self._model[d.y : d.bottom, d.x : d.right] = self._model[
                found.src_y : found.src_y + d.height, d.x : d.right
            ].copy()
            out.append(copy_region(d, d.x, found.src_y))
        return out

    # --- activity and cost (what decides video) ------------------------------------------------

    def _note_activity(self, active: NDArray[np.bool_], now: float, times: int = 1) -> None:
        if not active.any():
            return
        ys, xs = np.nonzero(active)
        k = self._changes.shape[2]
        for _ in range(max(1, min(times, k))):
            slot = self._ring[ys, xs]
            self._changes[ys, xs, slot] = now
            self._ring[ys, xs] = (slot + 1) % k
        self._last_change[ys, xs] = now

    def _charge(
        self, costs: NDArray[np.float64], plan: PlannedRegion, changed: NDArray[np.bool_], n: int
    ) -> None:
        sp = plan.tiles
        sel = changed[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1]
        k = int(sel.sum())
        if k:
            costs[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] += np.where(sel, n / k, 0.0)

    def _update_costs(self, costs: NDArray[np.float64], tiles: NDArray[np.bool_]) -> None:
        # Moving average over the frames in which a tile changed (a COPY-only frame costs ~nothing).
        alpha = 0.3
        per_px = costs / self._tile_area
        avg = np.where(self._cost_known, (1 - alpha) * self._cost + alpha * per_px, per_px)
        self._cost = np.where(tiles, avg, self._cost)
        self._cost_known |= tiles
        self._cost_samples[tiles] += 1

    def _animating(self, now: float) -> NDArray[np.bool_]:
        """Tiles that changed often enough lately (fewer changes suffice for very costly tiles)."""
        s = self.settings
        since = now - s.video_window_s
        k = self._changes.shape[2]
        # The ring's next slot holds the oldest of the last k change times.
        kth = np.take_along_axis(self._changes, (self._ring % k)[..., None], axis=2)[..., 0]
        fast = np.take_along_axis(
            self._changes, ((self._ring - s.video_fast_changes) % k)[..., None], axis=2
        )
        result: NDArray[np.bool_] = (kth >= since) | (
            (fast[..., 0] >= since) & (self._cost >= s.video_fast_bytes_per_pixel)
        )
        return result

    # --- video streams ---------------------------------------------------------------------------

    def _keep_needed(self, st: _Stream) -> int:
        return max(1, math.ceil(self.settings.video_keep_fraction * st.tiles.ntiles))

    def _keeps(self, st: _Stream, now: float) -> bool:
        sp = st.tiles
        recent = self._last_change[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] + self.settings.video_settle_s > now
        return int(recent.sum()) >= self._keep_needed(st)

    def _passes_probation(self, st: _Stream) -> bool:
        s = self.settings
        if st.proven or st.frames < s.video_probation_frames:
            return True
        if st.bytes / st.frames > s.video_max_cost_ratio * st.lossless_estimate:
            return False
        st.proven = True
        return True

    def _back_off(self, tiles: TileSpan, now: float) -> None:
        s = self.settings
        sl = np.s_[tiles.ty0 : tiles.ty1, tiles.tx0 : tiles.tx1]
        self._failures[sl] += 1
        delay = np.minimum(s.video_retry_s * 2.0 ** (self._failures[sl] - 1), s.video_retry_max_s)
        self._retry_at[sl] = now + delay

    def _start_streams(self, now: float) -> None:
        s = self.settings
        if len(self._streams) >= s.video_max_streams:
            return
        # A tile animates only if it changed within the window: when fewer than a stream's least
        # did (typing, a blinking cursor), no stream can start and the grid-wide test is skipped.
        if np.count_nonzero(self._last_change >= now - s.video_window_s) < s.video_min_tiles:
            return
        # Scrolled tiles stay lossless: COPY is cheaper than video there, and the text stays sharp.
        candidates = (
            (self._owner == _NO_STREAM)
            & (self._cost >= s.video_min_bytes_per_pixel)
            & (self._retry_at <= now)
            & (self._last_copy < now - s.video_window_s)
            # The cost average must have settled (see the setting); costly tiles (video) need not wait.
            & (
                (self._cost_samples >= s.video_min_cost_samples)
                | (self._cost >= s.video_fast_bytes_per_pixel)
            )
        )
        # Animation is the costly test (two gathers over the change rings): only when enough tiles
        # pass the others (a scrolling terminal's cheap text tiles do not).
        if np.count_nonzero(candidates) < s.video_min_tiles:
            return
        candidates &= self._animating(now)
        if int(candidates.sum()) < s.video_min_tiles:
            return
        for tiles, n in _components(candidates):
            rows, cols = tiles.ty1 - tiles.ty0, tiles.tx1 - tiles.tx0
            if n < s.video_min_tiles or rows < 2 or cols < 2 or n < s.video_min_density * tiles.ntiles:
                continue
            if (self._owner[tiles.ty0 : tiles.ty1, tiles.tx0 : tiles.tx1] != _NO_STREAM).any():
                continue
            if len(self._streams) >= s.video_max_streams:
                break
            rect = span_rect(tiles, self._width, self._height)
            sl = np.s_[tiles.ty0 : tiles.ty1, tiles.tx0 : tiles.tx1]
            st = _Stream(
                self._next_stream_id,
                tiles,
                rect,
                self._stream_codec(rect),
                lossless_estimate=float((self._cost[sl] * self._tile_area[sl]).sum()),
            )
            self._next_stream_id = self._next_stream_id % 0xFFFF_FFFF + 1
            self._streams[st.id] = st
            log.debug("video stream %d starts at %s", st.id, rect)
            self._owner[tiles.ty0 : tiles.ty1, tiles.tx0 : tiles.tx1] = st.id
            self._checksums.blank(tiles)

    def _video_frame(self, fb: NDArray[np.uint32], st: _Stream, *, idr: bool) -> Region:
        x, y, w, h = st.rect
        pixels = fb[y : y + h, x : x + w]
        data = st.codec.encode(pixels, idr=idr)
        if st.started and not idr:
            st.frames += 1
            st.bytes += len(data)
        st.started = True
        self._model[y : y + h, x : x + w] = pixels
        return Region(x, y, w, h, RegionEncoding.H264, data, stream_id=st.id)

    def _end_stream(self, st: _Stream) -> Region:
        """Close a stream: an empty H264 region tells the client to drop its decoder."""
        st.codec.close()
        del self._streams[st.id]
        sp = st.tiles
        self._owner[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = _NO_STREAM
        # Its tiles start a fresh history: the lossless refresh is not a measure of change cost.
        self._changes[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] = -math.inf
        x, y, w, h = st.rect
        return Region(x, y, w, h, RegionEncoding.H264, b"", stream_id=st.id)

    def _close_streams(self) -> None:
        for st in self._streams.values():
            st.codec.close()
        self._streams.clear()
        self._deadline_known = False


#: ``Encoder._diff`` compares the damaged tiles in one pass, video tiles included, when their
#: bounding box has at most this many tiles.
_FEW_TILES = 36


def _spans_few(tiles: NDArray[np.bool_]) -> bool:
    """True when the set ``tiles`` lie within a bounding box of at most ``_FEW_TILES`` tiles."""
    rows = np.flatnonzero(tiles.any(axis=1))
    if rows.size == 0:
        return False
    cols = np.flatnonzero(tiles[rows[0] : rows[-1] + 1].any(axis=0))
    return bool((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) <= _FEW_TILES)


def _components(mask: NDArray[np.bool_]) -> list[tuple[TileSpan, int]]:
    """Bounding tile spans and sizes of the 4-connected groups of set tiles."""
    seen = np.zeros_like(mask)
    rows, cols = mask.shape
    out = []
    for ty, tx in zip(*np.nonzero(mask), strict=True):
        if seen[ty, tx]:
            continue
        stack = [(int(ty), int(tx))]
        seen[ty, tx] = True
        y0 = y1 = int(ty)
        x0 = x1 = int(tx)
        n = 0
        while stack:
            cy, cx = stack.pop()
            n += 1
            y0, y1, x0, x1 = min(y0, cy), max(y1, cy), min(x0, cx), max(x1, cx)
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < rows and 0 <= nx < cols and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append((TileSpan(y0, y1 + 1, x0, x1 + 1), n))
    return out
