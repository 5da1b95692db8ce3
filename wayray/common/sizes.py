"""Output sizes: the largest of a given shape that fits a pixel budget (front door and compositor)."""

from __future__ import annotations


def fit_output(width: int, height: int, max_pixels: int, *, scale: int = 1) -> tuple[int, int]:
    """The largest output of the shape ``width`` x ``height`` with at most ``max_pixels`` pixels, each
    side a multiple of ``scale`` (the size itself when it fits). Never larger than asked on either
    side: a side already smaller than ``scale`` is kept as asked (such an output is refused later as
    too small, by ``check_output_size``)."""
    if width <= 0 or height <= 0 or width * height <= max_pixels:
        return width, height
    factor = (max_pixels / (width * height)) ** 0.5
    least_w, least_h = min(width, scale), min(height, scale)
    w = max(least_w, int(width * factor) // scale * scale)
    h = max(least_h, int(height * factor) // scale * scale)
    while w * h > max_pixels:  # rounding: shave the longer side (the other when it cannot give)
        if w >= h and w - scale >= least_w or h - scale < least_h:
            if w - scale < least_w:
                break
            w -= scale
        else:
            h -= scale
    return w, h
