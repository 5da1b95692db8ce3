"""The Wayland backend's frame path and the greeter's redraw, measured against our session compositor.

    .venv/bin/python -m bench.wayland_backend [--frames 120]

1. ``present()`` → the change is in the compositor's next frame (consumer), for a small damage
   rectangle and for whole 1080p frames: the backend's copy into a shm buffer, the commit, the
   compositor's import and composite, and its 60 Hz frame clock (up to 16.7 ms of waiting).
   Backend and compositor share one process and loop here, so the figure is their sum.
2. The client-side cost alone: ``present()`` plus the copy into the buffer (``_draw_picture``).
3. The greeter: render + band diff of a 1920x1080 screen per keystroke.

No peer runs side by side: no other Python Wayland client draws a remote framebuffer; the
compositor's own figures (bench.compositor_composite) are the reference for the import side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import numpy as np
from PIL import Image

from wayray.client.backend import ConnectionState
from wayray.client.backends.wayland import WaylandBackend
from wayray.codec.geometry import Rect
from wayray.compositor.session import SessionCompositor
from wayray.greeter.model import LoginModel
from wayray.greeter.view import changed_boxes, render
from wayray.toolkit.seat import Key, Modifiers

W, H = 1920, 1080


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def line(name: str, values: list[float]) -> None:
    print(
        f"{name:<44} median {statistics.median(values):7.2f} ms  p90 {pct(values, 0.9):7.2f} ms  "
        f"max {max(values):7.2f} ms"
    )


async def frames(n: int) -> None:
    runtime = tempfile.mkdtemp(prefix="wayray-bench-")
    os.chmod(runtime, 0o700)
    async with SessionCompositor(size=(W, H), runtime_dir=runtime) as comp:
        backend = WaylandBackend(fullscreen=True, display=str(comp.socket_path))
        await backend.start(lambda _e: None)
        backend.set_state(ConnectionState.CONNECTED)
        consumer = comp.consumer()
        fb = np.full((H, W), 0xFF202020, dtype=np.uint32)
        backend.present(fb, [Rect(0, 0, W, H)])
        await asyncio.sleep(0.5)
        consumer.take_frame()
        rng = np.random.default_rng(1)
        for label, full in (("64x64 damage", False), ("full 1920x1080 frame", True)):
            latency: list[float] = []
            client: list[float] = []
            for _ in range(n):
                colour = np.uint32(0xFF000000 | int(rng.integers(1, 1 << 24)))
                if full:
                    fb[:] = colour
                    rect = Rect(0, 0, W, H)
                else:
                    x, y = int(rng.integers(0, W - 64)), int(rng.integers(0, H - 64))
                    fb[y : y + 64, x : x + 64] = colour
                    rect = Rect(x, y, 64, 64)
                t0 = time.perf_counter()
                backend.present(fb, [rect])
                backend._draw_picture()  # what the scheduled draw does, timed here
                client.append((time.perf_counter() - t0) * 1000)
                while True:
                    frame = await consumer.next_frame()
                    if int(frame.pixels[rect.y, rect.x]) & 0xFFFFFF == int(colour) & 0xFFFFFF:
                        break
                latency.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.02)  # let the frame callback come back before the next frame
            line(f"present -> composited, {label}", latency)
            line(f"backend only (copy + commit), {label}", client)
        await backend.close()


def greeter(n: int) -> None:
    model = LoginModel(ticket="T")
    old = Image.new("RGBA", (W, H))
    render(model, old, 0.0, host="bench")
    times: list[float] = []
    damaged: list[float] = []
    for i in range(n):
        ch = "abcdefgh"[i % 8]
        model.key(Key(0, True, ord(ch), ch, Modifiers()))
        t0 = time.perf_counter()
        new = Image.new("RGBA", (W, H))
        render(model, new, 0.0, host="bench")
        boxes = changed_boxes(old, new)
        times.append((time.perf_counter() - t0) * 1000)
        damaged.append(sum(w * h for _x, _y, w, h in boxes) / (W * H) * 100)
        old = new
    line("greeter keystroke: render + diff (1920x1080)", times)
    print(f"{'greeter keystroke: share of screen uploaded':<44} median {statistics.median(damaged):7.2f} %")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args()
    asyncio.run(frames(args.frames))
    greeter(min(args.frames, 60))


if __name__ == "__main__":
    main()
