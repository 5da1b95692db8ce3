"""A session resumed at another screen size shows its windows in the very first frame (the operator's
trial: the first "complete" keyframe after the resize showed only the background, the windows came a
frame later, so ``wrclient --snapshot`` wrote an empty desktop). Real foot, real headless wrclient."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.harness import Harness, failure, png_pixels
from tests.ocr import ocr, shows

pytestmark = pytest.mark.slow

#: The colour where no window is (wayray.compositor.scene.BACKGROUND).
BACKGROUND = (0x2E, 0x34, 0x40)


def background(pixels: np.ndarray) -> np.ndarray:
    return (pixels == np.array(BACKGROUND, dtype=pixels.dtype)).all(axis=-1)


@pytest.mark.parametrize("window", ["floating", "maximized"])
def test_the_first_frame_after_a_resume_at_another_size_shows_the_windows(
    harness: Harness, window: str
) -> None:
    foot = (
        ["foot", "--window-size-chars=80x24", "sh"]
        if window == "floating"
        else ["foot", "--maximized", "sh"]
    )
    srv = harness.server(foot)
    mark = harness.write_script("mark.txt", "settle\ntype echo seen at once\nkey Return\nsettle 700\n")
    first = harness.run_script(srv, mark, "--size", "1280x720")
    assert first.returncode == 0, failure(first)

    for size in ("1024x768", "1600x900"):
        shot = harness.tmp / f"resumed-{size}.png"
        # No --settle: the snapshot is the first complete frame the viewer gets.
        result = harness.run_client(srv, "--size", size, "--snapshot", str(shot))
        assert result.returncode == 0 and "resumed session" in result.stderr, failure(result)
        pixels = png_pixels(shot)
        w, h = (int(n) for n in size.split("x"))
        assert pixels.shape == (h, w, 3)
        empty = background(pixels)
        assert empty.mean() < 0.9, f"{size}: {empty.mean():.0%} of the first frame is background"
        png = shot.read_bytes()
        assert shows(png, "seen at once"), ocr(png)
        if window == "maximized":
            # Drawn at the new size: the terminal reaches the output's far corner in that first frame.
            assert not empty[h - 40 :, w - 40 :].all(), f"{size}: the window is not at the new size yet"
