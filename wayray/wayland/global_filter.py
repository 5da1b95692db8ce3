"""Globals only some clients see: ``restrict(glob, visible_to)`` over libwayland's global filter.

A restricted global is missing from the registry of every client ``visible_to`` refuses, and such a
client binding it anyway gets libwayland's "invalid global" protocol error. ``xwayland_shell_v1`` is
offered to the session's Xwayland only this way (docs/xwayland.md §4). Globals not restricted are
seen by every client, as without a filter.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from wayray.wayland.libwayland import address, ffi, lib
from wayray.wayland.server import Client, Display, Global

log = logging.getLogger(__name__)


class _Filter:
    """The filter of one display: its restricted globals by ``wl_global`` address."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.globals: dict[int, tuple[Global, Callable[[Client], bool]]] = {}
        self.handle = ffi.new_handle(self)
        lib.wl_display_set_global_filter(display.ptr, _global_filter, self.handle)


_filters: weakref.WeakKeyDictionary[Display, _Filter] = weakref.WeakKeyDictionary()


def restrict(glob: Global, visible_to: Callable[[Client], bool]) -> None:
    """Let ``visible_to(client)`` decide which clients see ``glob``."""
    display = glob.display
    state = _filters.get(display)
    if state is None:
        state = _filters[display] = _Filter(display)
    state.globals[address(glob.ptr)] = (glob, visible_to)


@ffi.callback("_Bool(const struct wl_client *, const struct wl_global *, void *)")
def _global_filter(c_client: Any, c_global: Any, data: Any) -> bool:
    state: _Filter = ffi.from_handle(data)
    key = address(c_global)
    entry = state.globals.get(key)
    if entry is None:
        return True
    glob, visible_to = entry
    if glob.ptr is None or address(glob.ptr) != key:  # destroyed, its address reused since
        del state.globals[key]
        return True
    client = state.display.client(ffi.cast("struct wl_client *", c_client))
    try:
        return bool(visible_to(client))
    except Exception:
        log.exception("compositor bug deciding whether %r sees %s", client, glob.name)
        return False
