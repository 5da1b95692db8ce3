"""wrclient's display backends: ``headless`` (here, always available) and ``wayland`` (a window, written
on a small client toolkit; imported only when used). :func:`open_backend` picks one."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from wayray.client.backend import BackendOptions, DisplayBackend
from wayray.common.errors import WayRayError

WAYLAND_MODULE = "wayray.client.backends.wayland"


def wayland_display_available(env: dict[str, str] | None = None) -> str | None:
    """Why no Wayland window can be opened here, or None when a display seems to be there."""
    env = dict(os.environ) if env is None else env
    if env.get("WAYLAND_SOCKET"):
        return None
    name = env.get("WAYLAND_DISPLAY")
    if not name:
        return "WAYLAND_DISPLAY is not set (no Wayland session here)"
    path = Path(name) if name.startswith("/") else Path(env.get("XDG_RUNTIME_DIR") or "/nonexistent") / name
    if not path.exists():
        return f"the Wayland display {path} does not exist"
    return None


def wayland_backend_available() -> str | None:
    """Why the Wayland window backend cannot be used in this build, or None."""
    try:
        importlib.import_module(WAYLAND_MODULE)
    except ModuleNotFoundError as err:
        if err.name in (WAYLAND_MODULE, "wayray.client.backends.wayland"):
            return "this build of wrclient has no Wayland window backend"
        return f"the Wayland window backend needs {err.name}, which is not installed"
    return None


def open_backend(options: BackendOptions) -> DisplayBackend:
    """The backend ``options`` ask for; a clear error (suggesting --headless) when a window is asked
    for and cannot be had."""
    if options.headless:
        from wayray.client.backends.headless import HeadlessBackend

        return HeadlessBackend(options)
    why = wayland_display_available() or wayland_backend_available()
    if why is not None:
        raise WayRayError(
            f"cannot open a window: {why}",
            hint="run with --headless to use the headless backend (framebuffer in memory, PNG snapshots)",
        )
    module = importlib.import_module(WAYLAND_MODULE)
    backend: DisplayBackend = module.WaylandBackend(options)
    return backend
