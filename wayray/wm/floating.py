"""``wr-wm-floating``: the built-in floating window manager's rules as a wayray_wm_v1 client
(docs/wm-protocol.md §6, §8).

It decides what the compositor's own floating WM decides, through the protocol: a new window is
centred on the usable area (the first) or cascaded 32 pixels from the last one placed (back to the
top-left corner when it would leave the area), a dialog is centred over its parent; a window gets
the focus and goes on top when it is mapped and when it is clicked; a drag of the compositor's
title bar moves it and a double click there maximizes or restores it; Super+Left and Super+Right snap
the active window to that half of the usable area, Super+Up maximizes it, Super+Down restores it;
applications' maximize, fullscreen, minimize, activate, move and resize requests are honoured.
Alt+Tab and Alt+F4 stay the compositor's (it cycles in most-recently-used order until Alt is
released, which the protocol does not tell a WM); the WM hears where the focus went.

It is the reference for WM writers who want a floating desktop and the proof that the protocol
carries the built-in WM's behaviour (tests/compositor/test_wm_floating.py runs one scenario under
both and compares the scene and the pixels).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Any

from wayray.common.errors import cli_entry
from wayray.common.log import setup
from wayray.wm.client import bind_manager, check_accepted

log = logging.getLogger("wr-wm-floating")

CASCADE_STEP = 32  # as the built-in WM (compositor/wm.py)
KEY_LEFT, KEY_UP, KEY_RIGHT, KEY_DOWN = 0xFF51, 0xFF52, 0xFF53, 0xFF54  # XKB keysyms
MOD_SUPER = 64  # wayray_wm_manager_v1.modifier.super


@dataclass(eq=False)
class Win:
    proxy: Any
    app_id: str = ""
    parent: Win | None = None
    title_bar: int = 0
    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0
    mapped: bool = False
    changed: bool = False  # mapped or unmapped since the last done
    maximized: bool = False  # as this WM set it
    fullscreen: bool = False
    minimized: bool = False  # hidden on the application's request
    snapped: tuple[int, int, int, int] | None = None  # where it was before Super+Left/Right

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)


class FloatingWM:
    """The WM's state and decisions; ``proxy`` calls are wayray_wm_v1 requests."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.area = (0, 0, 0, 0)
        self.windows: list[Win] = []
        self.focused: Win | None = None
        self.last_placed: Win | None = None
        self.ready = False  # the windows that existed when we bound have been told
        self.bindings: list[Any] = []
        self.registry: Any = None

    # Placement ------------------------------------------------------------------------------------

    def place(self, w: Win) -> None:
        """The built-in rule: over the parent, else centred (the first) or cascaded."""
        ax, ay, aw, ah = self.area
        ax2, ay2 = ax + aw, ay + ah
        parent = w.parent
        if parent is not None and parent.mapped:
            x = parent.x + (parent.width - w.width) // 2
            y = parent.y + (parent.height - w.height) // 2
        elif self.last_placed is None or not self.last_placed.mapped:
            x = ax + (aw - w.width) // 2
            y = ay + (ah - w.height) // 2
        else:
            x = self.last_placed.x + CASCADE_STEP
            y = self.last_placed.y + CASCADE_STEP
            if x + w.width > ax2 or y + w.height > ay2:
                x, y = ax + CASCADE_STEP, ay + CASCADE_STEP
        # Keep the top-left corner (where title bars are) in the usable area.
        w.x = max(ax, min(x, ax2 - min(w.width, aw)))
        w.y = max(ay + w.title_bar, min(y, ay2 - min(w.height, ah)))
        self.last_placed = w
        log.debug("placing %s at %d,%d", w.app_id or "a window", w.x, w.y)
        w.proxy.set_geometry(w.x, w.y, 0, 0)

    # Focus ----------------------------------------------------------------------------------------

    def activate(self, w: Win) -> None:
        """Raise and focus (the compositor says ``activated``)."""
        w.proxy.raise_to_top()
        w.proxy.focus()

    def window_mapped(self, w: Win) -> None:
        if not self.ready:
            # On screen before we bound (a restart): managed where it is. We are told of windows
            # oldest first, so the cascade goes on from the newest, as the compositor's did.
            self.last_placed = w
            return
        if not (w.maximized or w.fullscreen):
            self.place(w)
        self.activate(w)

    def window_unmapped(self, w: Win) -> None:
        w.snapped = None
        if self.focused is w:
            self.focused = None  # the compositor focuses the most recently used one

    def window_closed(self, w: Win) -> None:
        if w in self.windows:
            self.windows.remove(w)
        if self.focused is w:
            self.focused = None
        if self.last_placed is w:
            self.last_placed = None
        for other in self.windows:
            if other.parent is w:
                other.parent = None

    # Requests from applications -------------------------------------------------------------------

    def set_maximized(self, w: Win, on: bool) -> None:
        w.maximized = on
        w.proxy.set_maximized(int(on))

    def set_fullscreen(self, w: Win, on: bool) -> None:
        w.fullscreen = on
        w.proxy.set_fullscreen(int(on))

    def minimize(self, w: Win) -> None:
        w.minimized = True
        w.proxy.set_visible(0)

    def title_bar_pressed(self, w: Win, double_click: bool) -> None:
        """A press on the compositor's title bar (after ``clicked``): a double click toggles
        maximize, a press starts a move (the compositor moves no maximized window), as the built-in
        WM does."""
        if double_click:
            self.set_maximized(w, not w.maximized)
        elif not (w.maximized or w.fullscreen):
            w.proxy.begin_move()

    def request_move(self, w: Win) -> None:
        """The application drags its window by its own title bar: the compositor moves it, and one
        that is maximized it restores under the pointer first, as the built-in WM does; from then on
        it is not maximized for this WM either (Super+Down restores it from a snap, not from
        maximized)."""
        if w.fullscreen:
            return
        w.maximized = False
        w.proxy.begin_move()

    def request_activate(self, w: Win) -> None:
        if w.minimized:
            w.minimized = False
            w.proxy.set_visible(1)
        self.activate(w)

    # Key bindings ---------------------------------------------------------------------------------

    def super_key(self, keysym: int) -> None:
        """Super+arrows on the active window, as the built-in WM."""
        w = self.focused
        if w is None or w.fullscreen:
            return
        if keysym == KEY_UP:
            self.set_maximized(w, True)
        elif keysym == KEY_DOWN:
            if w.maximized:
                self.set_maximized(w, False)
            elif w.snapped is not None:
                back, w.snapped = w.snapped, None
                w.x, w.y = back[0], back[1]
                w.proxy.set_geometry(*back)
        else:
            self.snap(w, left=keysym == KEY_LEFT)

    def snap(self, w: Win, *, left: bool) -> None:
        """Fill the left or right half of the usable area (its title bar included)."""
        if w.maximized:
            self.set_maximized(w, False)
        if w.snapped is None:
            w.snapped = w.rect
        ax, ay, aw, ah = self.area
        half = aw // 2
        t = w.title_bar
        w.x = ax if left else ax + half
        w.y = ay + t
        w.proxy.set_geometry(w.x, w.y, half if left else aw - half, max(1, ah - t))


def _wire_window(wm: FloatingWM, proxy: Any) -> None:
    """Listen to one wayray_wm_window_v1."""
    w = Win(proxy)
    wm.windows.append(w)

    def on_parent(p: Any, parent: Any) -> None:
        w.parent = next((x for x in wm.windows if x.proxy == parent), None) if parent is not None else None

    def on_mapped(p: Any, mapped: bool = True) -> None:
        w.mapped = mapped
        w.changed = True

    def on_position(p: Any, x: int, y: int) -> None:
        w.x, w.y = x, y

    def on_size(p: Any, width: int, height: int) -> None:
        w.width, w.height = width, height

    def on_done(p: Any) -> None:
        if w.changed:
            w.changed = False
            (wm.window_mapped if w.mapped else wm.window_unmapped)(w)

    def on_closed(p: Any) -> None:
        wm.window_closed(w)
        p.destroy()

    def on_activated(p: Any) -> None:
        wm.focused = w

    d = proxy.dispatcher
    d["app_id"] = lambda p, app_id: setattr(w, "app_id", app_id)
    d["parent"] = on_parent
    d["title_bar"] = lambda p, height: setattr(w, "title_bar", height)
    d["position"] = on_position
    d["size"] = on_size
    d["mapped"] = on_mapped
    d["unmapped"] = lambda p: on_mapped(p, False)
    d["done"] = on_done
    d["closed"] = on_closed
    d["activated"] = on_activated
    d["clicked"] = lambda p: wm.activate(w)
    d["title_bar_pressed"] = lambda p, double_click: wm.title_bar_pressed(w, bool(double_click))
    d["request_activate"] = lambda p: wm.request_activate(w)
    d["request_maximized"] = lambda p, on: wm.set_maximized(w, bool(on))
    d["request_fullscreen"] = lambda p, on: wm.set_fullscreen(w, bool(on))
    d["request_minimize"] = lambda p: wm.minimize(w)
    d["request_move"] = lambda p: wm.request_move(w)
    d["request_resize"] = lambda p, edges: p.begin_resize(edges)


def connect() -> tuple[Any, FloatingWM]:
    """Bind wayray_wm_manager_v1 on WAYLAND_SOCKET; WayRayError when this is no WayRay session."""
    display, registry, manager = bind_manager("wr-wm-floating", 2)
    wm = FloatingWM(manager)
    wm.registry = registry  # pywayland finds the display of new objects through a live registry
    for keysym in (KEY_LEFT, KEY_RIGHT, KEY_UP, KEY_DOWN):
        binding = manager.bind_key(keysym, MOD_SUPER)
        binding.dispatcher["pressed"] = lambda p, keysym=keysym: wm.super_key(keysym)
        wm.bindings.append(binding)

    def on_area(m: Any, x: int, y: int, width: int, height: int) -> None:
        wm.area = (x, y, width, height)

    def on_workspace(m: Any, n: int) -> None:
        wm.ready = True  # the end of what the compositor tells on bind (docs/wm-protocol.md §3)

    manager.dispatcher["usable_area"] = on_area
    manager.dispatcher["window"] = lambda m, proxy: _wire_window(wm, proxy)
    manager.dispatcher["workspace"] = on_workspace
    manager.dispatcher["ping"] = lambda m, serial: m.pong(serial)
    check_accepted(display, "wr-wm-floating")
    return display, wm


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wr-wm-floating",
        description="WayRay's floating window manager as a wayray_wm_v1 client: the rules of the "
        "built-in one (new windows centred or cascaded, dialogs over their parent, click to focus "
        "and raise, Super+arrows to snap, maximize and restore). A WayRay session starts it: "
        'session.toml\'s window_manager = "wr-wm-floating". Alt+Tab and Alt+F4 stay the '
        "compositor's.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    return p


@cli_entry("wr-wm-floating")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup("wr-wm-floating", verbose=args.verbose)
    display, wm = connect()
    log.info("managing windows")
    while display.dispatch(block=True) >= 0:
        pass
    log.info("the session's compositor closed the connection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
