"""Output sizes: the largest of a given shape that fits a pixel budget (front door and compositor)."""

from __future__ import annotations


def fit_output(width: int, height: int, max_pixels: int, *, scale: int = 1) -> tuple[int, int]:
    """The largest output of the shape ``width`` x ``height`` with at most ``max_pixels`` pixels, each
    side a multiple of ``scale`` (the size itself when it fits)."""
    if width <= 0 or height <= 0 or width * height <= max_pixels:
        return width, height
    factor = (max_pixels / (width * height)) ** 0.5
    w = max(scale, int(width * factor) // scale * scale)
    h = max(scale, int(height * factor) // scale * scale)
    while w * h > max_pixels and max(w, h) > scale:  # rounding: shave the longer side
        if w >= h:
            w -= scale
        else:
            h -= scale
    return w, h
