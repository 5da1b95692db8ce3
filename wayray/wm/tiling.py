"""``wr-wm-tiling``: a small tiling window manager over wayray_wm_v1 (docs/wm-protocol.md §8).

Each workspace has a master window on the left (``master_ratio`` of the width) and the others stacked
on the right, in equal heights. New windows join the stack and get the focus; dialogs and windows of
a fixed size float, centred over their parent. Key bindings come from ``wm-tiling.toml``.

The session compositor starts it (session.toml: ``window_manager = "wr-wm-tiling"``) on the one
connection that may manage windows; started any other way it cannot bind and says so.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wayray.common.errors import UsageError, cli_entry
from wayray.common.log import setup
from wayray.common.xdg import config_home
from wayray.wm.client import bind_manager, check_accepted
from wayray.wm.tiling_config import (
    ACTIONS,
    WORKSPACES,
    Binding,
    ConfigError,
    TilingConfig,
    default_config,
    load_config,
)

log = logging.getLogger("wr-wm-tiling")


@dataclass(eq=False)
class Win:
    proxy: Any
    app_id: str = ""
    title: str = ""
    parent: Win | None = None
    min_size: tuple[int, int] = (0, 0)
    max_size: tuple[int, int] = (0, 0)
    size: tuple[int, int] = (0, 0)
    mapped: bool = False
    workspace: int = 1
    fullscreen: bool = False
    changed: bool = False  # mapped or unmapped since the last done
    title_bar: int = 0  # the compositor's title bar above it
    relayout: bool = False  # its title bar changed since the last done

    @property
    def floating(self) -> bool:
        fixed = self.min_size == self.max_size and self.min_size[0] > 0
        return self.parent is not None or fixed


@dataclass
class Workspace:
    windows: list[Win] = field(default_factory=list)  # tiled ones: master first
    focused: Win | None = None


class TilingWM:
    """The WM's state and decisions; ``proxy`` calls are wayray_wm_v1 requests."""

    def __init__(self, config: TilingConfig, manager: Any) -> None:
        self.config = config
        self.manager = manager
        self.ratio = config.master_ratio
        self.area = (0, 0, 0, 0)
        self.windows: list[Win] = []
        self.spaces = {n: Workspace() for n in range(1, WORKSPACES + 1)}
        self.current = 1
        self.children: list[subprocess.Popen[bytes]] = []
        self.bindings: list[Any] = []  # the wayray_wm_binding_v1 objects (kept alive)
        self.registry: Any = None

    # Layout ---------------------------------------------------------------------------------------

    def arrange(self) -> None:
        x, y, width, height = self.area
        if not width or not height:
            return
        space = self.spaces[self.current]
        tiled = [w for w in space.windows if w.mapped and not w.fullscreen]
        gap = self.config.gap
        if len(tiled) == 1:
            self._place(tiled[0], x + gap, y + gap, width - 2 * gap, height - 2 * gap)
        elif tiled:
            mw = int(width * self.ratio)
            self._place(tiled[0], x + gap, y + gap, mw - 2 * gap, height - 2 * gap)
            rest = tiled[1:]
            each = height // len(rest)
            for i, w in enumerate(rest):
                h = each if i < len(rest) - 1 else height - each * i
                self._place(w, x + mw + gap, y + i * each + gap, width - mw - 2 * gap, h - 2 * gap)
        for w in self.windows:
            if w.mapped and w.floating and w.workspace == self.current:
                self._float(w)

    def _place(self, w: Win, x: int, y: int, width: int, height: int) -> None:
        """Give ``w`` the cell (x, y, width, height), its server-side title bar included."""
        t = w.title_bar
        w.proxy.set_geometry(x, y + t, max(1, width), max(1, height - t))

    def _float(self, w: Win) -> None:
        """Centred on the usable area at its own size."""
        x, y, width, height = self.area
        fw, fh = w.size if w.size != (0, 0) else w.min_size
        w.proxy.set_geometry(x + (width - fw) // 2, y + (height - fh) // 2, 0, 0)
        w.proxy.raise_to_top()

    # Focus ----------------------------------------------------------------------------------------

    def focus(self, w: Win | None) -> None:
        space = self.spaces[self.current]
        space.focused = w
        if w is not None:
            w.proxy.focus()
            if w.floating or w.fullscreen:
                w.proxy.raise_to_top()

    def activated(self, w: Win) -> None:
        """The compositor says ``w`` is the active window (after our focus, or its own Alt+Tab)."""
        if w.workspace == self.current:
            self.spaces[self.current].focused = w

    def _visible(self) -> list[Win]:
        space = self.spaces[self.current]
        floating = [w for w in self.windows if w.mapped and w.floating and w.workspace == self.current]
        return [w for w in space.windows if w.mapped] + floating

    def focus_step(self, step: int) -> None:
        shown = self._visible()
        if not shown:
            return
        cur = self.spaces[self.current].focused
        i = shown.index(cur) if cur in shown else -1
        self.focus(shown[(i + step) % len(shown)])

    # Windows --------------------------------------------------------------------------------------

    def window_mapped(self, w: Win) -> None:
        w.workspace = self.current
        w.proxy.set_workspace(self.current - 1)
        if not w.floating:
            self.spaces[self.current].windows.append(w)
        self.arrange()
        self.focus(w)

    def window_unmapped(self, w: Win) -> None:
        space = self.spaces[w.workspace]
        if w in space.windows:
            space.windows.remove(w)
        if space.focused is w:
            space.focused = None
            if w.workspace == self.current:
                shown = self._visible()
                self.focus(shown[-1] if shown else None)
        self.arrange()

    def window_closed(self, w: Win) -> None:
        if w.mapped:
            w.mapped = False
            self.window_unmapped(w)
        if w in self.windows:
            self.windows.remove(w)
        for other in self.windows:
            if other.parent is w:
                other.parent = None

    # Actions --------------------------------------------------------------------------------------

    def run(self, binding: Binding) -> None:
        log.debug("%s: %s", binding.chord, binding.action)
        space = self.spaces[self.current]
        cur = space.focused
        action, arg = binding.action, binding.argument
        if action == "terminal":
            self.spawn(self.config.terminal)
        elif action == "focus_next":
            self.focus_step(1)
        elif action == "focus_previous":
            self.focus_step(-1)
        elif action == "swap_master" and cur in space.windows and len(space.windows) > 1:
            assert cur is not None
            i = space.windows.index(cur)
            j = 1 if i == 0 else 0
            space.windows[i], space.windows[j] = space.windows[j], space.windows[i]
            self.arrange()
        elif action == "close" and cur is not None:
            cur.proxy.close()
        elif action == "fullscreen" and cur is not None:
            self.set_fullscreen(cur, not cur.fullscreen)
        elif action in ("grow_master", "shrink_master"):
            self.ratio = min(0.9, max(0.1, self.ratio + (0.05 if action == "grow_master" else -0.05)))
            self.arrange()
        elif action == "workspace" and arg is not None:
            self.show(arg)
        elif action == "move_to_workspace" and arg is not None and cur is not None:
            self.move_to(cur, arg)

    def set_fullscreen(self, w: Win, on: bool) -> None:
        w.fullscreen = on
        w.proxy.set_fullscreen(int(on))
        if on:
            w.proxy.raise_to_top()
        self.arrange()

    def show(self, n: int) -> None:
        if n == self.current:
            return
        self.current = n
        self.manager.show_workspace(n - 1)  # the protocol counts from 0
        self.arrange()
        space = self.spaces[n]
        shown = self._visible()
        self.focus(space.focused if space.focused in shown else (shown[-1] if shown else None))

    def move_to(self, w: Win, n: int) -> None:
        if n == w.workspace:
            return
        old = self.spaces[w.workspace]
        if w in old.windows:
            old.windows.remove(w)
            self.spaces[n].windows.append(w)
        if old.focused is w:
            old.focused = None
        w.workspace = n
        w.proxy.set_workspace(n - 1)
        self.spaces[n].focused = w
        self.arrange()
        shown = self._visible()
        self.focus(shown[-1] if shown else None)

    def spawn(self, argv: tuple[str, ...]) -> None:
        try:
            self.children.append(
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            )
        except OSError as err:
            log.error("cannot start %s: %s", argv[0], err.strerror or err)

    def reap(self) -> None:
        self.children = [c for c in self.children if c.poll() is None]


def _wire_window(wm: TilingWM, proxy: Any) -> None:
    """Listen to one wayray_wm_window_v1."""
    w = Win(proxy)
    wm.windows.append(w)

    def set_attr(name: str) -> Any:
        return lambda p, value: setattr(w, name, value)

    def on_parent(p: Any, parent: Any) -> None:
        w.parent = next((x for x in wm.windows if x.proxy == parent), None) if parent is not None else None

    def on_mapped(p: Any, mapped: bool = True) -> None:
        w.mapped = mapped
        w.changed = True

    def on_title_bar(p: Any, height: int) -> None:
        w.relayout = w.relayout or height != w.title_bar
        w.title_bar = height

    def on_done(p: Any) -> None:
        if w.changed:
            w.changed = False
            w.relayout = False
            (wm.window_mapped if w.mapped else wm.window_unmapped)(w)
        elif w.relayout:
            w.relayout = False
            if w.mapped:
                wm.arrange()

    def on_closed(p: Any) -> None:
        wm.window_closed(w)
        p.destroy()

    def on_fullscreen(p: Any, on: int) -> None:
        wm.set_fullscreen(w, bool(on))

    def on_activate(p: Any) -> None:
        if w.workspace != wm.current:
            wm.show(w.workspace)
        wm.focus(w)

    d = proxy.dispatcher
    d["app_id"] = set_attr("app_id")
    d["title"] = set_attr("title")
    d["parent"] = on_parent
    d["title_bar"] = on_title_bar
    d["size_hints"] = lambda p, a, b, c, e: w.__dict__.update(min_size=(a, b), max_size=(c, e))
    d["size"] = lambda p, a, b: setattr(w, "size", (a, b))
    d["mapped"] = on_mapped
    d["unmapped"] = lambda p: on_mapped(p, False)
    d["done"] = on_done
    d["closed"] = on_closed
    d["request_fullscreen"] = on_fullscreen
    d["request_activate"] = on_activate
    d["clicked"] = lambda p: wm.focus(w)
    d["activated"] = lambda p: wm.activated(w)


def connect(config: TilingConfig) -> tuple[Any, TilingWM]:
    """Bind wayray_wm_manager_v1 on WAYLAND_SOCKET; WayRayError when this is no WayRay session."""
    display, registry, manager = bind_manager("wr-wm-tiling", 1)
    wm = TilingWM(config, manager)
    wm.registry = registry  # pywayland finds the display of new objects through a live registry
    for b in config.bindings:
        binding = manager.bind_key(b.keysym, b.modifiers)
        binding.dispatcher["pressed"] = lambda p, b=b: wm.run(b)
        wm.bindings.append(binding)

    def on_area(m: Any, x: int, y: int, width: int, height: int) -> None:
        wm.area = (x, y, width, height)
        wm.arrange()

    manager.dispatcher["usable_area"] = on_area
    manager.dispatcher["window"] = lambda m, proxy: _wire_window(wm, proxy)

    def on_ping(m: Any, serial: int) -> None:
        wm.reap()
        m.pong(serial)

    manager.dispatcher["ping"] = on_ping
    check_accepted(display, "wr-wm-tiling")
    return display, wm


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wr-wm-tiling",
        description="WayRay's tiling window manager: master and stack, nine workspaces, key bindings "
        'from a file. A WayRay session starts it: session.toml\'s window_manager = "wr-wm-tiling".',
        epilog="actions for [keys]: " + ", ".join(f"{a} N" if arg else a for a, arg in ACTIONS.items()),
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings and key bindings (default: $XDG_CONFIG_HOME/wayray/wm-tiling.toml)",
    )
    p.add_argument("--check", action="store_true", help="check the configuration file and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    return p


@cli_entry("wr-wm-tiling")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup("wr-wm-tiling", verbose=args.verbose)
    path = args.config or config_home() / "wayray" / "wm-tiling.toml"
    if args.config is not None and not args.config.exists():
        raise UsageError(f"--config {args.config}: no such file")
    try:
        config = load_config(path)
    except ConfigError as err:
        if args.check:
            raise
        log.error("%s%s; using the default settings", err.message, f" ({err.hint})" if err.hint else "")
        config = default_config()
    if args.check:
        print(f"{path}: OK ({len(config.bindings)} key bindings)")
        return 0
    display, wm = connect(config)
    log.info("managing windows (%d key bindings, configuration %s)", len(config.bindings), path)
    while display.dispatch(block=True) >= 0:
        wm.reap()
    log.info("the session's compositor closed the connection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
