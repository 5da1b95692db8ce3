"""A flash-and-click film for a real player (bench/audio_av_skew.py ``--player mpv``).

    .venv/bin/python -m bench.av_player_clip OUT.mkv [--flashes 20] [--period 1.0]

A Matroska file whose picture is black but for ``FLASH_S`` of white once a period, and whose sound is
the quiet 150 Hz bed of bench/av_flash_client.py with click k (its own pitch, 600 + 200 × (k mod 25)
Hz, bench/audio_mouth_to_ear.py's clicks) starting on the same instant as flash k. The picture is
Motion JPEG (every frame its own picture, and a flat one comes out flat) so that black is black again
right after a flash and a viewer shows a frame only when a flash starts or ends; the sound is PCM.
``LEAD_S`` of black and bed come first, so the player, the session's sound and the kiosk's playing
are all running before flash 0.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bench.audio_mouth_to_ear import BED, CLICK_S, RATE, tone_of

FPS = 30
WIDTH, HEIGHT = 320, 240
#: How long each flash stays white: long enough to be a frame or more at any rate, short against the
#: period so that a flash's start and end are told apart by the gap before them.
FLASH_S = 0.2
LEAD_S = 3.0


def flash_times(flashes: int, period: float) -> list[float]:
    """When flash k (and its click) starts, in seconds from the clip's start: frame-aligned."""
    return [round((LEAD_S + k * period) * FPS) / FPS for k in range(flashes)]


def write_clip(path: Path, flashes: int, period: float) -> None:
    starts = flash_times(flashes, period)
    length = starts[-1] + period
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("mjpeg", rate=FPS, options={"qmin": "1", "qmax": "1"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        audio = out.add_stream("pcm_s16le", rate=RATE, layout="stereo")
        black = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        white = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
        for i in range(round(length * FPS)):
            t = i / FPS
            lit = any(s <= t + 1e-9 < s + FLASH_S for s in starts)
            frame = av.VideoFrame.from_ndarray(white if lit else black, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        mono = _sound(starts, length)
        pcm = (np.stack([mono, mono], 1) * 32767).astype("<i2")
        step = 1024
        for i in range(0, len(pcm), step):
            chunk = np.ascontiguousarray(pcm[i : i + step].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = RATE, i, Fraction(1, RATE)
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


def _sound(starts: list[float], length: float) -> np.ndarray:
    n = round(length * RATE)
    mono = BED * np.sin(2 * np.pi * 150 * np.arange(n) / RATE)
    t = np.arange(int(RATE * CLICK_S)) / RATE
    fade = np.minimum(1.0, np.minimum(t, CLICK_S - t) / 0.002)
    for k, s in enumerate(starts):
        i = round(s * RATE)
        mono[i : i + t.size] = 0.5 * fade * np.sin(2 * np.pi * tone_of(k) * t)
    return mono


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--flashes", type=int, default=20)
    p.add_argument("--period", type=float, default=1.0, help="seconds from one flash to the next")
    args = p.parse_args()
    write_clip(args.out, args.flashes, args.period)
    print(f"{args.out}: {args.flashes} flashes, one every {args.period:g} s after {LEAD_S:g} s")


if __name__ == "__main__":
    main()
