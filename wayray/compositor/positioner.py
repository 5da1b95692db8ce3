"""xdg_positioner: the resource, and its placement rules (anchor, gravity, offset, constraint adjustment).

``place(rules, bounds)`` (pure geometry) returns the popup's rectangle relative to its parent's window
geometry. ``bounds`` is the area the popup must stay within, in the same coordinates. The order of the
adjustments follows wlroots: flip when that removes the constraint on that axis, then slide, then resize.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from pywayland.protocol.xdg_shell import XdgPositioner

from wayray.compositor.geometry import Rect
from wayray.wayland.server import NewId, ProtocolError, Resource


class Anchor(enum.IntEnum):
    NONE = 0
    TOP = 1
    BOTTOM = 2
    LEFT = 3
    RIGHT = 4
    TOP_LEFT = 5
    BOTTOM_LEFT = 6
    TOP_RIGHT = 7
    BOTTOM_RIGHT = 8

    @property
    def left(self) -> bool:
        return self in (Anchor.LEFT, Anchor.TOP_LEFT, Anchor.BOTTOM_LEFT)

    @property
    def right(self) -> bool:
        return self in (Anchor.RIGHT, Anchor.TOP_RIGHT, Anchor.BOTTOM_RIGHT)

    @property
    def top(self) -> bool:
        return self in (Anchor.TOP, Anchor.TOP_LEFT, Anchor.TOP_RIGHT)

    @property
    def bottom(self) -> bool:
        return self in (Anchor.BOTTOM, Anchor.BOTTOM_LEFT, Anchor.BOTTOM_RIGHT)

    def flip_x(self) -> Anchor:
        return _FLIP_X.get(self, self)

    def flip_y(self) -> Anchor:
        return _FLIP_Y.get(self, self)


# Gravity uses the same values and names as Anchor.
Gravity = Anchor

_FLIP_X = {
    Anchor.LEFT: Anchor.RIGHT,
    Anchor.RIGHT: Anchor.LEFT,
    Anchor.TOP_LEFT: Anchor.TOP_RIGHT,
    Anchor.TOP_RIGHT: Anchor.TOP_LEFT,
    Anchor.BOTTOM_LEFT: Anchor.BOTTOM_RIGHT,
    Anchor.BOTTOM_RIGHT: Anchor.BOTTOM_LEFT,
}
_FLIP_Y = {
    Anchor.TOP: Anchor.BOTTOM,
    Anchor.BOTTOM: Anchor.TOP,
    Anchor.TOP_LEFT: Anchor.BOTTOM_LEFT,
    Anchor.BOTTOM_LEFT: Anchor.TOP_LEFT,
    Anchor.TOP_RIGHT: Anchor.BOTTOM_RIGHT,
    Anchor.BOTTOM_RIGHT: Anchor.TOP_RIGHT,
}


class Adjust(enum.IntFlag):
    NONE = 0
    SLIDE_X = 1
    SLIDE_Y = 2
    FLIP_X = 4
    FLIP_Y = 8
    RESIZE_X = 16
    RESIZE_Y = 32


@dataclass(frozen=True)
class PositionerRules:
    """A snapshot of an xdg_positioner's state."""

    width: int = 0
    height: int = 0
    anchor_rect: Rect | None = None
    anchor: Anchor = Anchor.NONE
    gravity: Anchor = Anchor.NONE
    adjust: Adjust = Adjust.NONE
    offset_x: int = 0
    offset_y: int = 0
    reactive: bool = False
    parent_size: tuple[int, int] | None = None
    parent_configure: int | None = None

    @property
    def complete(self) -> bool:
        return self.width > 0 and self.height > 0 and self.anchor_rect is not None


def unconstrained_place(rules: PositionerRules) -> Rect:
    """Where the rules put the popup with no constraint adjustment."""
    ar = rules.anchor_rect or Rect(0, 0, 0, 0)
    if rules.anchor.left:
        ax = ar.x
    elif rules.anchor.right:
        ax = ar.x2
    else:
        ax = ar.x + ar.width // 2
    if rules.anchor.top:
        ay = ar.y
    elif rules.anchor.bottom:
        ay = ar.y2
    else:
        ay = ar.y + ar.height // 2
    w, h = rules.width, rules.height
    if rules.gravity.left:
        x = ax - w
    elif rules.gravity.right:
        x = ax
    else:
        x = ax - w // 2
    if rules.gravity.top:
        y = ay - h
    elif rules.gravity.bottom:
        y = ay
    else:
        y = ay - h // 2
    return Rect(x + rules.offset_x, y + rules.offset_y, w, h)


def _constrained_x(box: Rect, bounds: Rect) -> bool:
    return box.x < bounds.x or box.x2 > bounds.x2


def _constrained_y(box: Rect, bounds: Rect) -> bool:
    return box.y < bounds.y or box.y2 > bounds.y2


def place(rules: PositionerRules, bounds: Rect) -> Rect:
    """The popup's rectangle after constraint adjustment, relative to the parent's window geometry."""
    box = unconstrained_place(rules)
    if not (_constrained_x(box, bounds) or _constrained_y(box, bounds)):
        return box
    box = _flip(rules, box, bounds)
    return _resize(rules, _slide(rules, box, bounds), bounds)


def _flip(rules: PositionerRules, box: Rect, bounds: Rect) -> Rect:
    """Flipped to the other side of the anchor, on each axis where allowed and where that fits."""
    if rules.adjust & Adjust.FLIP_X and _constrained_x(box, bounds):
        flipped = unconstrained_place(
            replace(
                rules, anchor=rules.anchor.flip_x(), gravity=rules.gravity.flip_x(), offset_x=-rules.offset_x
            )
        )
        if not _constrained_x(flipped, bounds):
            box = Rect(flipped.x, box.y, box.width, box.height)
    if rules.adjust & Adjust.FLIP_Y and _constrained_y(box, bounds):
        flipped = unconstrained_place(
            replace(
                rules, anchor=rules.anchor.flip_y(), gravity=rules.gravity.flip_y(), offset_y=-rules.offset_y
            )
        )
        if not _constrained_y(flipped, bounds):
            box = Rect(box.x, flipped.y, box.width, box.height)
    return box


def _slide(rules: PositionerRules, box: Rect, bounds: Rect) -> Rect:
    """Slid into the bounds on each axis where allowed (its start edge wins when it is too big)."""
    x, y = box.x, box.y
    if rules.adjust & Adjust.SLIDE_X:
        x = max(min(x, bounds.x2 - box.width), bounds.x)
    if rules.adjust & Adjust.SLIDE_Y:
        y = max(min(y, bounds.y2 - box.height), bounds.y)
    return Rect(x, y, box.width, box.height)


def _resize(rules: PositionerRules, box: Rect, bounds: Rect) -> Rect:
    """Cut to the bounds on each axis where allowed (unless nothing of it would be left)."""
    x, y, w, h = box.x, box.y, box.width, box.height
    if rules.adjust & Adjust.RESIZE_X:
        x1, x2 = max(x, bounds.x), min(x + w, bounds.x2)
        if x2 > x1:
            x, w = x1, x2 - x1
    if rules.adjust & Adjust.RESIZE_Y:
        y1, y2 = max(y, bounds.y), min(y + h, bounds.y2)
        if y2 > y1:
            y, h = y1, y2 - y1
    return Rect(x, y, w, h)


class Positioner(Resource):
    interface = XdgPositioner

    def __init__(self, new_id: NewId) -> None:
        super().__init__(new_id)
        self.rules = PositionerRules()

    def destroy(self) -> None:
        pass

    def set_size(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise ProtocolError(
                self, XdgPositioner.error.invalid_input, f"size {width}x{height} is not positive"
            )
        self.rules = replace(self.rules, width=width, height=height)

    def set_anchor_rect(self, x: int, y: int, width: int, height: int) -> None:
        if width < 0 or height < 0:
            raise ProtocolError(
                self, XdgPositioner.error.invalid_input, f"anchor rect {width}x{height} is negative"
            )
        self.rules = replace(self.rules, anchor_rect=Rect(x, y, width, height))

    def set_anchor(self, anchor: int) -> None:
        try:
            self.rules = replace(self.rules, anchor=Anchor(anchor))
        except ValueError:
            raise ProtocolError(self, XdgPositioner.error.invalid_input, f"no anchor {anchor}") from None

    def set_gravity(self, gravity: int) -> None:
        try:
            self.rules = replace(self.rules, gravity=Anchor(gravity))
        except ValueError:
            raise ProtocolError(self, XdgPositioner.error.invalid_input, f"no gravity {gravity}") from None

    def set_constraint_adjustment(self, constraint_adjustment: int) -> None:
        self.rules = replace(self.rules, adjust=Adjust(constraint_adjustment & 0x3F))

    def set_offset(self, x: int, y: int) -> None:
        self.rules = replace(self.rules, offset_x=x, offset_y=y)

    def set_reactive(self) -> None:
        self.rules = replace(self.rules, reactive=True)

    def set_parent_size(self, parent_width: int, parent_height: int) -> None:
        self.rules = replace(self.rules, parent_size=(parent_width, parent_height))

    def set_parent_configure(self, serial: int) -> None:
        self.rules = replace(self.rules, parent_configure=serial)
