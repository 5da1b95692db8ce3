"""Limits on what a session compositor accepts (shared by the API and the CLI)."""

from __future__ import annotations

from wayray.common.errors import WayRayError

MAX_SIDE = 16384
SCALES = (1, 2, 3, 4)


def check_output_size(width: int, height: int, scale: int) -> None:
    """Raise WayRayError unless width x height at ``scale`` is an output we can drive."""
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise WayRayError(f"output size {width}x{height} is out of range (16..{MAX_SIDE} pixels each way)")
    if scale not in SCALES:
        raise WayRayError(f"output scale {scale} is not supported (1, 2, 3 or 4)")
    if width % scale or height % scale:
        raise WayRayError(f"output size {width}x{height} is not a multiple of the scale {scale}")
