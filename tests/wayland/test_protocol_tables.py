"""The vendored protocol modules are what pywayland's scanner makes of their XML."""

from __future__ import annotations

from wayray.wayland.protocols import regenerate
from wayray.wayland.protocols.generated.wlr_layer_shell_unstable_v1 import (
    ZwlrLayerShellV1,
    ZwlrLayerSurfaceV1,
)
from wayray.wayland.server import InterfaceTable


def test_generated_modules_are_current() -> None:
    assert regenerate.main(["--check"]) == 0


def test_layer_shell_table_has_the_v4_messages() -> None:
    shell = InterfaceTable.of(ZwlrLayerShellV1)
    surface = InterfaceTable.of(ZwlrLayerSurfaceV1)
    assert (shell.name, shell.version) == ("zwlr_layer_shell_v1", 4)
    assert [m.name for m in shell.requests] == ["get_layer_surface", "destroy"]
    assert [m.name for m in surface.requests] == [
        "set_size",
        "set_anchor",
        "set_exclusive_zone",
        "set_margin",
        "set_keyboard_interactivity",
        "get_popup",
        "ack_configure",
        "destroy",
        "set_layer",
    ]
    assert [m.destructor for m in surface.requests].count(True) == 1
    assert [m.name for m in surface.events] == ["configure", "closed"]
