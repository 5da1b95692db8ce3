"""A client that lets the person resize it from its top-left corner and, like a client busy drawing
on a loaded machine, draws the sizes it was asked for late: only once the drag is over, first one
from the middle of the drag, then the last.

Usage: lagging_resize.py. It maps a 300x200 window and prints "mapped"; on the first button press it
asks for an interactive resize from its top-left corner ("resizing"). It keeps the configures of the
drag unanswered; when one without the resizing state comes (the drag is over) it acks and draws one
from the middle of the drag ("late WxH"), then the newest ("done WxH"), and stays until killed.
"""

from __future__ import annotations

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from misbehave import Client  # noqa: E402

RESIZING = 3  # xdg_toplevel.state.resizing
TOP_LEFT = 5  # xdg_toplevel.resize_edge.top_left


def main() -> None:
    c = Client()
    pointer = c.globals["wl_seat"].get_pointer()
    surface, xdg, top = c.toplevel()
    #: (serial, width, height, resizing) of every configure, in order.
    configures: list[tuple[int, int, int, bool]] = []
    size: list[tuple[int, int, bool]] = []

    def on_toplevel_configure(_t, width: int, height: int, states: bytes) -> None:  # type: ignore[no-untyped-def]
        size[:] = [(width, height, RESIZING in struct.unpack(f"<{len(states) // 4}I", states))]

    def on_configure(_x, serial: int) -> None:  # type: ignore[no-untyped-def]
        configures.append((serial, *size[0]))

    top.dispatcher["configure"] = on_toplevel_configure
    xdg.dispatcher["configure"] = on_configure

    def draw(serial: int, width: int, height: int) -> None:
        xdg.ack_configure(serial)
        xdg.set_window_geometry(0, 0, width, height)
        surface.attach(c.buffer(width, height), 0, 0)
        surface.damage(0, 0, width, height)
        surface.commit()
        c.display.roundtrip()

    surface.commit()
    c.display.roundtrip()
    draw(configures[-1][0], 300, 200)
    print("mapped", flush=True)

    def on_button(_p, serial: int, _time: int, _button: int, state: int) -> None:  # type: ignore[no-untyped-def]
        if state == 1 and not started:
            started.append(serial)
            top.resize(c.globals["wl_seat"], serial, TOP_LEFT)
            print("resizing", flush=True)

    started: list[int] = []
    pointer.dispatcher["button"] = on_button
    while not (started and any(r for *_s, r in configures) and not configures[-1][3]):
        c.display.dispatch(block=True)
    drag = [cf for cf in configures if cf[3]]
    serial, width, height, _ = drag[len(drag) // 2]
    draw(serial, width, height)
    print(f"late {width}x{height}", flush=True)
    serial, width, height, _ = configures[-1]
    draw(serial, width, height)
    print(f"done {width}x{height}", flush=True)
    while True:
        c.display.dispatch(block=True)


if __name__ == "__main__":
    main()
