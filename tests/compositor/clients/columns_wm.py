"""A window manager speaking wayray_wm_v1 for the tests: every mapped window in a column of its own.

Usage: columns_wm.py STATE_DIR [--ignore-pings] [--huge]. The compositor starts it as the session's window
manager (its connection is WAYLAND_SOCKET). It counts its starts in STATE_DIR/starts; from the second
start on it waits for STATE_DIR/go to exist before it binds (so a test can look at the session under
the built-in WM in between). Windows are laid out left to right in the order the WM learnt of them,
right to left on even starts, each in an equal column of the usable area, and the newest is focused.
It prints "bound N" when it has bound (N windows known), "layout A,B,..." (app ids, left to right)
after each layout. --ignore-pings: never answer a ping (a hung WM). --huge: asks for windows of
100000 x 100000 (a protocol error). An application's move request is granted (begin_move), and
every position the compositor reports is appended to STATE_DIR/positions ("APP_ID X Y").
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pywayland.client import Display

from wayray.wayland.protocols.generated.wayray_wm_v1 import WayrayWmManagerV1


class ColumnsWm:
    def __init__(self, state: Path, reverse: bool, ignore_pings: bool, huge: bool = False) -> None:
        self.state = state
        self.huge = huge
        self.reverse = reverse
        self.ignore_pings = ignore_pings
        self.area = [0, 0, 0, 0]
        self.windows: list[dict[str, object]] = []  # in the order learnt

    def layout(self) -> None:
        shown = [w for w in self.windows if w["mapped"]]
        if self.reverse:
            shown.reverse()
        x, y, width, height = self.area
        if not shown or not width:
            return
        col = width // len(shown)
        for i, w in enumerate(shown):
            cw = col if i < len(shown) - 1 else width - col * i
            cw = 100000 if self.huge else cw
            t = int(w["title_bar"])  # type: ignore[call-overload]
            w["proxy"].set_geometry(x + col * i, y + t, cw, height - t)  # type: ignore[attr-defined]
        print("layout " + ",".join(str(w["app_id"]) for w in shown), flush=True)

    def on_window(self, mgr, proxy):  # type: ignore[no-untyped-def]
        w: dict[str, object] = {"proxy": proxy, "app_id": "", "mapped": False, "new": False, "title_bar": 0}
        self.windows.append(w)

        def on_app_id(p, app_id):  # type: ignore[no-untyped-def]
            w["app_id"] = app_id

        def on_mapped(p, mapped=True):  # type: ignore[no-untyped-def]
            w["mapped"] = mapped
            w["new"] = True

        def on_done(p):  # type: ignore[no-untyped-def]
            if w["new"]:
                w["new"] = False
                self.layout()
                if w["mapped"]:
                    p.focus()

        def on_closed(p):  # type: ignore[no-untyped-def]
            self.windows.remove(w)
            p.destroy()
            self.layout()

        proxy.dispatcher["app_id"] = on_app_id
        proxy.dispatcher["title_bar"] = lambda p, height: w.update(title_bar=height, new=w["mapped"])
        proxy.dispatcher["mapped"] = on_mapped
        proxy.dispatcher["unmapped"] = lambda p: on_mapped(p, False)
        proxy.dispatcher["done"] = on_done
        proxy.dispatcher["closed"] = on_closed
        proxy.dispatcher["clicked"] = lambda p: p.focus()
        proxy.dispatcher["request_move"] = lambda p: p.begin_move()

        def on_position(p, x, y):  # type: ignore[no-untyped-def]
            with open(self.state / "positions", "a") as f:
                f.write(f"{w['app_id']} {x} {y}\n")

        proxy.dispatcher["position"] = on_position

    def on_area(self, mgr, x, y, width, height):  # type: ignore[no-untyped-def]
        self.area[:] = [x, y, width, height]
        self.layout()

    def on_ping(self, mgr, serial):  # type: ignore[no-untyped-def]
        if not self.ignore_pings:
            mgr.pong(serial)


def main() -> int:
    state = Path(sys.argv[1])
    counter = state / "starts"
    starts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(starts))
    if starts > 1:
        while not (state / "go").exists():
            time.sleep(0.05)
    wm = ColumnsWm(
        state, reverse=starts % 2 == 0, ignore_pings="--ignore-pings" in sys.argv, huge="--huge" in sys.argv
    )

    display = Display()
    display.connect()
    registry = display.get_registry()
    found: dict[str, object] = {}

    def on_global(reg, name, interface, version):  # type: ignore[no-untyped-def]
        if interface == "wayray_wm_manager_v1":
            (state / "global").write_text(str(name))  # for the hostile client's test
            found["wm"] = reg.bind(name, WayrayWmManagerV1, 1)

    registry.dispatcher["global"] = on_global
    display.roundtrip()
    manager = found["wm"]
    manager.dispatcher["window"] = wm.on_window  # type: ignore[attr-defined]
    manager.dispatcher["usable_area"] = wm.on_area  # type: ignore[attr-defined]
    manager.dispatcher["ping"] = wm.on_ping  # type: ignore[attr-defined]
    display.roundtrip()
    print(f"bound {len(wm.windows)}", flush=True)
    wm.layout()
    while display.dispatch(block=True) >= 0:
        pass
    return 0


if __name__ == "__main__":
    os._exit(main())
