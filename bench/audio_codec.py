"""Opus encoders side by side: PyAV's libopus and opuslib, on the same 20 ms frames (docs/audio.md §2).

    .venv/bin/python -m bench.audio_codec                 # 10 s of a tone plus a chirp, 96 kbit/s
    .venv/bin/python -m bench.audio_codec --seconds 30 --bitrate 64

CPU is this process's CPU time (time.process_time) per 20 ms frame, for encoding and for decoding;
bytes per second are what the encoder produced. opuslib is optional (it is not a WayRay dependency):
without it only PyAV is measured.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

RATE = 48000
FRAME = 960  # 20 ms


def signal(seconds: float) -> np.ndarray:
    """A 440 Hz tone under a rising chirp, stereo s16, the right channel a little quieter."""
    t = np.arange(int(RATE * seconds)) / RATE
    mono = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    return (np.stack([mono, mono * 0.8], 1) * 32767).astype("<i2")


def frames_of(pcm: np.ndarray) -> list[np.ndarray]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def bench_pyav(frames: list[np.ndarray], bitrate: int) -> tuple[float, float, int]:
    import av

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = RATE, "stereo", "s16", bitrate
    enc.options = {"frame_duration": "20", "application": "lowdelay", "vbr": "off"}
    enc.open()
    packets: list[bytes] = []
    t0 = time.process_time()
    for pts, f in enumerate(frames):
        af = av.AudioFrame.from_ndarray(f.reshape(1, -1), format="s16", layout="stereo")
        af.sample_rate, af.pts = RATE, pts * FRAME
        packets += [bytes(p) for p in enc.encode(af)]
    t1 = time.process_time()
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout = RATE, "stereo"
    t2 = time.process_time()
    for p in packets:
        dec.decode(av.Packet(p))
    t3 = time.process_time()
    return (t1 - t0) / len(frames), (t3 - t2) / len(frames), sum(map(len, packets))


def bench_opuslib(frames: list[np.ndarray], bitrate: int) -> tuple[float, float, int] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            import opuslib  # type: ignore[import-untyped]
    except ImportError:
        return None
    enc = opuslib.Encoder(RATE, 2, opuslib.APPLICATION_RESTRICTED_LOWDELAY)
    enc.bitrate = bitrate
    dec = opuslib.Decoder(RATE, 2)
    t0 = time.process_time()
    packets = [enc.encode(f.tobytes(), FRAME) for f in frames]
    t1 = time.process_time()
    for p in packets:
        dec.decode(p, FRAME)
    t2 = time.process_time()
    return (t1 - t0) / len(frames), (t2 - t1) / len(frames), sum(map(len, packets))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--bitrate", type=int, default=96, help="kbit/s (96)")
    args = p.parse_args()
    frames = frames_of(signal(args.seconds))
    bitrate = args.bitrate * 1000
    print(f"{len(frames)} frames of 20 ms, {args.bitrate} kbit/s asked")
    for name, result in (("pyav", bench_pyav(frames, bitrate)), ("opuslib", bench_opuslib(frames, bitrate))):
        if result is None:
            print(f"{name:8} not installed")
            continue
        enc_s, dec_s, total = result
        print(
            f"{name:8} encode {enc_s * 1e6:6.1f} µs/frame  decode {dec_s * 1e6:6.1f} µs/frame  "
            f"{total / args.seconds * 8 / 1000:6.1f} kbit/s"
        )


if __name__ == "__main__":
    main()
