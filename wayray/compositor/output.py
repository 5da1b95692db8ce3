"""The session's one output: wl_output and zxdg_output_v1, resizable at runtime.

The output is whatever screen the viewer has. Its size in pixels and its integer scale change when a
viewer with a different screen attaches; every bound wl_output and xdg_output hears the new mode,
and the window manager re-configures maximized and fullscreen windows.
"""

from __future__ import annotations

from typing import Protocol

from pywayland.protocol.wayland import WlOutput
from pywayland.protocol.xdg_output_unstable_v1 import ZxdgOutputManagerV1, ZxdgOutputV1

from wayray.compositor.geometry import Rect
from wayray.wayland.server import NewId, Resource

DPI = 96  # reported physical size assumes this, so DPI-aware clients (foot) size fonts sensibly


class OutputHost(Protocol):
    """What the output needs of the compositor (``Core``)."""

    def output_bound(self, resource: OutputResource) -> None:
        """A client bound wl_output: its surfaces on the output may now be told they entered it."""


class Output:
    """Mode and scale of the output, and the resources clients bound to it."""

    name = "WAYRAY-1"
    make = "WayRay"
    model = "session output"

    def __init__(self, host: OutputHost, width: int, height: int, scale: int, refresh_hz: float) -> None:
        self.host = host
        self.width = width
        self.height = height
        self.scale = scale
        self.refresh_mhz = round(refresh_hz * 1000)
        self.resources: list[OutputResource] = []
        self.xdg_outputs: list[XdgOutput] = []

    @property
    def description(self) -> str:
        return f"WayRay session output {self.width}x{self.height}"

    @property
    def logical(self) -> Rect:
        """The output in layout (logical) coordinates."""
        return Rect(0, 0, self.width // self.scale, self.height // self.scale)

    def resize(self, width: int, height: int, scale: int) -> None:
        self.width, self.height, self.scale = width, height, scale
        for res in list(self.resources):
            res.send_state()
        for xo in list(self.xdg_outputs):
            xo.send_state()
        for res in list(self.resources):
            res.post("done")

    def resources_for(self, client: object) -> list[OutputResource]:
        return [r for r in self.resources if r.client is client]


class OutputResource(Resource):
    interface = WlOutput

    def __init__(self, new_id: NewId, output: Output) -> None:
        super().__init__(new_id)
        self.output = output
        output.resources.append(self)
        self.send_state()
        self.post("done")
        output.host.output_bound(self)

    def send_state(self) -> None:
        o = self.output
        self.post(
            "geometry",
            0,
            0,
            round(o.width * 25.4 / DPI),
            round(o.height * 25.4 / DPI),
            WlOutput.subpixel.unknown,
            o.make,
            o.model,
            WlOutput.transform.normal,
        )
        self.post("mode", WlOutput.mode.current | WlOutput.mode.preferred, o.width, o.height, o.refresh_mhz)
        self.post("scale", o.scale)
        self.post("name", o.name)
        self.post("description", o.description)

    def release(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self in self.output.resources:
            self.output.resources.remove(self)


class XdgOutputManager(Resource):
    interface = ZxdgOutputManagerV1

    def __init__(self, new_id: NewId, output: Output) -> None:
        super().__init__(new_id)
        self.output = output

    def destroy(self) -> None:
        pass

    def get_xdg_output(self, id: NewId, output: OutputResource) -> None:
        XdgOutput(id, self.output, output)


class XdgOutput(Resource):
    interface = ZxdgOutputV1

    def __init__(self, new_id: NewId, output: Output, wl_output: OutputResource) -> None:
        super().__init__(new_id)
        self.output = output
        self.wl_output = wl_output
        output.xdg_outputs.append(self)
        self.send_state()
        if self.version >= 3:
            wl_output.post("done")  # v3: wl_output.done ends the batch, xdg_output.done is deprecated

    def send_state(self) -> None:
        logical = self.output.logical
        self.post("logical_position", logical.x, logical.y)
        self.post("logical_size", logical.width, logical.height)
        if self.version < 3 or not self.wl_output.supports("name"):
            self.post("name", self.output.name)
            self.post("description", self.output.description)
        if self.version < 3:
            self.post("done")

    def destroy(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self in self.output.xdg_outputs:
            self.output.xdg_outputs.remove(self)
