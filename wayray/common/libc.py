"""The C library through ctypes, looked up once per process.

``ctypes.util.find_library`` runs ``ldconfig -p`` (on Linux) each time it is called: tens of
milliseconds, more on a loaded server, on the way to every new session's first frame when the
session's processes asked for it themselves. The session parent looks it up once and every session
forked from it has the answer (issue 15).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library (``errno`` kept: read it with ``ctypes.get_errno()``)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
