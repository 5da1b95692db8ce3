"""Output sizes: ``WIDTHxHEIGHT`` as every command line takes it, and the largest size of a given
shape that fits a pixel budget (front door and compositor)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

_SIZE = re.compile(r"\s*(\d+)\s*x\s*(\d+)\s*", re.IGNORECASE)


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``1280x720``; an upper-case X and spaces around the numbers are fine) as
    (width, height); ValueError otherwise."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT")
    return int(m[1]), int(m[2])


def size_argument(
    *, example: str | None = None, sides: tuple[int, int] | None = None, range_in_usage: bool = False
) -> Callable[[str], tuple[int, int]]:
    """An argparse ``type=`` for ``--size WxH``. Its error says ``'TEXT' is not WIDTHxHEIGHT``, then
    the range when ``range_in_usage`` (`` (16..16384)``), then ``, e.g. EXAMPLE``. With ``sides``
    (least, most), each side must lie in that range: a side outside it is the same error when
    ``range_in_usage``, else ``'TEXT': each side must be LEAST to MOST``."""

    def parse(text: str) -> tuple[int, int]:
        usage = f"{text!r} is not WIDTHxHEIGHT"
        if sides is not None and range_in_usage:
            usage += f" ({sides[0]}..{sides[1]})"
        if example is not None:
            usage += f", e.g. {example}"
        try:
            w, h = parse_size(text)
        except ValueError:
            raise argparse.ArgumentTypeError(usage) from None
        if sides is not None and not (sides[0] <= w <= sides[1] and sides[0] <= h <= sides[1]):
            if range_in_usage:
                raise argparse.ArgumentTypeError(usage)
            raise argparse.ArgumentTypeError(f"{text!r}: each side must be {sides[0]} to {sides[1]}")
        return w, h

    return parse


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


#: ``--size`` of the compositor commands (wrsrvd, wrsrvd session, wrsrvd compositor): the output
#: size, checked against the pixel cap later.
OUTPUT_SIZE = size_argument(example="1920x1080")
