"""A minimal layer-shell panel: anchored to the top edge, full width, HEIGHT px, exclusive zone HEIGHT.

Usage: panel.py HEIGHT [TOP RIGHT LEFT]: the optional margins (any int32). Draws solid red, prints
"mapped WxH" once its buffer is committed, then serves events until the compositor closes the
connection.
"""

from __future__ import annotations

import mmap
import os
import sys

from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm

from wayray.wayland.protocols.generated.wlr_layer_shell_unstable_v1 import ZwlrLayerShellV1


def main() -> int:
    height = int(sys.argv[1])
    display = Display()
    display.connect()
    found: dict[str, object] = {}
    registry = display.get_registry()

    def on_global(reg, name, interface, version):  # type: ignore[no-untyped-def]
        if interface == "wl_compositor":
            found[interface] = reg.bind(name, WlCompositor, 4)
        elif interface == "wl_shm":
            found[interface] = reg.bind(name, WlShm, 1)
        elif interface == "zwlr_layer_shell_v1":
            found[interface] = reg.bind(name, ZwlrLayerShellV1, 4)

    registry.dispatcher["global"] = on_global
    display.roundtrip()
    surface = found["wl_compositor"].create_surface()  # type: ignore[attr-defined]
    layer = found["zwlr_layer_shell_v1"].get_layer_surface(surface, None, 2, "test-panel")  # type: ignore[attr-defined]
    layer.set_anchor(1 | 4 | 8)  # top, left, right
    layer.set_size(0, height)
    layer.set_exclusive_zone(height)
    if len(sys.argv) > 2:
        top, right, left = (int(v) for v in sys.argv[2:5])
        layer.set_margin(top, right, 0, left)
    configured: list[tuple[int, int, int]] = []
    layer.dispatcher["configure"] = lambda ls, serial, w, h: configured.append((serial, w, h))
    surface.commit()
    while not configured:
        display.dispatch(block=True)
    serial, width, h = configured[-1]
    layer.ack_configure(serial)
    width = min(width, 4096)  # a configured width beyond any screen: draw what can be seen
    size = width * h * 4
    fd = os.memfd_create("panel")
    os.ftruncate(fd, size)
    with mmap.mmap(fd, size) as mm:
        mm.write(b"\x00\x00\xff\xff" * (width * h))  # ARGB8888 little-endian: opaque red
    pool = found["wl_shm"].create_pool(fd, size)  # type: ignore[attr-defined]
    buffer = pool.create_buffer(0, width, h, width * 4, WlShm.format.argb8888.value)
    surface.attach(buffer, 0, 0)
    surface.damage_buffer(0, 0, width, h)
    surface.commit()
    display.roundtrip()
    print(f"mapped {width}x{h}", flush=True)
    while display.dispatch(block=True) >= 0:
        pass
    return 0


if __name__ == "__main__":
    os._exit(main())
