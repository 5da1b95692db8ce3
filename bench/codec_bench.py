"""Codec benchmark: bytes on the wire and CPU per frame for the issue's workloads, side by side with peers.

    .venv/bin/python -m bench.codec_bench                 # all workloads
    .venv/bin/python -m bench.codec_bench -w typing -w shm --frames 200

Workloads (bench/codec_scenes.py): (a) a terminal tailing a log (1 line per frame) and a `seq` flood
(whole screen new each frame, as in waypipe-baseline.md (a')); (b) weston-simple-shm's animation at
weston-headless's 39.5 Hz; (c) typing one character per frame; (d) 1080p full-screen changes run as
fast as the encoder goes (sustained fps): a maximized terminal scrolling, the same with every line new
each frame, and a full-screen video with and without the video path.

Peers computed on the very same frames, in the same run:
- "upstream": what the Rust WayRay sends (wayray-upstream.md §2.6): zstd level 1 of the absolute
  pixels of every damage rectangle.
- "waypipe-like": an emulation of waypipe 0.8's buffer diff (runs of changed 32-bit words against a
  mirror, gaps of up to 8 words bridged, an 8-byte header per run) compressed with zstd level 5, its
  default. An emulation: the real waypipe figures, measured on real clients, are in
  waypipe-baseline.md and are quoted next to ours in docs/benchmarks.md.

Bytes are region payloads plus 24 bytes per region and 32 per update for framing (an estimate until the
wire's serializer is measured). CPU is the encoding process's CPU time per frame (time.process_time),
wall is time.perf_counter; both are medians and 95th percentiles over the frames after the first
(the first is the keyframe, reported apart).

To measure a real compositor's frame stream instead, record (framebuffer, damage, time) triples and
pass them to :func:`run_stream`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np
import zstandard
from numpy.typing import NDArray

from bench import codec_scenes as scenes
from wayray.codec import Decoder, Encoder, EncoderSettings
from wayray.wire.display import FrameUpdate, RegionEncoding

FRAMING_PER_REGION = 24
FRAMING_PER_UPDATE = 32


def update_bytes(update: FrameUpdate) -> int:
    return FRAMING_PER_UPDATE + sum(len(r.data) + FRAMING_PER_REGION for r in update.regions)


@dataclass
class StreamResult:
    name: str
    frames: int = 0
    keyframe_bytes: int = 0
    keyframe_ms: float = 0.0
    bytes: list[int] = field(default_factory=list)
    enc_wall: list[float] = field(default_factory=list)
    enc_cpu: list[float] = field(default_factory=list)
    dec_wall: list[float] = field(default_factory=list)
    by_encoding: dict[str, int] = field(default_factory=dict)
    upstream: list[int] = field(default_factory=list)
    waypipe_like: list[int] = field(default_factory=list)
    exact_at_end: bool = False

    @property
    def sustained_fps(self) -> float:
        total = sum(self.enc_wall)
        return len(self.enc_wall) / total if total else float("inf")


def run_stream(
    name: str,
    frames: Iterable[scenes.Frame],
    width: int,
    height: int,
    settings: EncoderSettings | None = None,
    *,
    peers: bool = True,
) -> StreamResult:
    """Encode and decode a frame stream, timing both and counting bytes (ours and the peers')."""
    enc, dec = Encoder(width, height, settings), Decoder()
    res = StreamResult(name)
    upstream = zstandard.ZstdCompressor(level=1)
    waypipe = _WaypipeLike(width, height)
    last: NDArray[np.uint32] | None = None
    now = 0.0
    for i, (fb, damage, now) in enumerate(frames):
        c0, w0 = time.process_time(), time.perf_counter()
        update = enc.encode(fb, damage, now=now)
        w1, c1 = time.perf_counter(), time.process_time()
        if update is not None:
            dec.apply(update)
        w2 = time.perf_counter()
        if peers:
            up = sum(len(upstream.compress(_pixels(fb, rect))) for rect in damage)
            wp = waypipe.diff(fb, damage)
        last = fb
        res.frames += 1
        if i == 0:
            res.keyframe_bytes = update_bytes(update) if update else 0
            res.keyframe_ms = (w1 - w0) * 1e3
            continue
        res.bytes.append(update_bytes(update) if update else 0)
        res.enc_wall.append(w1 - w0)
        res.enc_cpu.append(c1 - c0)
        res.dec_wall.append(w2 - w1)
        if peers:
            res.upstream.append(up + FRAMING_PER_REGION * len(damage))
            res.waypipe_like.append(wp)
        for r in update.regions if update else ():
            key = RegionEncoding(r.encoding).name
            res.by_encoding[key] = res.by_encoding.get(key, 0) + len(r.data)
    # Let a video stream settle (the compositor calls back at the deadline) and check exactness.
    if last is not None:
        for _ in range(10):
            deadline = enc.next_deadline()
            if deadline is None:
                break
            update = enc.encode(last, [], now=max(now, deadline))
            if update is not None:
                dec.apply(update)
        res.exact_at_end = dec.framebuffer is not None and bool(np.array_equal(dec.framebuffer, last))
    enc.close()
    dec.close()
    return res


def _pixels(fb: NDArray[np.uint32], rect: tuple[int, int, int, int]) -> memoryview:
    x, y, w, h = rect
    return np.ascontiguousarray(fb[y : y + h, x : x + w]).data


class _WaypipeLike:
    """waypipe 0.8-style damage diff against a mirror, zstd level 5 (an emulation, see module doc)."""

    GAP = 8

    def __init__(self, width: int, height: int) -> None:
        self.mirror = np.zeros((height, width), dtype=np.uint32)
        self.cctx = zstandard.ZstdCompressor(level=5)

    def diff(self, fb: NDArray[np.uint32], damage: list[tuple[int, int, int, int]]) -> int:
        chunks: list[bytes] = []
        for x, y, w, h in damage:
            new = fb[y : y + h, x : x + w]
            old = self.mirror[y : y + h, x : x + w]
            changed = np.flatnonzero((new != old).ravel())
            if changed.size:
                flat = np.ascontiguousarray(new).ravel()
                breaks = np.flatnonzero(np.diff(changed) > self.GAP) + 1
                for run in np.split(changed, breaks):
                    a, b = int(run[0]), int(run[-1]) + 1
                    chunks.append(np.array([a, b], dtype="<u4").tobytes() + flat[a:b].tobytes())
            self.mirror[y : y + h, x : x + w] = new
        if not chunks:
            return 0
        return len(self.cctx.compress(b"".join(chunks))) + 16  # + waypipe's message header


# --- workloads ---------------------------------------------------------------------------------------

Workload = Callable[[int], tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]]

WEST_TERM = {"cols": 80, "rows": 24}  # about weston-terminal's 726x419 window in waypipe-baseline.md


def _log_tail(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    frames = scenes.terminal_scroll(1920, 1080, lines_per_frame=1, frames=n, fps=38, **WEST_TERM)
    return frames, 1920, 1080, None


def _flood(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    frames = scenes.terminal_scroll(
        1920, 1080, lines_per_frame=26_000, frames=n, fps=38, line=scenes.seq_line, **WEST_TERM
    )
    return frames, 1920, 1080, None


def _shm(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    return scenes.simple_shm_window(1920, 1080, frames=n, fps=39.5), 1920, 1080, None


def _typing(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    text = ("echo hello from a thin client; ls -l /etc/wayray && systemctl status wrsrvd@lab " * 4)[:n]
    return scenes.terminal_typing(1920, 1080, text=text, cps=20, **WEST_TERM), 1920, 1080, None


def _max_scroll(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    frames = scenes.terminal_scroll(1920, 1080, lines_per_frame=3, frames=n, fps=60, cols=238, rows=62)
    return frames, 1920, 1080, None


def _max_flood(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    frames = scenes.terminal_scroll(
        1920, 1080, lines_per_frame=26_000, frames=n, fps=60, line=scenes.log_line, cols=238, rows=62
    )
    return frames, 1920, 1080, None


def _video(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    return scenes.fullscreen_video(1920, 1080, frames=n, fps=30), 1920, 1080, None


def _video_lossless(n: int) -> tuple[Iterator[scenes.Frame], int, int, EncoderSettings | None]:
    return scenes.fullscreen_video(1920, 1080, frames=n, fps=30), 1920, 1080, EncoderSettings(video=False)


WORKLOADS: dict[str, tuple[str, Workload]] = {
    "log": ("(a) terminal tailing a log, 1 line/frame, 80x24 terminal on a 1080p output", _log_tail),
    "flood": ("(a') terminal `seq` flood, whole screen new each frame, 80x24", _flood),
    "shm": ("(b) weston-simple-shm 250x250 animating at 39.5 Hz", _shm),
    "typing": ("(c) typing one character per frame, 80x24 terminal", _typing),
    "max-scroll": (
        "(d) 1080p maximized terminal scrolling 3 lines/frame, as fast as it encodes",
        _max_scroll,
    ),
    "max-flood": (
        "(d) 1080p maximized terminal, every line new each frame, as fast as it encodes",
        _max_flood,
    ),
    "video": ("(d) 1080p full-screen video, as fast as it encodes", _video),
    "video-lossless": ("(d) same, video path off (lossless only)", _video_lossless),
}


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    return f"{float(np.percentile(values, q)) * 1e3:.2f}"


def _bytes(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):,.0f} / {statistics.mean(values):,.0f}"


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{platform.node()}: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, zstandard {zstandard.__version__}, PyAV {av.__version__} "
        f"(FFmpeg {av.ffmpeg_version_info}); load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.codec_bench", description=summary)
    parser.add_argument(
        "-w", "--workload", action="append", choices=sorted(WORKLOADS), help="run only these (repeatable)"
    )
    parser.add_argument("--frames", type=int, default=150, help="frames per workload after the first (150)")
    parser.add_argument("--no-peers", action="store_true", help="skip the upstream and waypipe-like peers")
    parser.add_argument(
        "--sessions",
        type=int,
        default=1,
        help="run each workload in this many processes at once, as that many sessions would (default 1)",
    )
    args = parser.parse_args(argv)
    if args.sessions > 1:
        return _parallel(args.workload or ["video"], args.frames, args.sessions)
    names = args.workload or list(WORKLOADS)
    print(machine())
    print()
    print(
        "| workload | bytes/frame median / mean | upstream (zstd-1 damage) | waypipe-like (zstd-5 diff) "
        "| keyframe bytes, encode ms | encode wall ms median, p95 | encode CPU ms median, p95 "
        "| sustained fps | decode ms median, p95 | bytes by encoding | exact after settle |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        title, make = WORKLOADS[name]
        frames, width, height, settings = make(args.frames)
        peers = not args.no_peers and not name.startswith("video")
        r = run_stream(name, frames, width, height, settings, peers=peers)
        split = ", ".join(f"{k} {v:,}" for k, v in sorted(r.by_encoding.items()))
        print(
            f"| {title} | {_bytes(r.bytes)} | {_bytes(r.upstream)} | {_bytes(r.waypipe_like)} "
            f"| {r.keyframe_bytes:,}, {r.keyframe_ms:.0f} | {_ms(r.enc_wall, 50)}, {_ms(r.enc_wall, 95)} "
            f"| {_ms(r.enc_cpu, 50)}, {_ms(r.enc_cpu, 95)} | {r.sustained_fps:.0f} "
            f"| {_ms(r.dec_wall, 50)}, {_ms(r.dec_wall, 95)} | {split} "
            f"| {'yes' if r.exact_at_end else 'NO'} |",
            flush=True,
        )
    return 0


def _one_session(job: tuple[str, int]) -> tuple[float, float]:
    name, n = job
    frames, width, height, settings = WORKLOADS[name][1](n)
    frames = iter(list(frames))  # render the scene before the clock starts
    start = time.perf_counter()
    r = run_stream(name, frames, width, height, settings, peers=False)
    return r.sustained_fps, len(r.enc_wall) / (time.perf_counter() - start)


def _parallel(names: list[str], frames: int, sessions: int) -> int:
    """Each session is its own compositor process: N processes encode at once on the machine's cores."""
    print(machine())
    print()
    print("| workload | sessions | encode fps per session (median) | encode+decode fps per session, wall |")
    print("|---|---|---|---|")
    with multiprocessing.get_context("spawn").Pool(sessions) as pool:
        for name in names:
            results = pool.map(_one_session, [(name, frames)] * sessions)
            enc = statistics.median(r[0] for r in results)
            both = statistics.median(r[1] for r in results)
            print(f"| {WORKLOADS[name][0]} | {sessions} | {enc:.0f} | {both:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
