"""A video-like Wayland client: a grainy, photo-like picture panning at the compositor's frame rate.

Usage: video.py SECONDS [WIDTH HEIGHT]. Animates for SECONDS (paced by frame callbacks; with
VIDEO_PLAYING_FILE set, that file is written once its first frame was shown), then draws one last
frame, prints "still" (and, with VIDEO_STILL_FILE set, writes that file) and stays mapped without
changing until the compositor closes the connection. Content like this is what the encoder
sends as H.264; once it stops, the encoder must send the rectangle losslessly again, so the viewer
ends bit-exact.
"""

from __future__ import annotations

import mmap
import os
import sys
import time

import numpy as np
from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm
from pywayland.protocol.xdg_shell import XdgWmBase


def texture(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0)
    g = 128 + 100 * np.sin((x + y) / 71.0)
    b = 128 + 100 * np.cos(x / 29.0 - y / 41.0)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (height, width, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint32)
    return (0xFF << 24) | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def main() -> int:
    seconds = float(sys.argv[1])
    width, height = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (480, 360)
    tex = texture(width * 2, height * 2)
    display = Display()
    display.connect()
    found: dict[str, object] = {}
    registry = display.get_registry()

    def on_global(reg, name, interface, version):  # type: ignore[no-untyped-def]
        if interface == "wl_compositor":
            found[interface] = reg.bind(name, WlCompositor, 4)
        elif interface == "wl_shm":
            found[interface] = reg.bind(name, WlShm, 1)
        elif interface == "xdg_wm_base":
            found[interface] = reg.bind(name, XdgWmBase, 1)

    registry.dispatcher["global"] = on_global
    display.roundtrip()
    wm = found["xdg_wm_base"]
    wm.dispatcher["ping"] = lambda base, serial: base.pong(serial)  # type: ignore[attr-defined]
    surface = found["wl_compositor"].create_surface()  # type: ignore[attr-defined]
    xdg = wm.get_xdg_surface(surface)  # type: ignore[attr-defined]
    top = xdg.get_toplevel()
    top.set_title("video")
    configured: list[int] = []
    xdg.dispatcher["configure"] = lambda s, serial: configured.append(serial)
    surface.commit()
    while not configured:
        display.dispatch(block=True)
    xdg.ack_configure(configured[-1])
    size = width * height * 4
    fd = os.memfd_create("video")
    os.ftruncate(fd, size * 2)
    mm = mmap.mmap(fd, size * 2)
    pool = found["wl_shm"].create_pool(fd, size * 2)  # type: ignore[attr-defined]
    buffers = [
        pool.create_buffer(i * size, width, height, width * 4, WlShm.format.xrgb8888.value) for i in (0, 1)
    ]
    frames = np.frombuffer(mm, dtype=np.uint32).reshape(2, height, width)
    done: list[bool] = []

    def draw(i: int, t: int) -> None:
        ox = (t * 3) % width
        oy = (t * 2) % height
        frames[i % 2] = tex[oy : oy + height, ox : ox + width]
        surface.attach(buffers[i % 2], 0, 0)
        surface.damage_buffer(0, 0, width, height)

    end = time.monotonic() + seconds
    t = 0
    while time.monotonic() < end:
        draw(t, t)
        done.clear()
        cb = surface.frame()
        cb.dispatcher["done"] = lambda cb, ms: done.append(True)
        surface.commit()
        while not done:
            display.dispatch(block=True)
        if t == 0 and os.environ.get("VIDEO_PLAYING_FILE"):  # a benchmark times from here
            with open(os.environ["VIDEO_PLAYING_FILE"], "w") as f:
                f.write(f"{time.monotonic()}\n")
        t += 1
    draw(t, t)
    surface.commit()
    display.roundtrip()
    print(f"still after {t} frames", flush=True)
    if os.environ.get("VIDEO_STILL_FILE"):  # a test waits for the last frame (wrclient's wait-for)
        with open(os.environ["VIDEO_STILL_FILE"], "w") as f:
            f.write(f"{t}\n")
    while display.dispatch(block=True) >= 0:
        pass
    return 0


if __name__ == "__main__":
    os._exit(main())
