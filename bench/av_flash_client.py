"""A flash-and-click clip for bench/audio_av_skew.py, run as a session's program: a Wayland window that
turns white and plays a click at the same moment, then turns black again, COUNT times.

Usage: av_flash_client.py COUNT PERIOD_S LOG [GO]. Waits for the file GO (if named) first. The sound
goes to the session's sound server through ``pacat`` (20 ms buffer, a one-page pipe, fed 10 ms at a
time: what a careful player gives the sink) and is a quiet 150 Hz bed all along, so the stream never
stops, as with a film's soundtrack; click k is a 20 ms tone of its own pitch (600 + 200 × (k mod 25)
Hz, bench/audio_mouth_to_ear.py's clicks, so the bench tells them apart). For each flash a line
``k COMMIT_MONOTONIC`` goes to LOG: the time the white frame's commit was flushed to the compositor
(CLOCK_MONOTONIC, the clock every process of the machine shares). The click is handed to the sound
thread just before that commit; what the session's sink does with it is measured by the bench at the
sink's monitor, not assumed here.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import subprocess
import sys
import threading
import time

import numpy as np
from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm
from pywayland.protocol.xdg_shell import XdgWmBase

RATE = 48000
TONES = 25
CLICK_S = 0.02
BED = 0.02
CHUNK = RATE // 100  # 10 ms per write
WIDTH, HEIGHT = 320, 240


def tone(k: int) -> bytes:
    t = np.arange(int(RATE * CLICK_S)) / RATE
    fade = np.minimum(1.0, np.minimum(t, CLICK_S - t) / 0.002)
    mono = 0.5 * fade * np.sin(2 * np.pi * (600.0 + 200.0 * (k % TONES)) * t)
    return (np.stack([mono, mono], 1) * 32767).astype("<i2").tobytes()


class Sound(threading.Thread):
    """The bed, 10 ms at a time, into pacat as fast as its pipe takes it; a click replaces the next
    20 ms of the bed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(
            ["pacat", "--playback", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=2",
             "--latency-msec=20", "--client-name=av-flash"],
            stdin=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 4096)
        n = np.arange(RATE)  # one second of bed, a whole number of 150 Hz periods
        bed = BED * np.sin(2 * np.pi * 150 * n / RATE)
        self.bed = (np.stack([bed, bed], 1) * 32767).astype("<i2").tobytes()
        self.pending: list[bytes] = []
        self.lock = threading.Lock()

    def click(self, k: int) -> None:
        with self.lock:
            self.pending.append(tone(k))

    def run(self) -> None:
        assert self.proc.stdin is not None
        pos = 0
        step = CHUNK * 4
        out = self.proc.stdin
        while True:
            with self.lock:
                data = self.pending.pop(0) if self.pending else None
            if data is None:
                data = self.bed[pos : pos + step]
                pos = (pos + step) % len(self.bed)
            else:
                pos = (pos + len(data)) % len(self.bed)
            try:
                out.write(data)
                out.flush()
            except BrokenPipeError:
                return


def main() -> int:
    count, period, log_path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    go = sys.argv[4] if len(sys.argv) > 4 else None
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
    top.set_title("flash")
    configured: list[int] = []
    xdg.dispatcher["configure"] = lambda s, serial: configured.append(serial)
    surface.commit()
    while not configured:
        display.dispatch(block=True)
    xdg.ack_configure(configured[-1])
    size = WIDTH * HEIGHT * 4
    fd = os.memfd_create("flash")
    os.ftruncate(fd, size * 2)
    mm = mmap.mmap(fd, size * 2)
    pool = found["wl_shm"].create_pool(fd, size * 2)  # type: ignore[attr-defined]
    black, white = (
        pool.create_buffer(i * size, WIDTH, HEIGHT, WIDTH * 4, WlShm.format.xrgb8888.value) for i in (0, 1)
    )
    pixels = np.frombuffer(mm, dtype=np.uint32).reshape(2, HEIGHT, WIDTH)
    pixels[0] = 0xFF000000
    pixels[1] = 0xFFFFFFFF

    def show(buffer: object) -> float:
        surface.attach(buffer, 0, 0)
        surface.damage_buffer(0, 0, WIDTH, HEIGHT)
        surface.commit()
        display.flush()
        return time.monotonic()

    show(black)
    display.roundtrip()
    sound = Sound()
    sound.start()
    if go:
        while not os.path.exists(go):
            display.roundtrip()
            time.sleep(0.05)
    time.sleep(1.0)  # the bed has been playing a while
    start = time.monotonic()
    with open(log_path, "w") as log:
        for k in range(count):
            at = start + k * period
            while (now := time.monotonic()) < at:
                time.sleep(min(0.005, at - now))
            sound.click(k)
            committed = show(white)
            log.write(f"{k} {committed:.6f}\n")
            log.flush()
            time.sleep(period / 2)
            show(black)
            display.roundtrip()
    time.sleep(1.0)
    with open(log_path + ".done", "w"):
        pass
    while display.dispatch(block=True) >= 0:
        pass
    return 0


if __name__ == "__main__":
    os._exit(main())
