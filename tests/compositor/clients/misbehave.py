"""A Wayland client that breaks protocol rules, or takes legal requests to extremes, on purpose.

Usage: misbehave.py SCENARIO [--stay]. It does the wrong thing, then waits for the compositor's
verdict and prints "protocol error" (and exits 3) when the compositor disconnected it with a protocol
error, or "no error" (exit 0). libwayland-client prints the error itself on stderr: "iface@id: error
N: msg". With --stay a client that got no error prints "no error, staying" and stays connected (its
surfaces stay on screen) until it is killed.
"""

from __future__ import annotations

import errno
import mmap
import os
import sys

from pywayland import lib
from pywayland.client import Display
from pywayland.protocol.cursor_shape_v1 import WpCursorShapeDeviceV1, WpCursorShapeManagerV1
from pywayland.protocol.wayland import WlCompositor, WlDataDeviceManager, WlSeat, WlShm, WlSubcompositor
from pywayland.protocol.xdg_decoration_unstable_v1 import ZxdgDecorationManagerV1
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
            elif interface == "wl_subcompositor":
                self.globals[interface] = reg.bind(name, WlSubcompositor, 1)
            elif interface == "wl_seat":
                self.globals[interface] = reg.bind(name, WlSeat, 1)
            elif interface == "wl_data_device_manager":
                self.globals[interface] = reg.bind(name, WlDataDeviceManager, 3)
            elif interface == "wp_cursor_shape_manager_v1":
                self.globals[interface] = reg.bind(name, WpCursorShapeManagerV1, 1)
            elif interface == "zxdg_decoration_manager_v1":
                self.globals[interface] = reg.bind(name, ZxdgDecorationManagerV1, 1)
            elif interface == "xdg_wm_base":
                wm = reg.bind(name, XdgWmBase, 2)
                wm.dispatcher["ping"] = lambda wm, serial: wm.pong(serial)
                self.globals[interface] = wm

        registry.dispatcher["global"] = on_global
        self.display.roundtrip()
        self.compositor = self.globals["wl_compositor"]
        self.wm = self.globals["xdg_wm_base"]
        self.shm = self.globals["wl_shm"]
        self.subcompositor = self.globals["wl_subcompositor"]
        self.serials: list[int] = []

    def buffer(self, width: int = W, height: int = H, stride: int | None = None):  # type: ignore[no-untyped-def]
        stride = width * 4 if stride is None else stride
        size = stride * height
        fd = os.memfd_create("misbehave")
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
        mm.write(b"\x80\x40\x20\xff" * (size // 4))
        pool = self.shm.create_pool(fd, size)
        buf = pool.create_buffer(0, width, height, stride, WlShm.format.argb8888.value)
        pool.destroy()
        os.close(fd)
        return buf

    def subsurface(self, parent, buffer, *, scale: int = 1, position: tuple[int, int] = (0, 0)):  # type: ignore[no-untyped-def]
        """A desynchronized subsurface of ``parent`` showing ``buffer``, committed with its parent."""
        surface = self.compositor.create_surface()
        sub = self.subcompositor.get_subsurface(surface, parent)
        sub.set_desync()
        sub.set_position(*position)
        surface.set_buffer_scale(scale)
        surface.attach(buffer, 0, 0)
        surface.damage(0, 0, 1 << 30, 1 << 30)
        surface.commit()
        parent.commit()
        return surface, sub

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

    def popup(self, parent_xdg, anchor_rect=(0, 0, 10, 10)):  # type: ignore[no-untyped-def]
        pos = self.wm.create_positioner()
        pos.set_size(W, H)
        pos.set_anchor_rect(*anchor_rect)
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


def incomplete_positioner_popup(c: Client) -> None:
    _s, xdg, _top = c.mapped_toplevel()
    pos = c.wm.create_positioner()
    pos.set_anchor_rect(0, 0, 10, 10)  # no size
    c.wm.get_xdg_surface(c.compositor.create_surface()).get_popup(xdg, pos)


def roleless_popup_parent(c: Client) -> None:
    parent_xdg = c.wm.get_xdg_surface(c.compositor.create_surface())  # never a toplevel or popup
    pos = c.wm.create_positioner()
    pos.set_size(W, H)
    pos.set_anchor_rect(0, 0, 10, 10)
    c.wm.get_xdg_surface(c.compositor.create_surface()).get_popup(parent_xdg, pos)


def xdg_surface_before_role(c: Client) -> None:
    _s, xdg, _top = c.mapped_toplevel()
    xdg.destroy()  # the toplevel still exists


def truncated_pool(c: Client) -> None:
    """Shrink the shared memory under a buffer before committing it (the compositor reads past EOF)."""
    surface, xdg, _top = c.toplevel()
    surface.commit()
    c.display.roundtrip()
    xdg.ack_configure(c.serials[-1])
    fd = os.memfd_create("misbehave")
    os.ftruncate(fd, W * H * 4)
    pool = c.shm.create_pool(fd, W * H * 4)
    buf = pool.create_buffer(0, W, H, W * 4, WlShm.format.argb8888.value)
    os.ftruncate(fd, 0)
    surface.attach(buf, 0, 0)
    surface.damage(0, 0, W, H)
    surface.commit()


def short_stride(c: Client) -> None:
    surface, xdg, _top = c.toplevel()
    surface.commit()
    c.display.roundtrip()
    xdg.ack_configure(c.serials[-1])
    surface.attach(c.buffer(stride=W), 0, 0)  # rows of W bytes hold a quarter of W ARGB pixels
    surface.commit()


# Legal but extreme: the compositor must show them (or not) without failing for everyone.


def huge_buffer_scale(c: Client) -> None:
    parent, _xdg, _top = c.mapped_toplevel()
    c.subsurface(parent, c.buffer(40000, 1), scale=40000)  # one surface pixel made of 40000


def far_subsurface(c: Client) -> None:
    parent, _xdg, _top = c.mapped_toplevel()
    c.subsurface(parent, c.buffer(16, 16), position=(2**31 - 1, 2**31 - 1))


def far_popup(c: Client) -> None:
    _s, xdg, _top = c.mapped_toplevel()
    c.popup(xdg, anchor_rect=(2**31 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1))  # anchored bottom right


def huge_window_geometry(c: Client) -> None:
    surface, xdg, top = c.toplevel()
    c.globals["zxdg_decoration_manager_v1"].get_toplevel_decoration(
        top
    )  # title bars, if the session draws them
    xdg.set_window_geometry(0, 0, 2**31 - 1, H)
    surface.commit()
    c.display.roundtrip()
    xdg.ack_configure(c.serials[-1])
    surface.attach(c.buffer(), 0, 0)
    surface.commit()


def hoard_selection_pipes(c: Client) -> None:
    """Ask for the selection 200 times through one pipe that is never read."""
    device = c.globals["wl_data_device_manager"].get_data_device(c.globals["wl_seat"])
    offers: list[object] = []
    device.dispatcher["data_offer"] = lambda _d, offer: offers.append(offer)
    device.dispatcher["selection"] = lambda _d, offer: offers.append(offer)
    c.mapped_toplevel()  # keyboard focus: the selection is offered
    c.display.roundtrip()
    rfd, wfd = os.pipe()
    c.hoarded = rfd  # type: ignore[attr-defined]  # kept open, never read
    for _ in range(200):
        offers[-1].receive("text/plain", wfd)  # type: ignore[attr-defined]
    os.close(wfd)


def cursor_shape(c: Client) -> None:
    """Not misbehaving: over its window it asks for the theme's "wait" cursor (cursor-shape-v1)."""
    c.mapped_toplevel()
    pointer = c.globals["wl_seat"].get_pointer()
    device = c.globals["wp_cursor_shape_manager_v1"].get_pointer(pointer)
    pointer.dispatcher["enter"] = lambda p, serial, *_: device.set_shape(
        serial, WpCursorShapeDeviceV1.shape.wait.value
    )


def bind_window_manager(c: Client) -> None:
    """Bind wayray_wm_manager_v1 without being the session's window manager: by the global name
    given after the scenario's name (the global is hidden from such a client), else if listed."""
    from wayray.wayland.protocols.generated.wayray_wm_v1 import WayrayWmManagerV1

    registry = c.display.get_registry()
    if sys.argv[2:] and sys.argv[2].isdigit():
        registry.bind(int(sys.argv[2]), WayrayWmManagerV1, 1)
        return
    registry.dispatcher["global"] = lambda reg, name, interface, version: (
        reg.bind(name, WayrayWmManagerV1, 1) if interface == "wayray_wm_manager_v1" else None
    )
    c.display.roundtrip()


def well_behaved(c: Client) -> None:
    c.mapped_toplevel()


SCENARIOS = {
    f.__name__: f
    for f in (
        wrong_serial,
        buffer_before_configure,
        destroyed_parent_popup,
        incomplete_positioner_popup,
        roleless_popup_parent,
        xdg_surface_before_role,
        truncated_pool,
        short_stride,
        huge_buffer_scale,
        far_subsurface,
        far_popup,
        huge_window_geometry,
        hoard_selection_pipes,
        cursor_shape,
        bind_window_manager,
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
    if "--stay" in sys.argv[2:]:
        print("no error, staying", flush=True)
        while c.display.dispatch(block=True) >= 0:
            pass
        return 0
    print("no error", flush=True)
    return 0


if __name__ == "__main__":
    # os._exit: pywayland's proxy finalizers crash on a display the server has already cut off.
    os._exit(main())
