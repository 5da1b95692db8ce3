"""Touch in the session compositor: a real touch client (weston-simple-touch) draws where it is touched.

weston-simple-touch binds wl_touch only when the seat says it has touch, and paints a small diamond
(a plus of 5x5 pixels) at every down and motion, red for touch point 0 and yellow for point 1: the
pixels show where the points reached the client, in its own coordinates.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.compositor.harness import running_session

pytestmark = pytest.mark.slow

RED = 0xFF0000
YELLOW = 0xFFFF00


def _colour_at(pixels: np.ndarray, x: int, y: int) -> int:
    return int(pixels[y, x]) & 0xFFFFFF


async def _touch_window(s):  # type: ignore[no-untyped-def]
    await s.spawn("weston-simple-touch")
    win = await s.wait_window(lambda w: w.rect.width > 100, "weston-simple-touch's window")
    await s.settle()
    return win


async def test_simple_touch_draws_where_each_point_touches_and_follows_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with running_session(tmp_path, size=(900, 700)) as s:
        win = await _touch_window(s)
        r = win.rect
        first = (r.x + 100, r.y + 120)
        second = (r.x + 300, r.y + 200)
        assert _colour_at(s.pixels(), *first) != RED
        comp = s.comp
        assert comp.touch_down(0, *first)
        assert comp.touch_down(1, *second)
        comp.touch_frame()
        await s.wait_for(lambda: _colour_at(s.pixels(), *first) == RED, "a red mark where point 0 went down")
        await s.wait_for(lambda: _colour_at(s.pixels(), *second) == YELLOW, "a yellow mark under point 1")
        # Point 0 moves on, and out of the window: it stays with the window it went down on.
        moved = (r.x + 150, r.y + 160)
        assert comp.touch_motion(0, *moved)
        comp.touch_frame()
        await s.wait_for(lambda: _colour_at(s.pixels(), *moved) == RED, "a red mark where point 0 moved")
        assert comp.touch_up(0) and comp.touch_up(1)
        comp.touch_frame()
        # A viewer's mistakes are ignored, and said so: an up or motion of a point that is not down.
        assert not comp.touch_up(0)
        assert not comp.touch_motion(7, 10, 10)
        assert comp.touch_down(2, r.x + 50, r.y + 50)
        assert not comp.touch_down(2, r.x + 60, r.y + 60)  # that point is down already
        comp.touch_cancel()
        comp.touch_frame()
        assert not comp.touch_up(2)  # cancelled: gone
        # The client is alive and still draws: a new touch paints again.
        third = (r.x + 400, r.y + 300)
        assert comp.touch_down(0, *third)
        comp.touch_frame()
        await s.wait_for(lambda: _colour_at(s.pixels(), *third) == RED, "drawing after a cancel")
        comp.touch_up(0)
        comp.touch_frame()


async def test_touching_outside_every_window_goes_nowhere_and_costs_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with running_session(tmp_path, size=(900, 700)) as s:
        win = await _touch_window(s)
        r = win.rect
        outside = (r.x + r.width + 20, r.y + r.height + 20)
        comp = s.comp
        assert comp.touch_down(0, *outside)
        assert comp.touch_motion(0, r.x + 100, r.y + 100)  # dragged into the window: still nobody's
        assert comp.touch_up(0)
        comp.touch_frame()
        await s.settle()
        assert _colour_at(s.pixels(), r.x + 100, r.y + 100) != RED
        # More fingers than a seat takes: the extra ones are ignored, the first ones work.
        downs = [comp.touch_down(i, r.x + 20 + 10 * i, r.y + 40) for i in range(20)]
        assert downs == [True] * 16 + [False] * 4
        for i in range(16):
            comp.touch_up(i)
        comp.touch_frame()
