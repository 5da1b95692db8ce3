"""An application with a main window and a dialog (a toplevel whose parent is the main window).

Usage: dialog.py MAIN_RGB DIALOG_RGB (hex, e.g. c0c000). It maps a 480x360 main window (app id
"main") and, once that is on screen, a 240x160 dialog (app id "dialog", xdg_toplevel.set_parent to
the main window). Each is one solid colour and draws whatever size a configure asks for (0 x 0: its
own size). It prints "mapped" when both are on screen and stays until killed. With --minimize, a
button press on the main window asks for it to be minimized (as a title bar's button would). Keys,
as an application's shortcuts would: F toggles fullscreen and M toggles maximized for the window
that has the keyboard.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from misbehave import Client  # noqa: E402
from pywayland.protocol.wayland import WlShm  # noqa: E402

MAXIMIZED, FULLSCREEN = 1, 2  # xdg_toplevel.state
KEY_F, KEY_M = 33, 50  # evdev key codes


class Toplevel:
    def __init__(self, c: Client, app_id: str, rgb: int, size: tuple[int, int], parent: Any = None) -> None:
        self.c = c
        self.rgb = rgb
        self.default = size
        self.want = (0, 0)
        self.maximized = False
        self.fullscreen = False
        self.drawn: tuple[int, int] | None = None
        self.surface = c.compositor.create_surface()
        self.xdg = c.wm.get_xdg_surface(self.surface)
        self.top = self.xdg.get_toplevel()
        self.top.set_app_id(app_id)
        self.top.set_title(app_id)
        if parent is not None:
            self.top.set_parent(parent)
        self.top.dispatcher["configure"] = self.on_toplevel_configure
        self.xdg.dispatcher["configure"] = self.on_configure
        self.surface.commit()

    def on_toplevel_configure(self, _t: Any, width: int, height: int, states: bytes) -> None:
        self.want = (width, height)
        held = struct.unpack(f"<{len(states) // 4}I", states)
        self.maximized, self.fullscreen = MAXIMIZED in held, FULLSCREEN in held

    def key(self, code: int) -> None:
        if code == KEY_F:
            (self.top.unset_fullscreen if self.fullscreen else lambda: self.top.set_fullscreen(None))()
        elif code == KEY_M:
            (self.top.unset_maximized if self.maximized else self.top.set_maximized)()

    def on_configure(self, _x: Any, serial: int) -> None:
        self.xdg.ack_configure(serial)
        width, height = self.want if self.want[0] and self.want[1] else self.default
        if self.drawn == (width, height):
            self.surface.commit()
            return
        self.drawn = (width, height)
        stride = width * 4
        fd = os.memfd_create("dialog")
        os.ftruncate(fd, stride * height)
        with mmap.mmap(fd, stride * height) as mm:
            mm.write((self.rgb | 0xFF000000).to_bytes(4, "little") * (width * height))
        pool = self.c.shm.create_pool(fd, stride * height)
        buf = pool.create_buffer(0, width, height, stride, WlShm.format.argb8888.value)
        pool.destroy()
        os.close(fd)
        self.xdg.set_window_geometry(0, 0, width, height)
        self.surface.attach(buf, 0, 0)
        self.surface.damage(0, 0, width, height)
        self.surface.commit()


def main() -> None:
    c = Client()
    windows: list[Toplevel] = []
    keyboard = c.globals["wl_seat"].get_keyboard()  # type: ignore[attr-defined]
    focus: list[Toplevel | None] = [None]

    def on_kb_enter(_k: Any, _serial: int, surface: Any, _keys: Any) -> None:
        focus[0] = next((t for t in windows if t.surface == surface), None)

    def on_key(_k: Any, _serial: int, _time: int, code: int, state: int) -> None:
        if state == 1 and focus[0] is not None:
            focus[0].key(code)

    keyboard.dispatcher["enter"] = on_kb_enter
    keyboard.dispatcher["leave"] = lambda _k, _serial, _surface: focus.__setitem__(0, None)
    keyboard.dispatcher["key"] = on_key
    main_window = Toplevel(c, "main", int(sys.argv[1], 16), (480, 360))
    windows.append(main_window)
    while main_window.drawn is None:
        c.display.dispatch(block=True)
    c.display.roundtrip()
    dialog = Toplevel(c, "dialog", int(sys.argv[2], 16), (240, 160), parent=main_window.top)
    windows.append(dialog)
    while dialog.drawn is None:
        c.display.dispatch(block=True)
    c.display.roundtrip()
    if "--minimize" in sys.argv:
        pointer = c.globals["wl_seat"].get_pointer()  # type: ignore[attr-defined]
        over: list[Any] = [None]

        def on_enter(_p: Any, _serial: int, surface: Any, _x: float, _y: float) -> None:
            over[0] = surface

        def on_button(_p: Any, _serial: int, _time: int, _button: int, state: int) -> None:
            if state == 1 and over[0] == main_window.surface:
                main_window.top.set_minimized()
                print("minimized", flush=True)

        pointer.dispatcher["enter"] = on_enter
        pointer.dispatcher["leave"] = lambda _p, _serial, _surface: over.__setitem__(0, None)
        pointer.dispatcher["button"] = on_button
    c.display.roundtrip()  # the compositor has the keyboard and pointer before we say so
    print("mapped", flush=True)
    while c.display.dispatch(block=True) >= 0:
        pass


if __name__ == "__main__":
    main()
