"""What every window manager shipped with WayRay does first: connect to the session's compositor
and bind ``wayray_wm_manager_v1`` (docs/wm-protocol.md), saying clearly why when it cannot."""

from __future__ import annotations

from typing import Any

from wayray.common.errors import WayRayError


def bind_manager(program: str, version: int) -> tuple[Any, Any, Any]:
    """Connect on ``WAYLAND_DISPLAY``/``WAYLAND_SOCKET`` and bind the manager at ``version``: the
    display, its registry (kept alive: pywayland finds the display of new objects through it) and
    the manager. WayRayError when this is no WayRay session or not the WM the session started."""
    from pywayland.client import Display

    from wayray.wayland.protocols.generated.wayray_wm_v1 import WayrayWmManagerV1

    display = Display()
    try:
        display.connect()
    except Exception as err:
        raise WayRayError(
            f"cannot connect to the session's compositor: {err}",
            hint=f"{program} is started by a WayRay session (session.toml: window_manager)",
        ) from None
    registry = display.get_registry()
    found: dict[str, Any] = {}

    def on_global(reg: Any, name: int, interface: str, offered: int) -> None:
        if interface == "wayray_wm_manager_v1" and offered < version:
            found["old"] = offered
        elif interface == "wayray_wm_manager_v1":
            found["manager"] = reg.bind(name, WayrayWmManagerV1, version)

    registry.dispatcher["global"] = on_global
    display.roundtrip()
    if "old" in found:
        raise WayRayError(
            f"the compositor offers wayray_wm_manager_v1 version {found['old']}; {program} needs "
            f"version {version}",
            hint="the session's compositor is older than this window manager: restart the session "
            "after an upgrade",
        )
    if "manager" not in found:
        raise WayRayError(
            "the compositor offers no wayray_wm_manager_v1: this is not a WayRay session, or not the "
            "window manager it started (it offers the protocol to that one only)",
            hint=f'set window_manager = "{program}" in session.toml',
        )
    return display, registry, found["manager"]


def check_accepted(display: Any, program: str) -> None:
    """A round trip after the first requests: a protocol error means the compositor refused us."""
    if display.roundtrip() < 0:
        raise WayRayError(
            f"the compositor refused {program} as the window manager (protocol error)",
            hint="only the program session.toml's window_manager names, started by the session, may "
            "manage windows",
        )
