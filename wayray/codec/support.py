"""Whether this machine can do H.264 (PyAV with libx264 to encode, FFmpeg's h264 to decode).

PyAV is a big binary wheel that may be missing on some platforms (illumos has none on PyPI). The
lossless path needs only numpy and zstandard, so without PyAV the encoder stays lossless and the
decoder refuses H.264 regions with a clear error; the client should then not offer video.
"""

from __future__ import annotations

import functools


@functools.cache
def h264_unavailable() -> str | None:
    """None when H.264 encoding and decoding work here; otherwise why not, in words."""
    try:
        import av
    except ImportError as e:
        return f"PyAV is not installed ({e}); install the 'av' package for video regions"
    try:
        av.codec.Codec("libx264", "w")
        av.codec.Codec("h264", "r")
    except Exception as e:  # UnknownCodecError and friends: any failure means "not here"
        return f"PyAV's FFmpeg lacks the libx264 encoder or the h264 decoder ({e})"
    return None
