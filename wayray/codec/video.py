"""H.264 streams through PyAV: one encoder context per video region, one decoder context per stream.

Encoder: libx264, preset ultrafast, tune zerolatency (no lookahead, no B-frames: one access unit out
per frame in), yuv420p, a GOP as long as the stream (IDR only at the start or on request). Rate
control is x264's average bit rate with a VBV buffer: ``bitrate`` bit/s at ``fps`` frames a second (the
rate x264 plans each frame's bits for; fewer frames a second take proportionally fewer bits), never
better than quantizer ``qp_min`` (content that needs less takes less). :meth:`set_bitrate` changes the
target between frames without a new IDR (x264 reconfigures itself); the VBV ceiling stays the one it
opened with. The picture is padded to even dimensions by repeating its last column/row; the decoder
crops it back. Colour conversion costs as much as encoding (deps-probe §3), so the BGRA to yuv420p
reformatter is created once per stream and reused.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter
from numpy.typing import NDArray

from wayray.codec.errors import CodecError

#: Pictures of at least this many pixels are converted to yuv420p with swscale's threads (one per
#: core: 1080p takes 3.4 ms instead of 4.1 ms of wall time on two cores, for a fifth more CPU).
SWS_THREADS_PIXELS = 640 * 480


def coded_size(width: int, height: int) -> tuple[int, int]:
    """Dimensions H.264 4:2:0 is coded at: rounded up to even."""
    return width + (width & 1), height + (height & 1)


def scaled_size(width: int, height: int) -> tuple[int, int]:
    """Dimensions a rectangle's picture is coded at when scaled (the ``video-scaled`` capability):
    half of each side, rounded up, then up to even."""
    return coded_size((width + 1) // 2, (height + 1) // 2)


class H264StreamEncoder:
    def __init__(
        self,
        width: int,
        height: int,
        *,
        bitrate: int,
        fps: int = 60,
        vbv_s: float = 0.25,
        qp_min: int = 18,
        threads: int = 1,
        scaled: bool = False,
    ) -> None:
        """``scaled``: code the picture at half size (:func:`scaled_size`); the viewer scales it back."""
        self.width = width
        self.height = height
        self.scaled = scaled
        self._coded = scaled_size(width, height) if scaled else coded_size(width, height)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = self._coded
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 1000)
        # x264 plans bits per frame from the frame rate, not from the time stamps.
        ctx.framerate = Fraction(fps)
        ctx.thread_count = threads
        ctx.gop_size = 1 << 30  # IDR only when asked: bytes go to changes, not to periodic I-frames
        ctx.max_b_frames = 0
        bitrate = max(1000, int(bitrate))
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "b": str(bitrate),
            "maxrate": str(bitrate),
            "bufsize": str(max(1000, int(bitrate * vbv_s))),
            "qmin": str(qp_min),
        }
        ctx.open()
        self._ctx = ctx
        self.bitrate = bitrate
        self._reformatter = VideoReformatter()
        # swscale's own threads (its default) pay for themselves only on big pictures: on a small
        # one the hand-offs cost more CPU than the conversion (250x250: 220 µs with them, 130 µs
        # without, and no sooner done).
        self._sws_threads = 1 if width * height < SWS_THREADS_PIXELS else 0
        self._pts = 0

    def set_bitrate(self, bitrate: int) -> None:
        """Aim at ``bitrate`` bit/s from the next frame on (x264 reconfigures; no IDR)."""
        bitrate = max(1000, int(bitrate))
        if bitrate != self.bitrate:
            self._ctx.bit_rate = bitrate
            self.bitrate = bitrate

    def encode(self, pixels: NDArray[np.uint32], *, idr: bool) -> bytes:
        """One access unit (Annex B) for these XRGB pixels (``height`` x ``width``)."""
        cw, ch = self._coded
        if not self.scaled and (cw, ch) != (self.width, self.height):
            pixels = np.pad(pixels, ((0, ch - self.height), (0, cw - self.width)), mode="edge")
        elif pixels.strides[1] != 4:
            pixels = np.ascontiguousarray(pixels)
        h, w = pixels.shape
        # The frame borrows the pixels (rows may be strided: a rectangle inside the output) instead of
        # copying them: swscale reads them once, into the picture x264 gets (8 MB a frame at 1080p).
        frame = av.VideoFrame.from_numpy_buffer(pixels.view(np.uint8).reshape(h, w, 4), format="bgra")
        # Scaled, swscale halves the rectangle in the same pass (a rectangle of odd size to an even one).
        yuv = self._reformatter.reformat(
            frame,
            width=cw,
            height=ch,
            format="yuv420p",
            interpolation=Interpolation.FAST_BILINEAR,
            threads=self._sws_threads,
        )
        yuv.pts = self._pts
        self._pts += 1
        if idr:
            yuv.pict_type = PictureType.I
        data = b"".join(bytes(p) for p in self._ctx.encode(yuv))
        if not data:
            # zerolatency guarantees one access unit per frame; an empty one would read as "end".
            raise RuntimeError(
                "libx264 returned no access unit for a frame (is tune=zerolatency in effect?)"
            )
        return data

    def close(self) -> None:
        self._ctx = None  # type: ignore[assignment]


class H264StreamDecoder:
    def __init__(self, width: int, height: int, *, scaled: bool = False) -> None:
        """``scaled``: the viewer took ``video-scaled``: pictures may also come at :func:`scaled_size`
        (from any IDR on, until the next one), and are scaled up to the rectangle."""
        self.width = width
        self.height = height
        self._coded = coded_size(width, height)
        self._scaled = scaled_size(width, height) if scaled else None
        self._reformatter = VideoReformatter()
        #: Whether the last picture came at half size.
        self.last_scaled = False
        ctx = av.CodecContext.create("h264", "r")
        ctx.thread_count = 1  # frame threads would delay output by a frame per thread
        # An access unit whose SPS declares a bigger picture than the stream's rectangle is refused
        # before FFmpeg allocates it (a few KiB of H.264 can declare 8192x8192 of pixels). FFmpeg
        # checks its buffer's size: the width aligned for SIMD (64 here), so allow for alignment.
        cw, ch = self._coded
        ctx.options = {"max_pixels": str(-(-cw // 128) * 128 * (-(-ch // 32) * 32))}
        self._ctx = ctx

    def decode(self, data: bytes) -> NDArray[np.uint32]:
        """The picture of one access unit, cropped to the stream's rectangle (X byte 0xFF)."""
        try:
            frames = self._ctx.decode(av.Packet(data))
        except av.error.FFmpegError as e:
            raise CodecError(f"H.264 access unit of {len(data)} bytes failed to decode ({e})") from e
        if not frames:
            raise CodecError(f"H.264 access unit of {len(data)} bytes gave no picture")
        frame = frames[-1]
        size = (frame.width, frame.height)
        self.last_scaled = size == self._scaled and size != self._coded
        if self.last_scaled:
            # Half size: scaled up to the rectangle itself (no crop: the scaled picture has no padding).
            frame = self._reformatter.reformat(
                frame,
                width=self.width,
                height=self.height,
                format="bgra",
                interpolation=Interpolation.BILINEAR,
            )
            bgra = frame.to_ndarray()
            return bgra.view(np.uint32).reshape(self.height, self.width)
        if size != self._coded:
            also = "" if self._scaled is None else f" or {self._scaled[0]}x{self._scaled[1]} (scaled)"
            raise CodecError(
                f"H.264 picture is {frame.width}x{frame.height}, stream rectangle needs {self._coded[0]}x"
                f"{self._coded[1]}{also}"
            )
        bgra = frame.to_ndarray(format="bgra")
        return bgra.view(np.uint32).reshape(bgra.shape[0], bgra.shape[1])[: self.height, : self.width]

    def close(self) -> None:
        self._ctx = None  # type: ignore[assignment]
