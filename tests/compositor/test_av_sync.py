"""Av-sync (issue 13): the pixels of a sounding program's windows are shown late by the sound's delay.

A pywayland client in a worker thread (this process's pid) commits solid colours step by step; the
test steps av-sync's clock by hand (``Core.av_clock``), so nothing depends on how fast the machine
is: between steps it looks at what the compositor shows. weston-simple-shm, another process,
animates beside it and must not be held back.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm, WlSubcompositor
from pywayland.protocol.xdg_shell import XdgPositioner, XdgWmBase

from tests.compositor.harness import BACKGROUND_RGB, Session, running_session
from wayray.compositor.geometry import Rect

RED, GREEN, BLUE, YELLOW, WHITE = 0xFF0000, 0x00FF00, 0x0000FF, 0xFFFF00, 0xFFFFFF
XWIN = (sys.executable, str(Path(__file__).parent / "clients" / "xwin.py"))
KEY_A = 30
pytestmark = pytest.mark.slow


class Clock:
    """The clock av-sync stamps snapshots with, stepped by the test (binary fractions: exact sums)."""

    def __init__(self) -> None:
        self.t = 64.0

    def __call__(self) -> float:
        return self.t


class Client:
    """One window (and optionally a subsurface), each a solid colour, driven step by step."""

    def __init__(self, path: str) -> None:
        self.display = Display(path)
        self.display.connect()
        self.g: dict[str, Any] = {}
        wanted = {
            "wl_compositor": (WlCompositor, 4),
            "wl_shm": (WlShm, 1),
            "xdg_wm_base": (XdgWmBase, 2),
            "wl_subcompositor": (WlSubcompositor, 1),
        }

        def on_global(reg: Any, name: int, interface: str, version: int) -> None:
            if interface in wanted:
                self.g[interface] = reg.bind(name, *wanted[interface])

        self.registry = self.display.get_registry()
        self.registry.dispatcher["global"] = on_global
        self.display.roundtrip()
        self.g["xdg_wm_base"].dispatcher["ping"] = lambda base, serial: base.pong(serial)
        self.keep: list[Any] = []
        self.frames_done = 0

    def buffer(self, w: int, h: int, rgb: int) -> Any:
        fd = os.memfd_create("av")
        os.ftruncate(fd, w * h * 4)
        with mmap.mmap(fd, w * h * 4) as mm:
            mm.write((0xFF000000 | rgb).to_bytes(4, "little") * (w * h))
        pool = self.g["wl_shm"].create_pool(fd, w * h * 4)
        buf = pool.create_buffer(0, w, h, w * 4, WlShm.format.xrgb8888.value)
        pool.destroy()
        os.close(fd)
        self.keep.append(buf)
        return buf

    def map(self, w: int, h: int, rgb: int) -> None:
        self.surface = self.g["wl_compositor"].create_surface()
        self.xdg = self.g["xdg_wm_base"].get_xdg_surface(self.surface)
        serials: list[int] = []
        self.xdg.dispatcher["configure"] = lambda x, serial: serials.append(serial)
        self.top = self.xdg.get_toplevel()
        self.surface.commit()
        self.display.roundtrip()
        self.xdg.ack_configure(serials[-1])
        self.show(self.surface, w, h, rgb)

    def add_subsurface(self, x: int, y: int, w: int, h: int, rgb: int) -> None:
        self.child = self.g["wl_compositor"].create_surface()
        self.sub = self.g["wl_subcompositor"].get_subsurface(self.child, self.surface)
        self.sub.set_position(x, y)
        self.sub.set_desync()
        self.child.attach(self.buffer(w, h, rgb), 0, 0)
        self.child.damage_buffer(0, 0, w, h)
        self.child.commit()
        self.surface.commit()
        self.display.roundtrip()

    def add_popup(self, w: int, h: int, rgb: int) -> None:
        """A popup (a menu) of the window, its top left corner at (10, 10) of the window."""
        pos = self.g["xdg_wm_base"].create_positioner()
        pos.set_size(w, h)
        pos.set_anchor_rect(0, 0, 10, 10)
        pos.set_anchor(XdgPositioner.anchor.bottom_right.value)
        pos.set_gravity(XdgPositioner.gravity.bottom_right.value)
        self.popup_surface = self.g["wl_compositor"].create_surface()
        xdg = self.g["xdg_wm_base"].get_xdg_surface(self.popup_surface)
        serials: list[int] = []
        xdg.dispatcher["configure"] = lambda x, serial: serials.append(serial)
        self.popup = xdg.get_popup(self.xdg, pos)
        self.popup_surface.commit()
        self.display.roundtrip()
        xdg.ack_configure(serials[-1])
        self.show(self.popup_surface, w, h, rgb)

    def show(self, surface: Any, w: int, h: int, rgb: int, *, frame: bool = False) -> None:
        """Commit ``rgb`` (w x h) on ``surface``; with ``frame``, wait for its frame callback too."""
        surface.attach(self.buffer(w, h, rgb), 0, 0)
        surface.damage_buffer(0, 0, w, h)
        done: list[int] = []
        if frame:
            cb = surface.frame()
            cb.dispatcher["done"] = lambda cb, t: done.append(t)
        surface.commit()
        self.display.roundtrip()
        while frame and not done:
            self.display.dispatch(block=True)

    def destroy_window(self) -> None:
        self.top.destroy()
        self.xdg.destroy()
        self.surface.destroy()
        self.display.roundtrip()

    def close(self) -> None:
        self.display.disconnect()


class Mirror:
    """What a viewer holds: a frame consumer's pixels, taking only each frame's damage."""

    def __init__(self, s: Session) -> None:
        self.consumer = s.comp.consumer()
        self.image: np.ndarray | None = None
        self.damage: list[Rect] = []

    def update(self) -> None:
        self.damage = []
        if not self.consumer.pending:
            return
        frame = self.consumer.take_frame()
        self.damage = list(frame.damage)
        if self.image is None:
            self.image = frame.pixels.copy()
        for r in frame.damage:
            self.image[r.y : r.y2, r.x : r.x2] = frame.pixels[r.y : r.y2, r.x : r.x2]

    def matches(self, s: Session) -> bool:
        assert self.image is not None
        return bool(np.array_equal(self.image & np.uint32(0xFFFFFF), s.pixels()))


def look(s: Session) -> np.ndarray:
    """The output as a composite now shows it (the frame clock may not have run since a step)."""
    s.comp.core.scene_changed()
    return s.pixels()


async def mapped_client(s: Session, w: int, h: int, rgb: int) -> tuple[Client, tuple[int, int]]:
    c: Client = await asyncio.to_thread(Client, str(s.comp.runtime_dir / s.comp.socket_name))
    await asyncio.to_thread(c.map, w, h, rgb)
    win = await s.wait_window(lambda w: w.pid == os.getpid(), "the client's window")
    x, y = win.rect.x, win.rect.y
    await s.wait_for(lambda: int(look(s)[y + 1, x + 1]) == rgb, "the window's first colour")
    return c, (x, y)


async def test_a_synced_window_shows_its_content_late_and_others_at_once(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(800, 600)) as s:
        await s.spawn("weston-simple-shm")
        shm = await s.wait_window(lambda w: w.title == "simple-shm", "weston-simple-shm's window")
        c, (x, y) = await mapped_client(s, 100, 100, RED)
        try:
            await asyncio.to_thread(c.add_subsurface, 20, 20, 40, 40, BLUE)

            def at(px: np.ndarray, dx: int, dy: int) -> int:
                return int(px[y + dy, x + dx])

            await s.wait_for(lambda: at(look(s), 30, 30) == BLUE, "the blue subsurface")
            ours = s.comp.windows()[-1]
            assert ours.pid == os.getpid() and ours.focused
            # weston-simple-shm's pixels that our window does not cover
            other = np.zeros(look(s).shape, dtype=bool)
            other[shm.rect.y : shm.rect.y2, shm.rect.x : shm.rect.x2] = True
            other[ours.rect.y : ours.rect.y2, ours.rect.x : ours.rect.x2] = False
            assert other.sum() > 1000, "weston-simple-shm must be visible beside the client's window"

            mirror = Mirror(s)
            clock = Clock()
            s.comp.core.av_clock = clock
            s.comp.set_av_sync({os.getpid()}, 250)
            look(s)
            mirror.update()
            # New content on the root surface and the subsurface; the frame callback is answered
            # (a composite ran) while the clock stands still.
            await asyncio.to_thread(c.show, c.child, 40, 40, YELLOW)
            await asyncio.to_thread(c.show, c.surface, 100, 100, GREEN, frame=True)
            px = look(s)
            assert (at(px, 5, 5), at(px, 30, 30)) == (RED, BLUE), "the new content waits for the delay"
            # The other program's window keeps changing while ours waits.
            before = px[other].copy()
            await s.wait_for(
                lambda: not np.array_equal(look(s)[other], before), "weston-simple-shm animating at once"
            )
            px = look(s)
            assert (at(px, 5, 5), at(px, 30, 30)) == (RED, BLUE)

            mirror.update()
            clock.t += 0.125
            px = look(s)
            assert (at(px, 5, 5), at(px, 30, 30)) == (RED, BLUE), "half the delay: still the old content"
            mirror.update()
            clock.t += 0.125
            px = look(s)
            assert (at(px, 5, 5), at(px, 30, 30)) == (GREEN, YELLOW), "the delay passed: the new content"
            mirror.update()
            assert mirror.matches(s), "the frames' damage covers what came due: the viewer sees it"

            await asyncio.to_thread(c.show, c.surface, 100, 100, WHITE)
            assert at(look(s), 5, 5) == GREEN
            s.comp.set_av_sync((), 0)
            assert s.comp.core.av_sync is None and not s.comp.core.renderer.delayed
            px = look(s)
            assert (at(px, 5, 5), at(px, 30, 30)) == (WHITE, YELLOW), "off: the current content at once"
            mirror.update()
            assert mirror.matches(s)
        finally:
            await asyncio.to_thread(c.close)


async def test_memory_is_capped_and_the_delay_can_be_lowered(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(400, 300)) as s:
        c, (x, y) = await mapped_client(s, 64, 64, RED)
        try:
            clock = Clock()
            s.comp.core.av_clock = clock
            s.comp.set_av_sync({os.getpid(), 999_999}, 250)
            av = s.comp.core.av_sync
            assert av is not None
            look(s)
            one = 64 * 64 * 4
            av.budget = 3 * one  # the shown snapshot and two waiting
            colours = [0x100000 * k + 0x40 for k in range(1, 9)]
            seen: list[int] = []
            for rgb in colours:  # a new colour every 1/16 s, the delay being 4/16 s
                await asyncio.to_thread(c.show, c.surface, 64, 64, rgb)
                seen.append(int(look(s)[y + 1, x + 1]))
                assert av.held <= av.budget
                clock.t += 0.0625
            assert av.dropped > 0, "more waiting snapshots than the budget holds: some were dropped"
            for _ in range(4):
                seen.append(int(look(s)[y + 1, x + 1]))
                clock.t += 0.0625
            assert seen[-1] == colours[-1], "the last content comes due"
            assert not av.timer_pending, "nothing waits: no wake-up set"
            shown = [p for i, p in enumerate(seen) if i == 0 or p != seen[i - 1]]
            assert shown[0] == RED and shown[1:] == [p for p in colours if p in shown], (
                f"the picture moves forward in commit order, dropping some: {[hex(p) for p in shown]}"
            )

            # Lowering the delay while content waits brings what is now old enough at once. The
            # frame damage is exact: nothing while the content waits, the window when it comes due.
            mirror = Mirror(s)
            mirror.update()
            await asyncio.to_thread(c.show, c.surface, 64, 64, BLUE)
            assert int(look(s)[y + 1, x + 1]) == colours[-1]
            assert av.timer_pending, "a wake-up for when the new content comes due"
            clock.t += 0.0625
            assert int(look(s)[y + 1, x + 1]) == colours[-1]
            mirror.update()
            assert mirror.damage == [], "no frame while the new content waits"
            s.comp.set_av_sync({os.getpid()}, 50)
            assert int(look(s)[y + 1, x + 1]) == BLUE
            mirror.update()
            assert mirror.damage == [Rect(x, y, 64, 64)] and mirror.matches(s)
            # Raising it again holds the next content longer.
            s.comp.set_av_sync({os.getpid()}, 500)
            await asyncio.to_thread(c.show, c.surface, 64, 64, GREEN)
            assert int(look(s)[y + 1, x + 1]) == BLUE
            clock.t += 0.25
            assert int(look(s)[y + 1, x + 1]) == BLUE
            clock.t += 0.25
            assert int(look(s)[y + 1, x + 1]) == GREEN
        finally:
            await asyncio.to_thread(c.close)


async def test_a_resized_or_destroyed_window_while_delayed(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(400, 300)) as s:
        c, (x, y) = await mapped_client(s, 100, 100, RED)
        try:
            clock = Clock()
            s.comp.core.av_clock = clock
            s.comp.set_av_sync({os.getpid()}, 250)
            look(s)
            # Geometry is current at once, the content late: the old pixels within the old size,
            # what is under the window beyond it.
            await asyncio.to_thread(c.show, c.surface, 160, 120, GREEN)
            win = await s.wait_window(lambda w: w.rect.width == 160, "the window at its new size")
            assert (win.rect.x, win.rect.y) == (x, y)
            px = look(s)
            assert int(px[y + 50, x + 50]) == RED
            assert int(px[y + 110, x + 150]) == BACKGROUND_RGB
            clock.t += 0.25
            px = look(s)
            assert int(px[y + 50, x + 50]) == GREEN and int(px[y + 110, x + 150]) == GREEN
            # Smaller while delayed: the current, smaller size clips the old, larger pixels.
            await asyncio.to_thread(c.show, c.surface, 50, 50, BLUE)
            px = look(s)
            assert int(px[y + 10, x + 10]) == GREEN and int(px[y + 60, x + 60]) == BACKGROUND_RGB
            clock.t += 0.25
            assert int(look(s)[y + 10, x + 10]) == BLUE

            await asyncio.to_thread(c.show, c.surface, 50, 50, YELLOW)
            av = s.comp.core.av_sync
            assert av is not None
            look(s)
            assert av.held > 0 and int(look(s)[y + 10, x + 10]) == BLUE
            await asyncio.to_thread(c.destroy_window)
            await s.wait_for(lambda: not s.comp.windows(), "the window gone")
            px = look(s)
            assert int(px[y + 10, x + 10]) == BACKGROUND_RGB
            assert av.held == 0 and not av.lines, "a destroyed window's snapshots go at once"
            clock.t += 0.25
            assert int(look(s)[y + 10, x + 10]) == BACKGROUND_RGB
        finally:
            await asyncio.to_thread(c.close)


async def test_bad_delays(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(200, 100)) as s:
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match="finite"):
                s.comp.set_av_sync({1}, bad)
        s.comp.set_av_sync({1}, 10_000)
        av = s.comp.core.av_sync
        assert av is not None and av.delay == 0.5, "the delay is clamped to 500 ms"
        s.comp.set_av_sync({1}, -5)
        assert s.comp.core.av_sync is None, "no delay is off"
        s.comp.set_av_sync({0}, 100)
        assert s.comp.core.av_sync is None, "pid 0 (an X window of unknown pid) never matches"


async def test_a_popup_of_a_synced_window_waits_with_it(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(400, 300)) as s:
        c, (x, y) = await mapped_client(s, 100, 100, RED)
        try:
            await asyncio.to_thread(c.add_popup, 40, 40, BLUE)
            await s.wait_for(lambda: int(look(s)[y + 30, x + 30]) == BLUE, "the blue popup")
            clock = Clock()
            s.comp.core.av_clock = clock
            s.comp.set_av_sync({os.getpid()}, 250)
            look(s)
            await asyncio.to_thread(c.show, c.popup_surface, 40, 40, YELLOW)
            await asyncio.to_thread(c.show, c.surface, 100, 100, GREEN)
            px = look(s)
            assert (int(px[y + 30, x + 30]), int(px[y + 5, x + 5])) == (BLUE, RED)
            clock.t += 0.25
            px = look(s)
            assert (int(px[y + 30, x + 30]), int(px[y + 5, x + 5])) == (YELLOW, GREEN)
        finally:
            await asyncio.to_thread(c.close)


@pytest.mark.skipif(shutil.which("Xwayland") is None, reason="needs Xwayland (apt: xwayland)")
async def test_an_x_window_is_matched_by_its_net_wm_pid(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480), x11=True) as s:
        xwin = await s.spawn(*XWIN, "--title", "X video", "--size", "200x150", "--recolor", "00FF00")
        win = await s.wait_window(lambda w: w.title == "X video", "the X window")
        assert win.pid == xwin.pid and win.focused
        r = win.rect

        def share(rgb: int) -> float:
            part = look(s)[r.y : r.y2, r.x : r.x2]
            return float(np.count_nonzero(part == rgb)) / part.size

        await s.wait_for(lambda: share(RED) > 0.99, "the red X window")
        clock = Clock()
        s.comp.core.av_clock = clock
        s.comp.set_av_sync({xwin.pid}, 250)
        av = s.comp.core.av_sync
        assert av is not None
        look(s)

        def typed() -> bool:  # again until X has given the window its focus (the WM asks for it)
            if "key " in xwin.output():
                return True
            s.comp.key(KEY_A, True)
            s.comp.key(KEY_A, False)
            return False

        await s.wait_for(typed, "the key at the X program at once")
        # Xwayland commits the green picture; it waits in the window's delay line.
        await s.wait_for(
            lambda: look(s) is not None and any(line.waiting for line in av.lines.values()),
            "the new picture committed",
        )
        assert share(RED) > 0.99, "the X window's new picture waits for the delay"

        def later() -> float:
            clock.t += 0.25
            return share(GREEN)

        await s.wait_for(lambda: later() > 0.99, "the green picture once the delay passed")
