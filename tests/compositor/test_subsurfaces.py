"""Subsurface state caches and stacking, with a pywayland client in a worker thread.

The client thread blocks in roundtrips while the test's loop serves it; between steps the test
looks at what the compositor shows.
"""

from __future__ import annotations

import asyncio
import mmap
import os
from pathlib import Path
from typing import Any

import pytest
from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm, WlSubcompositor
from pywayland.protocol.xdg_shell import XdgWmBase

from tests.compositor.harness import running_session

RED, GREEN, BLUE = 0xFFFF0000, 0xFF00FF00, 0xFF0000FF
pytestmark = pytest.mark.slow


class Client:
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
        self.keep: list[Any] = []

    def buffer(self, w: int, h: int, argb: int) -> Any:
        fd = os.memfd_create("sub")
        os.ftruncate(fd, w * h * 4)
        with mmap.mmap(fd, w * h * 4) as mm:
            mm.write(argb.to_bytes(4, "little") * (w * h))
        pool = self.g["wl_shm"].create_pool(fd, w * h * 4)
        buf = pool.create_buffer(0, w, h, w * 4, WlShm.format.argb8888.value)
        pool.destroy()
        os.close(fd)
        self.keep.append(buf)
        return buf

    def close(self) -> None:
        self.display.disconnect()


async def test_synchronized_subsurface_state_waits_for_the_parent_and_desync_applies_at_once(
    tmp_path: Path,
) -> None:
    async with running_session(tmp_path, size=(400, 300)) as s:
        path = str(s.comp.runtime_dir / s.comp.socket_name)
        c: Client = await asyncio.to_thread(Client, path)
        objs: dict[str, Any] = {}

        def map_parent() -> None:
            parent = c.g["wl_compositor"].create_surface()
            xdg = c.g["xdg_wm_base"].get_xdg_surface(parent)
            serials: list[int] = []
            xdg.dispatcher["configure"] = lambda x, serial: serials.append(serial)
            top = xdg.get_toplevel()
            parent.commit()
            c.display.roundtrip()
            xdg.ack_configure(serials[-1])
            parent.attach(c.buffer(100, 100, RED), 0, 0)
            parent.damage(0, 0, 100, 100)
            parent.commit()
            c.display.roundtrip()
            objs.update(parent=parent, xdg=xdg, top=top)

        def child_sync_commit() -> None:
            child = c.g["wl_compositor"].create_surface()
            sub = c.g["wl_subcompositor"].get_subsurface(child, objs["parent"])
            sub.set_position(20, 30)
            child.attach(c.buffer(40, 40, GREEN), 0, 0)
            child.damage(0, 0, 40, 40)
            child.commit()  # synchronized (the default): cached until the parent commits
            c.display.roundtrip()
            objs.update(child=child, sub=sub)

        def parent_commit() -> None:
            objs["parent"].commit()
            c.display.roundtrip()

        def desync_and_commit_blue() -> None:
            objs["sub"].set_desync()
            objs["child"].attach(c.buffer(40, 40, BLUE), 0, 0)
            objs["child"].damage(0, 0, 40, 40)
            objs["child"].commit()
            c.display.roundtrip()

        def place_below_parent() -> None:
            objs["sub"].place_below(objs["parent"])
            c.display.roundtrip()

        try:
            await asyncio.to_thread(map_parent)
            win = await s.wait_window(lambda w: True, "the parent window")
            x, y = win.rect.x, win.rect.y

            def at(dx: int, dy: int) -> int:
                return int(s.pixels()[y + dy, x + dx])

            await s.wait_for(lambda: at(25, 35) == RED & 0xFFFFFF, "the red parent")
            await asyncio.to_thread(child_sync_commit)
            await s.settle(0.2)
            assert at(25, 35) == RED & 0xFFFFFF, (
                "a synchronized subsurface must wait for its parent's commit"
            )
            await asyncio.to_thread(parent_commit)
            await s.wait_for(lambda: at(25, 35) == GREEN & 0xFFFFFF, "the green subsurface at (20, 30)")
            assert at(15, 35) == RED & 0xFFFFFF and at(65, 75) == RED & 0xFFFFFF
            await asyncio.to_thread(desync_and_commit_blue)
            await s.wait_for(
                lambda: at(25, 35) == BLUE & 0xFFFFFF, "a desynchronized commit applied at once"
            )
            await asyncio.to_thread(place_below_parent)
            await s.settle(0.2)
            assert at(25, 35) == BLUE & 0xFFFFFF, "place_below takes effect with the parent's next commit"
            await asyncio.to_thread(parent_commit)
            await s.wait_for(lambda: at(25, 35) == RED & 0xFFFFFF, "the subsurface below the opaque parent")
        finally:
            await asyncio.to_thread(c.close)
