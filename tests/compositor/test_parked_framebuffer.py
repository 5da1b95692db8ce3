"""A compositor nobody watches lets its output framebuffer go (issue 15: many idle sessions per
host) and draws it again, the same picture, when someone looks; two compositors in one process park
and draw on their own. Real foot in in-process compositors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import running_session
from wayray.compositor.testing import type_text

FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
pytestmark = pytest.mark.slow


async def test_a_parked_framebuffer_comes_back_as_the_same_picture_and_follows_what_changed(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_session(tmp_path / "a", size=(800, 600)) as s,
        running_session(tmp_path / "b", size=(640, 480)) as other,
    ):
        foot = await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.pid == foot.pid and w.focused, "foot, focused")
        await type_text(s.comp, "touch before-parking\n")
        await s.wait_for((s.workdir / "before-parking").exists, "the shell's first file")
        await s.settle()
        seen = s.pixels().copy()

        assert not s.comp.park(), "a watched session keeps its framebuffer"
        s.comp.viewed = False
        assert s.comp.park()
        assert s.comp.core.renderer.parked and not other.comp.core.renderer.parked
        # The surfaces' pixels are kept compressed meanwhile: the picture below is drawn from them.
        textures = [x.texture for x in s.comp.core.surfaces if x.texture is not None]
        assert textures and all(t.squeezed for t in textures)
        assert np.array_equal(s.pixels(), seen), "the picture drawn again is the one it had"
        assert not s.comp.core.renderer.parked

        # Parked while foot draws: what changed meanwhile is in the picture drawn again.
        s.comp.park()
        await type_text(s.comp, "touch typed-while-parked\n")
        await s.wait_for((s.workdir / "typed-while-parked").exists, "the shell's file")
        await s.settle()
        assert s.comp.core.renderer.parked, "nothing drew the parked framebuffer"
        after = s.pixels()
        assert not np.array_equal(after, seen), "the typed line is in the picture"
        # The other compositor was never touched: its background is whole.
        assert (other.pixels() == other.pixels()[0, 0]).all()
