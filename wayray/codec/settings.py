"""Encoder settings: one frozen value, with the reasons for each default.

The defaults come from measurements on the project's 2-core machine kind (docs/benchmarks.md,
"Codec"); the session policy may override the video ones (e.g. turn video off for a text-only pool).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: When big video regions go at half size (``EncoderSettings.video_scale_mode``).
VIDEO_SCALE_MODES = ("auto", "never", "always")


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    # --- lossless path ---------------------------------------------------------------------------------
    #: zstd level for regions up to ``zstd_small_pixels`` (text lines, typed characters): on rendered
    #: text level 5 is 25% smaller than level 1 and still takes well under a millisecond per region.
    #: This is the level the configuration's ``encoder.zstd_level`` sets: text is where a level buys
    #: bytes.
    zstd_level_small: int = 5
    #: zstd level for bigger regions, and for photo-like content of any size (tiles that cost more
    #: than ``noisy_bytes_per_pixel``): there the slow levels gain nothing and cost 4x the CPU
    #: (deps-probe §2).
    zstd_level_large: int = 1
    zstd_small_pixels: int = 64 * 1024
    noisy_bytes_per_pixel: float = 0.5
    #: Regions are merged from tiles up to this many pixels (bounds one region's decode work and size).
    max_region_pixels: int = 512 * 1024
    #: Look for vertical scrolls (sent as COPY + the newly exposed rows) in damaged areas at least this
    #: tall and wide.
    scroll_min_size: int = 48
    #: A scroll is used only when at least this many rows move.
    scroll_min_rows: int = 16

    # --- video path -----------------------------------------------------------------------------------
    #: Use H.264 for regions that keep changing (animations, video). Off: everything stays lossless.
    video: bool = True
    #: A tile is "animating" when it changed at least this many times ...
    video_min_changes: int = 8
    #: ... within this many seconds (8 in 0.5 s: 16 changes/s or more) ...
    video_window_s: float = 0.5
    #: ... and its lossless updates cost at least this many bytes per pixel per frame (moving average).
    video_min_bytes_per_pixel: float = 0.05
    #: ... measured over at least this many lossless frames: a window's first frames (mapped, then
    #: filled in) cost several times its steady animation, and a stream judged against them passes
    #: probation when it should not (weston-simple-shm went to H.264 at more bytes than lossless).
    #: Tiles costing ``video_fast_bytes_per_pixel`` or more need not wait.
    video_min_cost_samples: int = 16
    #: Tiles this costly (photo-like content: a video, a game) qualify after only
    #: ``video_fast_changes`` changes in the window, so a full-screen video does not spend a second
    #: at megabytes per frame before it goes to H.264.
    video_fast_bytes_per_pixel: float = 1.0
    video_fast_changes: int = 2
    #: A video stream needs at least this many animating tiles, at least two tiles in each direction,
    #: and animating tiles covering at least ``video_min_density`` of its bounding box.
    video_min_tiles: int = 4
    video_min_density: float = 0.5
    #: A stream ends (and its rectangle is refreshed losslessly) when fewer than ``video_keep_fraction``
    #: of its tiles changed within the last ``video_settle_s`` seconds.
    video_settle_s: float = 0.3
    video_keep_fraction: float = 0.25
    video_max_streams: int = 4
    #: Probation: after this many frames a stream must cost at most ``video_max_cost_ratio`` of what
    #: its tiles cost losslessly before it started; otherwise it ends (a text flood is cheaper as XOR
    #: than as video) and its tiles may not become video again for ``video_retry_s`` seconds, doubled
    #: at each failure up to ``video_retry_max_s``.
    video_probation_frames: int = 8
    video_max_cost_ratio: float = 0.5
    video_retry_s: float = 5.0
    video_retry_max_s: float = 120.0
    #: The bit rate a video region covering the whole output may take, in bit/s (``encoder.bitrate``);
    #: a smaller region gets its share by area, at least ``video_min_bitrate``. x264 runs in average
    #: bit rate mode with a VBV buffer of ``video_vbv_s`` seconds at that rate, planned for
    #: ``video_fps`` frames a second (at fewer frames a second a stream takes proportionally less).
    video_bitrate: int = 8_000_000
    video_min_bitrate: int = 100_000
    video_fps: int = 60
    video_vbv_s: float = 0.25
    #: x264's smallest quantizer: the best quality a stream spends bits on (content that needs less
    #: than its bit rate takes less). 18 is visually lossless for most video.
    video_qp_min: int = 18
    #: The display pump adapts the video bit rate and the frame rate to the viewer's link
    #: (``encoder.adaptive``; wayray.session.adapt, docs/encoding.md section 10).
    adaptive: bool = True
    #: x264 threads per stream. One: sessions already encode in parallel, one process each.
    video_threads: int = 1
    #: Name small regions the viewer has already seen by their slot in the region cache
    #: (wayray.codec.cache) instead of sending their pixels again. Only for a viewer that took the
    #: ``region-cache`` capability: the display pump turns it on for such a viewer.
    region_cache: bool = False
    #: Video regions may be coded at half size and scaled back up by the viewer, when the caller says
    #: the encoder cannot keep up (``Encoder.set_video_scaled``). Only for a viewer that took the
    #: ``video-scaled`` capability: the display pump turns it on for such a viewer.
    video_scaling: bool = False
    #: Only video regions of at least this many pixels are scaled: x264's time grows with the pixels,
    #: and a small region halved loses more to the eye than it saves (640x360 here).
    video_scale_min_pixels: int = 230_400
    #: When the display pump scales (with ``video_scaling``): ``auto`` when encoding cannot keep up,
    #: ``always`` or ``never`` (the configuration's ``encoder.video_scaling``).
    video_scale_mode: str = "auto"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or f.name.startswith("zstd_level"):
                continue
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"EncoderSettings.{f.name} must not be negative (got {value})")
        for name in ("zstd_level_small", "zstd_level_large"):
            # Negative levels are zstd's fast modes; 22 is its slowest.
            if not -(1 << 17) <= getattr(self, name) <= 22:
                raise ValueError(
                    f"EncoderSettings.{name} must be a zstd level, -131072..22 (got {getattr(self, name)})"
                )
        if self.video_scale_mode not in VIDEO_SCALE_MODES:
            raise ValueError(
                f"EncoderSettings.video_scale_mode must be one of {', '.join(VIDEO_SCALE_MODES)} "
                f"(got {self.video_scale_mode!r})"
            )
        for name in ("video_keep_fraction", "video_min_density"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"EncoderSettings.{name} must be within (0, 1] (got {getattr(self, name)})")
        from wayray.codec.decoder import MAX_VIDEO_STREAMS  # what every viewer accepts

        if not 1 <= self.video_max_streams <= MAX_VIDEO_STREAMS:
            raise ValueError(
                f"EncoderSettings.video_max_streams must be within 1..{MAX_VIDEO_STREAMS} "
                f"(got {self.video_max_streams})"
            )
        if not 0 <= self.video_qp_min <= 51:
            raise ValueError(f"EncoderSettings.video_qp_min must be within 0..51 (got {self.video_qp_min})")
        if self.video_bitrate < self.video_min_bitrate or self.video_min_bitrate < 1000:
            raise ValueError(
                "EncoderSettings: need 1000 <= video_min_bitrate <= video_bitrate "
                f"(got {self.video_min_bitrate} and {self.video_bitrate})"
            )
        if self.video_fps < 1 or self.video_vbv_s <= 0:
            raise ValueError(
                f"EncoderSettings: video_fps and video_vbv_s must be positive (got {self.video_fps}, "
                f"{self.video_vbv_s})"
            )
        if not 2 <= self.video_fast_changes <= self.video_min_changes:
            raise ValueError(
                "EncoderSettings: need 2 <= video_fast_changes <= video_min_changes "
                f"(got {self.video_fast_changes} and {self.video_min_changes})"
            )
