"""Runs the Wayland backend as a real client process, driven by JSON lines on stdin.

Plays the part of wrclient's session logic: it owns a framebuffer (like the decoder does), changes
it and calls ``present`` with the damage, sets the cursor, state and clipboard. Every InputEvent the
backend emits is printed as a JSON line ``{"event": <class name>, ...fields}``; every command is
answered with ``{"ack": <n>}`` once done. Usage: backend_driver.py [--kiosk] [--fullscreen]
[--size WxH].

Commands: {"cmd": "load", "file": "x.npy"} (new framebuffer, full damage) · {"cmd": "paint",
"rect": [x, y, w, h], "color": 0xRRGGBB} · {"cmd": "cursor", "file": "c.npy" | null, "hotspot":
[x, y]} · {"cmd": "state", "state": "idle", "detail": ""} · {"cmd": "clipboard", "text": "..."} ·
{"cmd": "close"}.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import types

import numpy as np

from wayray.client.backend import ConnectionState, CursorImage, InputEvent
from wayray.client.backends.wayland import WaylandBackend
from wayray.codec.geometry import Rect


def out(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kiosk", action="store_true")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--size", default="640x480")
    p.add_argument("--options", action="store_true", help="construct from a BackendOptions-like object")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    if args.options:  # as wrclient does: WaylandBackend(BackendOptions(...))
        opts = types.SimpleNamespace(
            headless=False,
            size=(w, h),
            scale_120=120,
            fullscreen=args.fullscreen,
            keymap=None,
            title="From options",
        )
        backend = WaylandBackend(opts)
    else:
        backend = WaylandBackend(kiosk=args.kiosk, fullscreen=args.fullscreen, size=(w, h))
    closed = asyncio.Event()

    def on_input(event: InputEvent) -> None:
        out({"event": type(event).__name__, **dataclasses.asdict(event)})
        if type(event).__name__ == "CloseRequestedEvent":
            closed.set()

    await backend.start(on_input)
    screen = backend.screen()
    out({"started": True, "screen": dataclasses.asdict(screen), "keymap": backend.keymap()})
    fb = np.zeros((0, 0), dtype=np.uint32)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    n = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        n += 1
        kind = cmd["cmd"]
        if kind == "load":
            fb = np.load(cmd["file"]).astype(np.uint32)
            backend.present(fb, [Rect(0, 0, fb.shape[1], fb.shape[0])])
        elif kind == "paint":
            x, y, rw, rh = cmd["rect"]
            fb[y : y + rh, x : x + rw] = 0xFF000000 | cmd["color"]
            backend.present(fb, [Rect(x, y, rw, rh)])
        elif kind == "cursor":
            if cmd["file"] is None:
                backend.set_cursor(None)
            else:
                backend.set_cursor(CursorImage(np.load(cmd["file"]).astype(np.uint32), *cmd["hotspot"]))
        elif kind == "state":
            backend.set_state(ConnectionState(cmd["state"]), cmd.get("detail", ""))
        elif kind == "clipboard":
            backend.set_clipboard(cmd["text"])
        elif kind == "screen":
            out({"screen": dataclasses.asdict(backend.screen())})
        elif kind == "close":
            break
        out({"ack": n})
    await backend.close()
    out({"closed": True})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
