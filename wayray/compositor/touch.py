"""wl_touch: the viewer's touch points, each given to the surface under it where it went down.

A point stays with the surface it went down on until it is lifted, wherever it moves (as on a
desktop's touch screen); the first point down focuses and raises its window like a click, and a touch
outside an open menu closes the menu. Points that went down on nothing that takes touch (the
background, a server-side title bar) go nowhere until they are lifted. What a viewer gets wrong -- a
point that is down going down again, a motion or lift of a point that is not down, more than
:data:`MAX_TOUCH_POINTS` points -- is ignored, and the call says so (False) for the caller to log.

What touch needs of the seat is ``TouchSeat`` (the seat module imports this one, not the reverse).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pywayland.protocol.wayland import WlTouch

from wayray.compositor.surface import Surface
from wayray.compositor.titlebar import TitleBar
from wayray.wayland.server import Client, Display, NewId, Resource

if TYPE_CHECKING:
    from wayray.compositor.output import Output

#: Most touch points down at once: a viewer's further ones are ignored (a hand has ten fingers).
MAX_TOUCH_POINTS = 16


class _Popup(Protocol):
    @property
    def client(self) -> Client: ...


class _Host(Protocol):
    def surface_at(self, x: float, y: float) -> tuple[Surface, int, int] | None: ...

    def clicked(self, surface: Surface | None) -> None: ...


class TouchSeat(Protocol):
    """What touch needs of the seat: the scene and the WM's click (through its host), the popup
    grabs, the display's serials and the output's size."""

    @property
    def host(self) -> _Host: ...

    @property
    def display(self) -> Display: ...

    @property
    def output(self) -> Output: ...

    @property
    def popup_grabs(self) -> Sequence[_Popup]: ...

    def dismiss_popups(self) -> None: ...


def now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


class TouchResource(Resource):
    interface = WlTouch

    def __init__(self, new_id: NewId, touch: Touch) -> None:
        super().__init__(new_id)
        self.touch = touch

    def release(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self in self.touch.resources:
            self.touch.resources.remove(self)


@dataclass
class TouchPoint:
    """A touch point that is down: the surface it went down on (it stays there; None: on nothing that
    takes touch, or that surface is gone) and that surface's origin in layout coordinates."""

    surface: Surface | None
    origin: tuple[int, int] = (0, 0)


class Touch:
    """The seat's touch points and its clients' wl_touch objects."""

    def __init__(self, seat: TouchSeat) -> None:
        self.seat = seat
        self.resources: list[TouchResource] = []
        self.points: dict[int, TouchPoint] = {}  # by the viewer's id
        self.serials: dict[Client, int] = {}  # the last touch-down serial per client (popup grabs)
        self._framed: set[Client] = set()  # clients sent touch events since the last frame

    def _client_resources(self, client: Client) -> list[TouchResource]:
        return [r for r in self.resources if r.client is client]

    def _clamp(self, x: float, y: float) -> tuple[float, float]:
        out = self.seat.output.logical
        return (
            min(max(x, 0.0), max(0.0, out.width - 1 / 256)),
            min(max(y, 0.0), max(0.0, out.height - 1 / 256)),
        )

    def down(self, touch_id: int, x: float, y: float) -> bool:
        """A new point at layout (x, y); False when it is ignored (its id is down, too many points)."""
        if math.isnan(x) or math.isnan(y) or touch_id in self.points:
            return False
        if len(self.points) >= MAX_TOUCH_POINTS:
            return False
        seat = self.seat
        x, y = self._clamp(x, y)
        first = not self.points
        target = seat.host.surface_at(x, y)
        if seat.popup_grabs:
            grab_client = seat.popup_grabs[-1].client
            if target is None or target[0].client is not grab_client:
                seat.dismiss_popups()  # a touch outside the menu closes it, as a click does
                target = None
        if target is None or isinstance(target[0], TitleBar):
            self.points[touch_id] = TouchPoint(None)  # nothing there takes touch
            return True
        surface, ox, oy = target
        if first:
            seat.host.clicked(surface)  # the first finger focuses and raises, as a click does
        self.points[touch_id] = TouchPoint(surface, (ox, oy))
        serial = seat.display.next_serial()
        self.serials[surface.client] = serial
        t = now_ms()
        for r in self._client_resources(surface.client):
            r.post("down", serial, t, surface, touch_id, x - ox, y - oy)
        self._framed.add(surface.client)
        return True

    def motion(self, touch_id: int, x: float, y: float) -> bool:
        """Point ``touch_id`` moved; False when no such point is down (the motion is ignored)."""
        point = self.points.get(touch_id)
        if point is None or math.isnan(x) or math.isnan(y):
            return False
        surface = point.surface
        if surface is None or not surface.alive:
            return True
        x, y = self._clamp(x, y)
        ox, oy = point.origin
        t = now_ms()
        for r in self._client_resources(surface.client):
            r.post("motion", t, touch_id, x - ox, y - oy)
        self._framed.add(surface.client)
        return True

    def up(self, touch_id: int) -> bool:
        """Point ``touch_id`` was lifted; False when no such point is down."""
        point = self.points.pop(touch_id, None)
        if point is None:
            return False
        surface = point.surface
        if surface is not None and surface.alive:
            serial = self.seat.display.next_serial()
            t = now_ms()
            for r in self._client_resources(surface.client):
                r.post("up", serial, t, touch_id)
            self._framed.add(surface.client)
        return True

    def frame(self) -> None:
        """The touch events since the last frame belong together."""
        framed, self._framed = self._framed, set()
        for r in list(self.resources):
            if r.client in framed:
                r.post("frame")

    def cancel(self) -> None:
        """Every point is gone, none of it meant: its clients get wl_touch.cancel."""
        clients = {
            p.surface.client for p in self.points.values() if p.surface is not None and p.surface.alive
        }
        self.points.clear()
        self._framed.clear()
        for r in list(self.resources):
            if r.client in clients:
                r.post("cancel")

    def release_all(self) -> None:
        """The viewer went away: its fingers are gone."""
        if self.points:
            self.cancel()

    def surface_gone(self, surface: Surface) -> None:
        for point in self.points.values():
            if point.surface is surface:
                point.surface = None  # the point stays down, on nothing, until it is lifted

    def client_gone(self, client: Client) -> None:
        self._framed.discard(client)
        self.serials.pop(client, None)
