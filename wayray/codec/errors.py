"""Errors of the codec."""

from __future__ import annotations

from wayray.common.errors import WayRayError


class CodecError(WayRayError):
    """A display update that cannot be applied: malformed, out of bounds, or undecodable.

    The decoder raises it and then waits for a keyframe; the client logs it, asks for a keyframe,
    and keeps its connection (a persistent failure is the transport's business, not the decoder's).
    """
