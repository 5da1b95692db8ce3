"""A Wayland client that breaks xdg-shell rules on purpose (run by test_misbehaving_clients).

Usage: misbehave.py SCENARIO. It does the wrong thing, then waits for the compositor's verdict and
prints "protocol error" (and exits 3) when the compositor disconnected it with a protocol error,
or "no error" (exit 0). libwayland-client prints the error itself on stderr: "iface@id: error N: msg".
"""

from __future__ import annotations

import errno
import mmap
import os
import sys

from pywayland import lib
from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm
from pywayland.protocol.xdg_shell import XdgPositioner, XdgWmBase

W, H = 64, 48


class Client:
    def __init__(self) -> None:
        self.display = Display()
        self.display.connect()
        self.globals: dict[str, object] = {}
        registry = self.display.get_registry()

        def on_global(reg, name, interface, version):  # type: ignore[no-untyped-def]
            if interface == "wl_compositor":
                self.globals[interface] = reg.bind(name, WlCompositor, 4)
            elif interface == "wl_shm":
                self.globals[interface] = reg.bind(name, WlShm, 1)
            elif interface == "xdg_wm_base":
                wm = reg.bind(name, XdgWmBase, 2)
                wm.dispatcher["ping"] = lambda wm, serial: wm.pong(serial)
                self.globals[interface] = wm

        registry.dispatcher["global"] = on_global
        self.display.roundtrip()
        self.compositor = self.globals["wl_compositor"]
        self.wm = self.globals["xdg_wm_base"]
        self.shm = self.globals["wl_shm"]
        self.serials: list[int] = []

    def buffer(self):  # type: ignore[no-untyped-def]
        fd = os.memfd_create("misbehave")
        os.ftruncate(fd, W * H * 4)
        mm = mmap.mmap(fd, W * H * 4)
        mm.write(b"\x80\x40\x20\xff" * (W * H))
        pool = self.shm.create_pool(fd, W * H * 4)
        buf = pool.create_buffer(0, W, H, W * 4, WlShm.format.argb8888.value)
        pool.destroy()
        os.close(fd)
        return buf

    def toplevel(self):  # type: ignore[no-untyped-def]
        surface = self.compositor.create_surface()
        xdg = self.wm.get_xdg_surface(surface)
        xdg.dispatcher["configure"] = lambda x, serial: self.serials.append(serial)
        top = xdg.get_toplevel()
        top.set_title("misbehave")
        return surface, xdg, top

    def mapped_toplevel(self):  # type: ignore[no-untyped-def]
        surface, xdg, top = self.toplevel()
        surface.commit()
        self.display.roundtrip()
        xdg.ack_configure(self.serials[-1])
        surface.attach(self.buffer(), 0, 0)
        surface.damage(0, 0, W, H)
        surface.commit()
        self.display.roundtrip()
        return surface, xdg, top

    def popup(self, parent_xdg):  # type: ignore[no-untyped-def]
        pos = self.wm.create_positioner()
        pos.set_size(W, H)
        pos.set_anchor_rect(0, 0, 10, 10)
        pos.set_anchor(XdgPositioner.anchor.bottom_right.value)
        surface = self.compositor.create_surface()
        xdg = self.wm.get_xdg_surface(surface)
        serials: list[int] = []
        xdg.dispatcher["configure"] = lambda x, serial: serials.append(serial)
        popup = xdg.get_popup(parent_xdg, pos)
        surface.commit()
        self.display.roundtrip()
        xdg.ack_configure(serials[-1])
        surface.attach(self.buffer(), 0, 0)
        surface.commit()
        self.display.roundtrip()
        return surface, xdg, popup


def wrong_serial(c: Client) -> None:
    surface, xdg, _top = c.toplevel()
    surface.commit()
    c.display.roundtrip()
    xdg.ack_configure(c.serials[-1] + 1000)


def buffer_before_configure(c: Client) -> None:
    surface, _xdg, _top = c.toplevel()
    surface.attach(c.buffer(), 0, 0)
    surface.commit()


def destroyed_parent_popup(c: Client) -> None:
    _s, xdg, _top = c.mapped_toplevel()
    _ps, parent_xdg, parent_popup = c.popup(xdg)
    c.popup(parent_xdg)
    parent_popup.destroy()  # the child popup is still mapped: not the topmost popup


def xdg_surface_before_role(c: Client) -> None:
    _s, xdg, _top = c.mapped_toplevel()
    xdg.destroy()  # the toplevel still exists


def well_behaved(c: Client) -> None:
    c.mapped_toplevel()


SCENARIOS = {
    f.__name__: f
    for f in (
        wrong_serial,
        buffer_before_configure,
        destroyed_parent_popup,
        xdg_surface_before_role,
        well_behaved,
    )
}


def main() -> int:
    c = Client()
    SCENARIOS[sys.argv[1]](c)
    rc = c.display.roundtrip()
    if rc < 0 and lib.wl_display_get_error(c.display._ptr) == errno.EPROTO:
        print("protocol error", flush=True)
        return 3
    print("no error", flush=True)
    return 0


if __name__ == "__main__":
    # os._exit: pywayland's proxy finalizers crash on a display the server has already cut off.
    os._exit(main())
