"""The built-in WM's stacking policy (``wm.FloatingWM`` applies it to its stack, bottom to top).

- A dialog is never under the window it belongs to (its parent: ``WM_TRANSIENT_FOR`` for X windows,
  ``xdg_toplevel.set_parent`` for Wayland ones): a dialog hidden behind its window is lost to the
  user, and a modal one makes the program look hung. ``keep_transients_above`` restores that rule
  after any change.
- An application may ask for its window's place (X's stack modes: ``XRaiseWindow``, ``XLowerWindow``,
  ``XRestackWindows``, ICCCM 4.1.5); ``restacked`` says where it goes among the windows shown. A
  raise is not an activation: the focus is not the stack's business.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

W = TypeVar("W")


class StackRequest(enum.Enum):
    """Where an application asks for its window in the stack (X's stack modes)."""

    ABOVE = "above"  # on top, or just above the sibling
    BELOW = "below"  # at the bottom, or just below the sibling
    TOP_IF = "top-if"  # on top if another window (the sibling) covers part of it
    BOTTOM_IF = "bottom-if"  # at the bottom if it covers part of another (the sibling)
    OPPOSITE = "opposite"  # on top if covered, else at the bottom if covering


def keep_transients_above(stack: list[W], parent_of: Callable[[W], W | None]) -> None:
    """Move each window found under its parent to just above it (its own dialogs after it), in place;
    the others keep their order. Loops of parents (X clients can make them) end."""
    for _ in range(len(stack)):  # each pass settles at least one window
        for i, w in enumerate(stack):
            parent = parent_of(w)
            if parent is not None and parent in stack and stack.index(parent) > i:
                stack.remove(w)
                stack.insert(stack.index(parent) + 1, w)
                break
        else:
            return


def restacked(
    stack: list[W], window: W, how: StackRequest, sibling: W | None, overlap: Callable[[W, W], bool]
) -> list[W] | None:
    """The stack with ``window`` where it asks (None: no change asked, or it or the sibling is not in
    the stack). ``overlap(a, b)``: whether the two windows' frames share a pixel."""
    if window not in stack or sibling is window or (sibling is not None and sibling not in stack):
        return None
    at = stack.index(window)
    others = [sibling] if sibling is not None else [w for w in stack if w is not window]
    covered = any(stack.index(w) > at and overlap(w, window) for w in others)
    covering = any(stack.index(w) < at and overlap(w, window) for w in others)
    order = [w for w in stack if w is not window]
    if how is StackRequest.ABOVE:
        order.insert(order.index(sibling) + 1 if sibling is not None else len(order), window)
    elif how is StackRequest.BELOW:
        order.insert(order.index(sibling) if sibling is not None else 0, window)
    elif covered and how in (StackRequest.TOP_IF, StackRequest.OPPOSITE):
        order.append(window)
    elif covering and how in (StackRequest.BOTTOM_IF, StackRequest.OPPOSITE):
        order.insert(0, window)
    else:
        return None
    return order
