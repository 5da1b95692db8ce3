"""Touch from a headless wrclient's script to a real touch client in the session, over real QUIC.

weston-simple-touch paints a small plus (5x5 pixels) at every touch down and motion, red for touch
point 0 and magenta for point 3: the viewer's snapshot shows where its touches reached the client.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.harness import Harness, failure, png_pixels

pytestmark = pytest.mark.slow

RED = (255, 0, 0)
MAGENTA = (255, 0, 255)


def _rgb(pixels: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in pixels[y, x][:3])
    return r, g, b


def _window(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """weston-simple-touch's window: the bounding box of what differs from the background."""
    background = pixels[2, 2]
    ys, xs = np.nonzero((pixels != background).any(axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def test_taps_swipes_and_a_second_finger_draw_where_the_script_touched(harness: Harness) -> None:
    srv = harness.server(["weston-simple-touch"])
    before = harness.tmp / "before.png"
    look = harness.write_script("look.txt", f"settle\nsnapshot {before}\n")
    first = harness.run_client(srv, "--script", str(look))
    assert first.returncode == 0, failure(first)
    x0, y0, x1, y1 = _window(png_pixels(before))
    assert x1 - x0 > 200 and y1 - y0 > 200, (x0, y0, x1, y1)
    tap = (x0 + 60, y0 + 70)
    swipe_from, swipe_to = (x0 + 100, y0 + 150), (x0 + 260, y0 + 150)
    second = (x0 + 200, y0 + 220)
    after = harness.tmp / "after.png"
    script = harness.write_script(
        "touch.txt",
        f"""settle
tap {tap[0]} {tap[1]}
swipe {swipe_from[0]} {swipe_from[1]} {swipe_to[0]} {swipe_to[1]} 8
touch down 0 {x0 + 40} {y0 + 260}
touch down 3 {second[0]} {second[1]}
touch up 0
touch up 3
settle
snapshot {after}
""",
    )
    result = harness.run_client(srv, "--script", str(script))
    assert result.returncode == 0, failure(result)
    pixels = png_pixels(after)
    assert _rgb(pixels, *tap) == RED
    # The swipe's motions were delivered one by one: a mark at each of its 8 steps.
    for i in range(1, 9):
        x = swipe_from[0] + (swipe_to[0] - swipe_from[0]) * i // 8
        assert _rgb(pixels, x, swipe_from[1]) == RED, f"no mark at swipe step {i} ({x})"
    assert _rgb(pixels, *second) == MAGENTA  # the second finger, as point 3
    # Nothing was drawn where nobody touched.
    untouched = (x0 + 150, y0 + 60)
    assert _rgb(pixels, *untouched) == _rgb(png_pixels(before), *untouched)
