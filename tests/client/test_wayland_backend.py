"""The Wayland display backend as a real client of our session compositor.

The backend runs in its own process (tests/client/backend_driver.py plays wrclient's session logic);
the test looks at what the compositor composited, injects input through the compositor's API, and
reads the InputEvents the backend emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.compositor.harness import Session, running_session
from tests.ocr import contains, ocr, shows
from wayray.client.backends.screens import DIM_ALPHA
from wayray.compositor.session import Axis
from wayray.wayland.xkb import Keymap

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("backend_driver.py")
KEY_A, KEY_Q, KEY_LEFTALT, KEY_F4 = 30, 16, 56, 62
BTN_LEFT, BTN_RIGHT = 0x110, 0x111
DEADLINE = 60.0


class Driver:
    """The backend process: commands in, events out."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._n = 0

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(json.loads(line))
            self._changed.set()

    async def wait(self, pred: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if pred(line):
                    return line
            seen = len(self.lines)
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(
                    f"the backend exited waiting for {what}:\n{self.log.read_text()[-3000:]}"
                )
            if loop.time() > end:
                raise AssertionError(
                    f"timed out waiting for {what}; got {self.lines[-10:]}\n{self.log.read_text()}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), 0.5)
            except TimeoutError:
                pass

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.lines if e.get("event") == name]

    async def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self._n += 1
        n = self._n
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        if cmd["cmd"] == "close":
            await self.wait(lambda line: "closed" in line, "the backend to close")
        else:
            await self.wait(lambda line: line.get("ack") == n, f"ack of {cmd['cmd']}")


@asynccontextmanager
async def backend(s: Session, *args: str, connected: bool = True) -> AsyncIterator[Driver]:
    """The backend in its own process; ``connected``: put it in the CONNECTED state (no overlay)."""
    env = s.comp.client_env()
    env.update(LANG="C.UTF-8", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    log = s.workdir / f"backend-{len(s.clients)}.log"
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(DRIVER), *args,
            env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            start_new_session=True, limit=1 << 24,
        )  # fmt: skip
    driver = Driver(proc, log)
    try:
        await driver.wait(lambda line: "started" in line, "the backend to start")
        if connected:
            await driver.send(cmd="state", state="connected")
        yield driver
    finally:
        if proc.returncode is None:
            try:
                await driver.send(cmd="close")
                await asyncio.wait_for(proc.wait(), 20)
            except (AssertionError, TimeoutError, ConnectionError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        assert "Traceback" not in log.read_text(), log.read_text()


def pattern(w: int, h: int, seed: int = 1) -> np.ndarray:
    """A picture where every pixel differs from its neighbours (catches any scaling or offset)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 1 << 24, size=(h, w), dtype=np.uint32) | np.uint32(0xFF000000)).astype(np.uint32)


def blocks(w: int, h: int, colours: list[int], size: int) -> np.ndarray:
    """Squares of ``size`` pixels in turn through ``colours`` (survives scaling)."""
    ys, xs = np.mgrid[0:h, 0:w]
    idx = ((ys // size) * 7 + (xs // size)) % len(colours)
    return (np.array(colours, dtype=np.uint32)[idx] | np.uint32(0xFF000000)).astype(np.uint32)


async def test_frames_are_shown_exactly_and_only_damage_is_uploaded(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s, backend(s, "--fullscreen") as b:
        started = b.lines[0]
        assert started["screen"] == {"width": 640, "height": 480, "scale_120": 120}
        frame = pattern(640, 480)
        np.save(s.workdir / "f.npy", frame)
        consumer = s.comp.consumer()
        await b.send(cmd="load", file=str(s.workdir / "f.npy"))
        expect = frame & np.uint32(0xFFFFFF)
        await s.wait_for(lambda: np.array_equal(s.pixels(), expect), "the frame, pixel for pixel")
        consumer.take_frame()
        # One changed rectangle: the compositor hears of exactly that rectangle, and shows it.
        await b.send(cmd="paint", rect=[100, 60, 30, 20], color=0x11AA33)
        expect[60:80, 100:130] = 0x11AA33
        await s.wait_for(lambda: np.array_equal(s.pixels(), expect), "the painted rectangle")
        await s.settle()
        damage = consumer.take_frame().damage
        # (The compositor widens damage of a viewport-scaled surface by a pixel for its filter.)
        assert all(
            99 <= r.x and r.x + r.width <= 131 and 59 <= r.y and r.y + r.height <= 81 for r in damage
        ), damage
        assert sum(r.width * r.height for r in damage) >= 30 * 20
        # Many frames in a row: the newest always wins, nothing is lost when buffers are reused.
        for i in range(12):
            await b.send(cmd="paint", rect=[10 * i, 200 + 5 * i, 40, 40], color=0x100000 * (i + 1) + 0x77)
            expect[200 + 5 * i : 240 + 5 * i, 10 * i : 10 * i + 40] = 0x100000 * (i + 1) + 0x77
        await s.wait_for(lambda: np.array_equal(s.pixels(), expect), "twelve quick frames")
        s.save("frames")


async def test_a_smaller_session_is_scaled_to_fit_and_letterboxed(tmp_path: Path) -> None:
    red, green, blue, white = 0xFF0000, 0x00FF00, 0x0000FF, 0xFFFFFF
    async with running_session(tmp_path, size=(640, 480)) as s, backend(s, "--fullscreen") as b:
        frame = blocks(320, 200, [red, green, blue, white], 20)  # 16:10 in a 4:3 window
        np.save(s.workdir / "f.npy", frame)
        await b.send(cmd="load", file=str(s.workdir / "f.npy"))
        # Scaled by 2 to 640x400, centred: black bars of 40 px above and below.
        await s.wait_for(lambda: s.pixels()[240, 320] != 0, "the picture")
        await s.settle()
        px = s.pixels()
        s.save("letterbox")
        assert (px[:38] == 0).all() and (px[442:] == 0).all(), "letterbox bars"
        for by in range(10):
            for bx in range(16):
                want = int(frame[by * 20 + 10, bx * 20 + 10]) & 0xFFFFFF
                got = int(px[40 + by * 40 + 20, bx * 40 + 20])
                assert got == want, (bx, by, hex(got), hex(want))
        # Input lands in session pixels: (100, 140) on the output is (50, 50) of the session.
        s.comp.pointer_motion(100, 140)
        ev = await b.wait(lambda e: e.get("event") == "PointerMotionEvent" and e["x"] == 50.0, "motion")
        assert (ev["x"], ev["y"]) == (50.0, 50.0)
        s.comp.pointer_motion(5, 10)  # on the letterbox bar: clamped to the picture's edge
        ev = await b.wait(
            lambda e: e.get("event") == "PointerMotionEvent" and e["x"] == 2.5, "motion on the bar"
        )
        assert ev["y"] == 0.0
        s.comp.pointer_axis(Axis.VERTICAL, 30.0, 2)  # 30 output px = 15 session px
        ev = await b.wait(lambda e: e.get("event") == "PointerAxisEvent", "scroll")
        assert (ev["axis"], ev["value"], ev["discrete"]) == (0, 15.0, 2)


async def test_a_touch_screen_touches_the_session_in_its_pixels(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s, backend(s, "--fullscreen") as b:
        frame = pattern(320, 200)  # scaled by 2, 40-pixel bars above and below
        np.save(s.workdir / "f.npy", frame)
        await b.send(cmd="load", file=str(s.workdir / "f.npy"))
        await s.wait_for(lambda: s.pixels()[240, 320] != 0, "the picture")
        c = s.comp
        assert c.touch_down(0, 100, 140)  # on the picture: (50, 50) of the session
        assert c.touch_down(1, 300, 10)  # on the letterbox bar: the picture's top edge
        c.touch_frame()
        assert c.touch_motion(0, 200, 240)
        c.touch_frame()
        assert c.touch_up(0) and c.touch_up(1)
        c.touch_frame()
        assert c.touch_down(2, 10, 450)
        c.touch_cancel()
        await b.wait(lambda e: e.get("event") == "TouchCancelEvent", "the cancel")
        got = [
            (e["event"], {k: v for k, v in e.items() if k != "event"})
            for e in b.lines
            if str(e.get("event", "")).startswith("Touch")
        ]
        assert got == [
            ("TouchDownEvent", {"id": 0, "x": 50.0, "y": 50.0}),
            ("TouchDownEvent", {"id": 1, "x": 150.0, "y": 0.0}),
            ("TouchFrameEvent", {}),
            ("TouchMotionEvent", {"id": 0, "x": 100.0, "y": 100.0}),
            ("TouchFrameEvent", {}),
            ("TouchUpEvent", {"id": 0}),
            ("TouchUpEvent", {"id": 1}),
            ("TouchFrameEvent", {}),
            ("TouchDownEvent", {"id": 2, "x": 5.0, "y": 199.0}),
            ("TouchCancelEvent", {}),
        ]


async def test_keys_pointer_and_keymap_are_forwarded(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        german = Keymap.from_names(layout="de")
        s.comp.set_keymap(german.text)
        async with backend(s, "--fullscreen") as b:
            # The viewer's (here: the host compositor's) keymap is what the session should type with.
            assert b.lines[0]["keymap"] == s.comp.keymap_text
            assert "de" in b.lines[0]["keymap"] or "qwertz" in b.lines[0]["keymap"].lower()
            frame = pattern(640, 480)
            np.save(s.workdir / "f.npy", frame)
            await b.send(cmd="load", file=str(s.workdir / "f.npy"))
            await s.wait_for(lambda: s.comp.windows() and s.comp.windows()[0].focused, "focus")
            s.comp.key(KEY_A, True)
            s.comp.key(KEY_A, False)
            s.comp.pointer_motion(300, 200)
            s.comp.pointer_button(BTN_RIGHT, True)
            s.comp.pointer_button(BTN_RIGHT, False)
            s.comp.pointer_axis(Axis.HORIZONTAL, -10.0)
            await b.wait(lambda e: e.get("event") == "PointerAxisEvent", "scroll")
            got = [
                (e["event"], {k: v for k, v in e.items() if k != "event"}) for e in b.lines if "event" in e
            ]
            assert ("KeyEvent", {"evdev_code": KEY_A, "pressed": True}) in got
            assert ("KeyEvent", {"evdev_code": KEY_A, "pressed": False}) in got
            assert ("PointerMotionEvent", {"x": 300.0, "y": 200.0}) in got
            assert ("PointerButtonEvent", {"evdev_button": BTN_RIGHT, "pressed": True}) in got
            assert ("PointerButtonEvent", {"evdev_button": BTN_RIGHT, "pressed": False}) in got
            assert ("PointerAxisEvent", {"axis": 1, "value": -10.0, "discrete": None}) in got
            order = [e for e, _ in got if e in ("KeyEvent", "PointerButtonEvent")]
            assert order == ["KeyEvent", "KeyEvent", "PointerButtonEvent", "PointerButtonEvent"]
            # The viewer changes layout: the backend tells the session.
            s.comp.set_keymap(Keymap.from_names(layout="fr").text)
            ev = await b.wait(lambda e: e.get("event") == "KeymapChangedEvent", "the new keymap")
            assert ev["keymap"] == s.comp.keymap_text
            # A key held while focus leaves is released for the session (no stuck keys).
            s.comp.key(KEY_Q, True)
            await b.wait(lambda e: e.get("event") == "KeyEvent" and e["evdev_code"] == KEY_Q, "Q down")
            await s.spawn("foot", "-o", "font=monospace:size=9", "sh")  # takes the focus
            ev = await b.wait(
                lambda e: e.get("event") == "KeyEvent" and e["evdev_code"] == KEY_Q and not e["pressed"],
                "Q up",
            )


async def test_the_session_cursor_is_the_host_cursor(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s, backend(s, "--fullscreen") as b:
        frame = pattern(640, 480)
        np.save(s.workdir / "f.npy", frame)
        await b.send(cmd="load", file=str(s.workdir / "f.npy"))
        ys, xs = np.mgrid[0:24, 0:20]
        image = ((0x80 << 24) | (xs * 6 << 16) | (ys * 5 << 8) | 0x40).astype(np.uint32)  # premultiplied
        np.save(s.workdir / "c.npy", image)
        await b.send(cmd="cursor", file=str(s.workdir / "c.npy"), hotspot=[3, 4])
        s.comp.pointer_motion(200, 150)

        def shown() -> Any:
            c = s.comp.cursor()
            return c if c.image is not None and c.image.shape == image.shape else None

        cursor = await s.wait_for(shown, "the session's cursor image")
        assert np.array_equal(cursor.image, image) and cursor.hotspot == (3, 4) and cursor.visible
        await b.send(cmd="cursor", file=None, hotspot=[0, 0])
        await s.wait_for(
            lambda: not s.comp.cursor().visible or s.comp.cursor().image is None, "a hidden cursor"
        )


async def test_state_overlay_and_idle_screen(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1024, 600)) as s, backend(s, "--kiosk", connected=False) as b:
        await s.wait_for(lambda: s.comp.windows(), "the window")
        await s.settle()
        assert shows(s.comp.screenshot_png(), "Connecting"), "the first thing a viewer sees"
        frame = blocks(1024, 600, [0x3060C0, 0xE0E0E0], 64)
        np.save(s.workdir / "f.npy", frame)
        await b.send(cmd="state", state="connected")
        await b.send(cmd="load", file=str(s.workdir / "f.npy"))
        await s.wait_for(lambda: np.array_equal(s.pixels(), frame & np.uint32(0xFFFFFF)), "the session")
        # Reconnecting: the picture stays, dimmed, under a status bar that says so.
        await b.send(cmd="state", state="reconnecting", detail="server lab-1 restarting")
        await s.wait_for(lambda: int(s.pixels()[500, 32]) != 0x3060C0, "the dimmed picture")
        await s.settle()
        png = s.comp.screenshot_png()
        s.save("reconnecting")
        below_bar = s.pixels()[100:]
        channels = lambda a: np.stack([(a >> sh) & 0xFF for sh in (16, 8, 0)]).astype(int)  # noqa: E731
        dimmed = channels(frame[100:]) * (255 - DIM_ALPHA) / 255
        assert np.abs(channels(below_bar) - dimmed).max() <= 2, "the picture is dimmed, not hidden"
        assert shows(png, "Reconnecting", box=(0, 0, 1024, 80)), ocr(png)
        assert shows(png, "server lab-1 restarting", box=(0, 0, 1024, 80)), ocr(png)
        # Live again: exactly the session's picture, nothing over it.
        await b.send(cmd="state", state="connected")
        await s.wait_for(lambda: np.array_equal(s.pixels(), frame & np.uint32(0xFFFFFF)), "the overlay gone")
        # The session does not respond: its frozen picture, dimmed, under a notice that says so.
        await b.send(cmd="state", state="not-responding", detail="waiting for it\u2026")
        await s.wait_for(lambda: int(s.pixels()[500, 32]) != 0x3060C0, "the dimmed picture")
        await s.settle()
        png = s.comp.screenshot_png()
        assert shows(png, "The session is not responding", box=(0, 0, 1024, 80)), ocr(png)
        assert np.abs(channels(s.pixels()[100:]) - dimmed).max() <= 2, "the picture is dimmed, not hidden"
        await b.send(cmd="state", state="connected")
        await s.wait_for(lambda: np.array_equal(s.pixels(), frame & np.uint32(0xFFFFFF)), "the notice gone")
        # Idle kiosk: "Present your badge", and nothing of the last session's picture.
        await b.send(cmd="state", state="idle", detail="Lab 3 kiosk")
        await s.wait_for(lambda: 0x3060C0 not in s.pixels(), "the idle screen")
        await s.settle()
        png = s.comp.screenshot_png()
        s.save("idle")
        text = ocr(png)
        assert shows(png, "Present your badge"), text
        assert contains(text, "Lab 3 kiosk"), text
        assert not np.isin(s.pixels(), [0x3060C0, 0xE0E0E0]).any()
        # The cursor is hidden on the idle screen.
        s.comp.pointer_motion(500, 300)
        await s.wait_for(lambda: not s.comp.cursor().visible or s.comp.cursor().image is None, "no cursor")
        # Kiosk: a close request (Alt+F4) is ignored.
        s.comp.key(KEY_LEFTALT, True)
        s.comp.key(KEY_F4, True)
        s.comp.key(KEY_F4, False)
        s.comp.key(KEY_LEFTALT, False)
        await s.settle()
        await b.send(cmd="screen")
        assert b.events("CloseRequestedEvent") == []


async def test_window_close_and_screen_changes(tmp_path: Path) -> None:
    async with (
        running_session(tmp_path, size=(800, 600)) as s,
        backend(s, "--options", "--size", "400x300") as b,
    ):
        assert b.lines[0]["screen"] == {"width": 400, "height": 300, "scale_120": 120}
        win = await s.wait_window(lambda w: w.app_id == "org.wayray.wrclient", "the window")
        assert (win.rect.width, win.rect.height) == (400, 300) and win.title == "From options"
        s.comp.pointer_motion(win.rect.x + 10, win.rect.y + 10)
        s.comp.pointer_button(BTN_LEFT, True)
        s.comp.pointer_button(BTN_LEFT, False)
        # The output grows to a HiDPI one: the window hears scale 2, the session is told physical pixels.
        s.comp.resize_output(1600, 1200, scale=2)
        ev = await b.wait(lambda e: e.get("event") == "ScreenChangedEvent", "a screen change")
        assert ev == {"event": "ScreenChangedEvent", "width": 800, "height": 600, "scale_120": 240}
        s.comp.key(KEY_LEFTALT, True)
        s.comp.key(KEY_F4, True)
        s.comp.key(KEY_F4, False)
        s.comp.key(KEY_LEFTALT, False)
        await b.wait(lambda e: e.get("event") == "CloseRequestedEvent", "a close request")


async def test_clipboard_text_both_ways(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s, backend(s, "--fullscreen") as b:
        await s.wait_for(lambda: s.comp.windows() and s.comp.windows()[0].focused, "focus")
        s.comp.set_selection({"text/plain;charset=utf-8": "copied on the viewer: ü".encode()})
        ev = await b.wait(lambda e: e.get("event") == "ClipboardChangedEvent", "the viewer's clipboard")
        assert ev["text"] == "copied on the viewer: ü"
        await b.send(cmd="clipboard", text="copied in the session ✓")
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while (
            got := await s.comp.get_selection("text/plain;charset=utf-8")
        ) != "copied in the session ✓".encode():
            assert loop.time() < end, f"the viewer's clipboard still holds {got!r}"
            await asyncio.sleep(0.05)
        assert "UTF8_STRING" in (s.comp.selection_mime_types() or [])
        await s.settle()
        # Our own selection does not come back as a change.
        assert len(b.events("ClipboardChangedEvent")) == 1


async def test_hidpi_output_shows_the_session_one_pixel_per_pixel(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1280, 960), scale=2) as s, backend(s, "--fullscreen") as b:
        # The window is 640x480 logical at scale 2: the session is asked for 1280x960 physical pixels.
        assert b.lines[0]["screen"] == {"width": 1280, "height": 960, "scale_120": 240}
        frame = pattern(1280, 960, seed=7)
        np.save(s.workdir / "f.npy", frame)
        await b.send(cmd="load", file=str(s.workdir / "f.npy"))
        expect = frame & np.uint32(0xFFFFFF)
        await s.wait_for(lambda: np.array_equal(s.pixels(), expect), "the frame, pixel for pixel at scale 2")
        # Pointer positions come back in session (physical) pixels.
        s.comp.pointer_motion(901, 333)
        ev = await b.wait(lambda e: e.get("event") == "PointerMotionEvent" and e["x"] > 800, "motion")
        assert abs(ev["x"] - 901) <= 1 and abs(ev["y"] - 333) <= 1
