"""What a session process gives back while nobody watches it (issue 15: many idle sessions per host).

A detached session needs none of what showing it takes: the output framebuffer (8 MiB at 1080p),
the last viewer's frame snapshot and encoder state (its attachment, freed when it goes). After a
viewer leaves, :func:`release` parks the framebuffer (the next viewer's first frame draws it again
whole), collects what the attachment left in reference cycles, and hands the C allocator's free
pages back to the kernel (:func:`trim`). Once a session has started, :func:`trim` alone gives back
what its start-up allocated and freed.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from wayray.common.libc import libc as c_library


def trim() -> bool:
    """``malloc_trim(0)`` of glibc: free heap pages back to the kernel (glibc keeps big buffers freed
    from the middle of the heap, or of a thread's arena, resident otherwise). False where there is
    none (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return False
    function = getattr(c_library(), "malloc_trim", None)  # musl has none
    return bool(function(0)) if function is not None else False


#: glibc's ``mallopt`` parameter for the most allocator arenas a process may have.
_M_ARENA_MAX = -8


def one_arena() -> bool:
    """Have every thread of this process allocate from the main heap (glibc's ``M_ARENA_MAX`` 1).

    glibc gives each thread that allocates its own arena, and an arena keeps the pages its freed
    chunks sit between: the encoder's thread and the default executor's held 2-3 MiB of a detached
    1080p session that way. A session process has few threads, which mostly hold the GIL when they
    allocate: one arena costs them no measurable wait. Call before starting threads; False where
    there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    function = getattr(c_library(), "mallopt", None)
    return bool(function(_M_ARENA_MAX, 1)) if function is not None else False


def release(comp: Any) -> bool:
    """Give back what an unwatched session holds; True if the framebuffer is let go (it is kept
    while the session is viewed or has a frame consumer)."""
    parked = bool(comp.park())
    gc.collect()
    trim()
    return parked
