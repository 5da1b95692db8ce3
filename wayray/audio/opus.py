"""Opus through PyAV's libopus (docs/audio.md §2 says why not opuslib): 20 ms frames, 48 kHz stereo s16."""

from __future__ import annotations

import av
import numpy as np

RATE = 48000
CHANNELS = 2
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FRAME_US = 20_000
FRAME_BYTES = FRAME_SAMPLES * CHANNELS * 2


class OpusEncoder:
    """Constant bit rate, restricted low delay (2.5 ms look-ahead, no SILK): what a remote desktop wants."""

    def __init__(self, bitrate: int) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = RATE
        ctx.layout = "stereo"
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.options = {"frame_duration": "20", "application": "lowdelay", "vbr": "off"}
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        """One frame of interleaved s16le (FRAME_BYTES) → the packets the encoder gives back (one)."""
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return [bytes(p) for p in self._ctx.encode(frame)]


class OpusDecoder:
    def __init__(self) -> None:
        ctx = av.CodecContext.create("libopus", "r")
        ctx.sample_rate = RATE
        ctx.layout = "stereo"
        self._ctx = ctx

    def decode(self, packet: bytes) -> bytes:
        """One packet → interleaved s16le; raises ValueError for data that does not decode."""
        try:
            frames = self._ctx.decode(av.Packet(packet))
        except av.FFmpegError as err:
            raise ValueError(f"not an Opus packet: {err}") from None
        out = []
        for f in frames:
            arr = f.to_ndarray()
            if f.format.is_planar:
                arr = arr.T.reshape(-1)
            else:
                arr = arr.reshape(-1)
            if arr.dtype != np.int16:
                arr = (np.clip(arr, -1.0, 1.0) * 32767).astype("<i2")
            out.append(arr.astype("<i2").tobytes())
        return b"".join(out)


def is_silent(pcm: bytes, threshold: int = 8) -> bool:
    """Every sample within ±threshold (about −72 dBFS): not worth a frame."""
    samples = np.frombuffer(pcm, "<i2")
    return samples.size == 0 or int(np.abs(samples.astype(np.int32)).max()) <= threshold
