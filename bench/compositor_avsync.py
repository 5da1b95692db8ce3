"""Composite cost per frame of a video-like window, av-sync off and on (issue 13).

A client (this file with ``--client``, its own process) shows a 640x360 window (``--window``) whose
every pixel changes 30 times a second, as a video would, full damage each frame. The session
compositor runs in this process at 1280x720 (or the window's size); a frame consumer takes every
frame. We time ``Core.composite`` for ``--seconds`` with av-sync off, then as long with it on for
the client's pid (``--delay`` ms, default 150), and print the median and percentiles of each, the
composite time per second of video, and what av-sync held. Every composite that had something to
do counts: with av-sync on, one that only takes a snapshot and one that draws what came due are two.

    .venv/bin/python -m bench.compositor_avsync [--seconds 10] [--delay 150] [--window 640x360]
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from wayray.compositor.session import SessionCompositor

FPS = 30


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def show(name: str, ms: list[float], seconds: float) -> None:
    print(
        f"{name:34s} n={len(ms):5d}  median {statistics.median(ms):6.3f} ms  p95 {pct(ms, 95):6.3f}  "
        f"p99 {pct(ms, 99):6.3f}  max {max(ms):6.3f}  total {sum(ms) / seconds:5.1f} ms/s"
    )


def client(width: int, height: int) -> None:
    import numpy as np
    from pywayland.client import Display
    from pywayland.protocol.wayland import WlCompositor, WlShm
    from pywayland.protocol.xdg_shell import XdgWmBase

    display = Display()
    display.connect()
    g: dict[str, Any] = {}
    want = {"wl_compositor": (WlCompositor, 4), "wl_shm": (WlShm, 1), "xdg_wm_base": (XdgWmBase, 1)}

    def on_global(reg: Any, name: int, interface: str, version: int) -> None:
        if interface in want:
            g[interface] = reg.bind(name, *want[interface])

    registry = display.get_registry()
    registry.dispatcher["global"] = on_global
    display.roundtrip()
    g["xdg_wm_base"].dispatcher["ping"] = lambda base, serial: base.pong(serial)
    surface = g["wl_compositor"].create_surface()
    xdg = g["xdg_wm_base"].get_xdg_surface(surface)
    top = xdg.get_toplevel()
    top.set_title("video")
    serials: list[int] = []
    xdg.dispatcher["configure"] = lambda x, serial: serials.append(serial)
    surface.commit()
    while not serials:
        display.dispatch(block=True)
    xdg.ack_configure(serials[-1])
    size = width * height * 4
    fd = os.memfd_create("video")
    os.ftruncate(fd, size * 2)
    mm = mmap.mmap(fd, size * 2)
    pool = g["wl_shm"].create_pool(fd, size * 2)
    buffers = [
        pool.create_buffer(i * size, width, height, width * 4, WlShm.format.xrgb8888.value) for i in (0, 1)
    ]
    pixels = np.frombuffer(mm, dtype=np.uint32).reshape(2, height, width)
    ramp = (np.arange(width, dtype=np.uint32)[None, :] + np.arange(height, dtype=np.uint32)[:, None]) & 0xFF
    k = 0
    start = time.monotonic()
    while True:
        i = k & 1
        pixels[i] = (
            0xFF000000 | (((ramp + k * 7) & 0xFF) << 16) | (((ramp * 3 + k) & 0xFF) << 8) | (k & 0xFF)
        )
        surface.attach(buffers[i], 0, 0)
        surface.damage_buffer(0, 0, width, height)
        surface.commit()
        display.flush()
        k += 1
        while (now := time.monotonic()) < start + k / FPS:
            display.roundtrip()
            time.sleep(min(0.005, max(0.0, start + k / FPS - now)))


async def run(seconds: float, delay_ms: float, window: tuple[int, int]) -> None:
    runtime = tempfile.mkdtemp(prefix="wayray-bench-")
    os.chmod(runtime, 0o700)
    output = (max(1280, window[0]), max(720, window[1]))
    comp = SessionCompositor(size=output, runtime_dir=runtime)
    await comp.start()
    core = comp.core
    phase: list[float] = []
    original = core.composite

    def timed() -> None:
        dirty = core._dirty  # a composite that does something: takes snapshots, draws, or both
        t0 = time.perf_counter()
        original()
        if dirty:
            phase.append((time.perf_counter() - t0) * 1000)

    core.composite = timed  # type: ignore[method-assign]
    consumer = comp.consumer()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.compositor_avsync",
        "--client",
        "--window",
        f"{window[0]}x{window[1]}",
        env=comp.client_env(),
    )
    held: list[int] = []

    async def measure() -> list[float]:
        end = time.monotonic() + seconds
        phase.clear()
        while time.monotonic() < end:
            while not consumer.pending:
                consumer.changed.clear()
                await asyncio.wait_for(consumer.changed.wait(), 10)
            consumer.take_frame()
            if core.av_sync is not None:
                held.append(core.av_sync.held)
        return list(phase)

    try:
        while not comp.windows():
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)  # warm up
        off = await measure()
        comp.set_av_sync({proc.pid}, delay_ms)
        await asyncio.sleep(1)
        on = await measure()
        dropped = core.av_sync.dropped if core.av_sync is not None else 0
        comp.set_av_sync((), 0)
    finally:
        proc.terminate()
        await proc.wait()
        await comp.close()
    print(
        f"{output[0]}x{output[1]} output, a {window[0]}x{window[1]} window changing every pixel "
        f"{FPS} times a second, {seconds:.0f} s each"
    )
    show("composite, av-sync off", off, seconds)
    show(f"composite, av-sync on ({delay_ms:g} ms)", on, seconds)
    print(
        f"{'held by av-sync (median / max)':34s} {statistics.median(held) / 2**20:.1f} MiB / "
        f"{max(held) / 2**20:.1f} MiB, {dropped} snapshots dropped"
    )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--delay", type=float, default=150.0, help="av-sync delay, ms")
    parser.add_argument("--window", default="640x360", help="the video's size, WxH (default 640x360)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    w, _, h = args.window.partition("x")
    if not (w.isdigit() and h.isdigit() and 0 < int(w) <= 3840 and 0 < int(h) <= 2160):
        parser.error(f"--window {args.window!r}: give WxH, at most 3840x2160")
    if args.client:
        client(int(w), int(h))
        return
    asyncio.run(run(args.seconds, args.delay, (int(w), int(h))))


if __name__ == "__main__":
    main()
