"""The cursor as the viewer gets it (never in the framebuffer) and the primary selection."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.compositor.harness import running_session
from wayray.compositor.cursor import load_cursor
from wayray.compositor.testing import type_text

FOOT = ("foot", "-o", "font=monospace:size=11", "sh")
pytestmark = pytest.mark.slow


async def test_cursor_comes_from_the_client_under_the_pointer_and_is_not_composited(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(800, 600)) as s:
        foot = await s.spawn(*FOOT)
        win = await s.wait_window(lambda w: w.pid == foot.pid, "foot")
        await s.settle()
        s.comp.pointer_motion(20, 20)  # the background: the compositor's own arrow
        default = s.comp.cursor()
        assert default.visible and default.image is not None and (default.x, default.y) == (20, 20)
        before = s.pixels().copy()
        s.comp.pointer_motion(win.rect.x + 200, win.rect.y + 200)  # over the terminal: foot's I-beam
        text = await s.wait_for(
            lambda: s.comp.cursor() if s.comp.cursor().serial != default.serial else None, "foot's cursor"
        )
        assert text.visible and text.image is not None
        assert text.image.shape != default.image.shape or not np.array_equal(text.image, default.image)
        await s.settle()
        after = s.pixels()
        assert np.array_equal(before, after), "the cursor must not be drawn into the framebuffer"
        frame = s.comp.consumer().take_frame()
        assert frame.cursor.serial == text.serial and (frame.cursor.x, frame.cursor.y) == (
            win.rect.x + 200,
            win.rect.y + 200,
        )
        s.comp.pointer_motion(5, 5)
        back = s.comp.cursor()
        assert back.image is not None and np.array_equal(back.image, default.image)


async def test_a_client_names_its_cursor_through_cursor_shape(tmp_path: Path) -> None:
    wait = load_cursor("wait")
    assert wait is not None, "no Xcursor theme with a wait cursor is installed"
    script = Path(__file__).parent / "clients" / "misbehave.py"
    async with running_session(tmp_path, size=(640, 480)) as s:
        client = await s.spawn(sys.executable, str(script), "cursor_shape", "--stay")
        # Its pointer exists once it stays: a pointer entering the window before would go unheard.
        await s.wait_for(
            lambda: "no error, staying" in client.output() or client.proc.returncode is not None,
            "the cursor-shape client",
        )
        assert "no error, staying" in client.output(), client.output()
        win = await s.wait_window(lambda w: w.pid == client.pid, "the cursor-shape client's window")
        s.comp.pointer_motion(5, 5)  # the background: the compositor's own arrow
        assert not np.array_equal(s.comp.cursor().image, wait.pixels)
        s.comp.pointer_motion(win.rect.x + 10, win.rect.y + 10)
        await s.wait_for(
            lambda: s.comp.cursor().image is not None and np.array_equal(s.comp.cursor().image, wait.pixels),
            "the theme's wait cursor over the window",
        )
        assert s.comp.cursor().hotspot == wait.hotspot


async def test_a_screenshot_with_the_cursor_blends_its_soft_edges_over_the_picture(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(320, 240)) as s:
        s.comp.pointer_motion(100, 100)  # over the background: the compositor's own arrow
        cursor = s.comp.cursor()
        assert cursor.image is not None
        shot = np.asarray(Image.open(io.BytesIO(s.comp.screenshot_png(include_cursor=True)))).astype(int)
        plain = np.asarray(Image.open(io.BytesIO(s.comp.screenshot_png()))).astype(int)
    h, w = cursor.image.shape
    x0, y0 = cursor.x - cursor.hotspot[0], cursor.y - cursor.hotspot[1]
    argb = cursor.image.astype(int)
    alpha = (argb >> 24) & 0xFF
    assert ((alpha > 0) & (alpha < 255)).any(), "the theme's arrow has no soft edge to check"
    for i, shift in enumerate((16, 8, 0)):  # premultiplied OVER, channel by channel
        under = plain[y0 : y0 + h, x0 : x0 + w, i]
        expected = np.minimum(255, ((argb >> shift) & 0xFF) + under * (255 - alpha) // 255)
        assert np.array_equal(shot[y0 : y0 + h, x0 : x0 + w, i], expected)


async def test_primary_selection_from_a_client_and_from_outside(tmp_path: Path) -> None:
    async with running_session(tmp_path) as s:
        await s.spawn(*FOOT)
        await s.wait_window(lambda w: w.app_id == "foot", "foot")
        await s.settle()
        await type_text(s.comp, "printf primary-text | wl-copy --primary\n")
        await s.wait_for(
            lambda: s.comp.selection_mime_types(primary=True), "a primary selection from wl-copy"
        )
        assert await s.comp.get_selection("text/plain", primary=True) == b"primary-text"
        s.comp.set_selection({"text/plain": b"set-from-outside"}, primary=True)
        await type_text(s.comp, "wl-paste --primary --no-newline > got.txt\n")
        got = s.workdir / "got.txt"
        await s.wait_for(lambda: got.exists() and got.read_text() == "set-from-outside", "wl-paste's output")
