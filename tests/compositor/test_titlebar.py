"""Server-side title bars: fitting a title of any length."""

from __future__ import annotations

from PIL import Image, ImageDraw

from wayray.compositor.titlebar import _font, fit_text


def test_a_long_title_is_cut_to_the_longest_beginning_that_fits_with_an_ellipsis() -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = _font(13)
    title = "make -j2 " + "x" * 4000  # as long as a Wayland message allows
    cut = fit_text(draw, title, font, 300)
    assert cut.endswith("…") and title.startswith(cut[:-1])
    assert draw.textlength(cut, font=font) <= 300
    assert draw.textlength(title[: len(cut)] + "…", font=font) > 300  # one more character would not fit
    assert fit_text(draw, "foot", font, 300) == "foot"
    assert fit_text(draw, title, font, 1) == ""
