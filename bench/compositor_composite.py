"""Per-frame composite + damage cost at 1920x1080 with a terminal updating.

foot runs maximized at 1920x1080 printing a line every few milliseconds; every frame the compositor
computes the output damage from the clients' damage, repaints it with pixman and hands it to a
frame consumer, which copies the damaged rectangles into its snapshot. We time both steps per
frame, and as the peer the approach the design rejected: diffing whole frames to find the damage.

    .venv/bin/python -m bench.compositor_composite [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import numpy as np

from wayray.compositor.session import SessionCompositor


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def show(name: str, ms: list[float]) -> None:
    print(
        f"{name:44s} n={len(ms):5d}  median {statistics.median(ms):6.3f} ms  p90 {pct(ms, 90):6.3f}  "
        f"p99 {pct(ms, 99):6.3f}  max {max(ms):6.3f}"
    )


async def run(seconds: float) -> None:
    runtime = tempfile.mkdtemp(prefix="wayray-bench-")
    os.chmod(runtime, 0o700)
    comp = SessionCompositor(size=(1920, 1080), runtime_dir=runtime)
    await comp.start()
    core = comp.core
    composite_ms: list[float] = []
    damage_px: list[int] = []
    original = core.composite

    def timed() -> None:
        seq = core.frame_seq
        t0 = time.perf_counter()
        original()
        if core.frame_seq != seq:
            composite_ms.append((time.perf_counter() - t0) * 1000)

    core.composite = timed  # type: ignore[method-assign]
    take_ms: list[float] = []
    diff_ms: list[float] = []
    consumer = comp.consumer()
    env = comp.client_env()
    env["LANG"] = "C.UTF-8"
    script = 'i=0; while :; do i=$((i+1)); echo "line $i $(date +%T.%N)"; sleep 0.005; done'
    proc = await asyncio.create_subprocess_exec(
        "foot",
        "--maximized",
        "-o",
        "font=monospace:size=11",
        "sh",
        "-c",
        script,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    previous = np.zeros((1080, 1920), dtype=np.uint32)
    try:
        end = time.monotonic() + seconds + 2
        warm = time.monotonic() + 2
        while time.monotonic() < end:
            while not consumer.pending:
                consumer.changed.clear()
                await asyncio.wait_for(consumer.changed.wait(), 10)
            t0 = time.perf_counter()
            frame = consumer.take_frame()
            took = (time.perf_counter() - t0) * 1000
            if time.monotonic() < warm:
                composite_ms.clear()
                continue
            take_ms.append(took)
            damage_px.append(sum(r.width * r.height for r in frame.damage))
            fb = np.asarray(comp.framebuffer)
            t0 = time.perf_counter()
            changed = fb != previous
            rows = np.flatnonzero(changed.any(axis=1))
            cols = np.flatnonzero(changed.any(axis=0))
            _ = (rows[:1], rows[-1:], cols[:1], cols[-1:])
            diff_ms.append((time.perf_counter() - t0) * 1000)
            previous = fb.copy()
    finally:
        proc.terminate()
        await proc.wait()
        await comp.close()
    print(
        f"1920x1080, foot maximized printing a line every ~5 ms, {seconds:.0f} s, {len(composite_ms)} frames"
    )
    show("composite + damage (Core.composite)", composite_ms)
    show("consumer take_frame (copy damaged rects)", take_ms)
    show("peer: full-frame diff for a bounding box", diff_ms)
    print(
        f"{'damaged pixels per frame':44s} median {statistics.median(damage_px):9.0f}  "
        f"({100 * statistics.median(damage_px) / (1920 * 1080):.1f}% of the output)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
