"""Limits on what a session compositor accepts (shared by the API and the CLI)."""

from __future__ import annotations

from wayray.common.errors import WayRayError
from wayray.common.sizes import fit_output

MAX_SIDE = 16384
SCALES = (1, 2, 3, 4)

#: Most pixels an output may have in this process: ``wrsrvd session --max-pixels`` (the server's
#: ``output.max_pixels``) sets it once at start. Whatever a viewer or wrsrvd asks later, the
#: compositor never allocates an output larger than this.
_max_pixels = MAX_SIDE * MAX_SIDE


def set_max_pixels(pixels: int) -> None:
    global _max_pixels
    if pixels < 16 * 16:
        raise ValueError(f"a pixel cap of {pixels} leaves no usable output")
    _max_pixels = pixels


def max_pixels() -> int:
    return _max_pixels


def fit_output_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """``width`` x ``height``, or the largest output of that shape within this process's pixel cap."""
    return fit_output(width, height, _max_pixels, scale=scale)


def check_output_size(width: int, height: int, scale: int) -> None:
    """Raise WayRayError unless width x height at ``scale`` is an output we can drive."""
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise WayRayError(f"output size {width}x{height} is out of range (16..{MAX_SIDE} pixels each way)")
    if width * height > _max_pixels:
        raise WayRayError(
            f"output size {width}x{height} has more than the {_max_pixels} pixels this session may have"
        )
    if scale not in SCALES:
        raise WayRayError(f"output scale {scale} is not supported (1, 2, 3 or 4)")
    if width % scale or height % scale:
        raise WayRayError(f"output size {width}x{height} is not a multiple of the scale {scale}")
