"""Reading ``wl_shm`` buffers safely.

libwayland implements ``wl_shm`` and ``wl_shm_pool`` itself; a ``wl_buffer`` made from a pool reaches
us as a ``ForeignResource``. Its pixels live in memory the client shares with us and may truncate at
any moment: ``wl_shm_buffer_begin_access`` installs libwayland's SIGBUS guard (a client that shrinks
its pool gets a protocol error instead of crashing the compositor), so the pixels are only read inside
``ShmBuffer.access()`` and copied out there.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from wayray.wayland.libwayland import ffi, lib
from wayray.wayland.pixman import Format
from wayray.wayland.server import ForeignResource


def _fourcc(code: str) -> int:
    a, b, c, d = (ord(ch) for ch in code)
    return a | (b << 8) | (c << 16) | (d << 24)


class ShmFormat(enum.IntEnum):
    """The wl_shm formats we advertise: the two every compositor must, and three pixman reads as is."""

    ARGB8888 = 0
    XRGB8888 = 1
    ABGR8888 = _fourcc("AB24")
    XBGR8888 = _fourcc("XB24")
    RGB565 = _fourcc("RG16")

    @property
    def pixman(self) -> Format:
        return _PIXMAN[self]


_PIXMAN = {
    ShmFormat.ARGB8888: Format.A8R8G8B8,
    ShmFormat.XRGB8888: Format.X8R8G8B8,
    ShmFormat.ABGR8888: Format.A8B8G8R8,
    ShmFormat.XBGR8888: Format.X8B8G8R8,
    ShmFormat.RGB565: Format.R5G6B5,
}

# Formats beyond the mandatory two, for Display.init_shm().
EXTRA_FORMATS = (ShmFormat.ABGR8888, ShmFormat.XBGR8888, ShmFormat.RGB565)


@dataclass(frozen=True)
class ShmBuffer:
    """Geometry of one shm ``wl_buffer``; ``access()`` maps its bytes."""

    resource: ForeignResource
    ptr: Any
    width: int
    height: int
    stride: int
    format: ShmFormat

    @classmethod
    def of(cls, resource: ForeignResource) -> ShmBuffer | None:
        """The shm view of a ``wl_buffer``, or None when it is not a shm buffer (or has a format we
        did not advertise)."""
        if not resource.alive:
            return None
        ptr = lib.wl_shm_buffer_get(resource.ptr)
        if ptr == ffi.NULL:
            return None
        try:
            fmt = ShmFormat(lib.wl_shm_buffer_get_format(ptr))
        except ValueError:
            return None
        return cls(
            resource=resource,
            ptr=ptr,
            width=lib.wl_shm_buffer_get_width(ptr),
            height=lib.wl_shm_buffer_get_height(ptr),
            stride=lib.wl_shm_buffer_get_stride(ptr),
            format=fmt,
        )

    @contextmanager
    def access(self) -> Iterator[np.ndarray]:
        """The buffer's bytes as a (height, stride) uint8 array, valid only inside the ``with``."""
        lib.wl_shm_buffer_begin_access(self.ptr)
        try:
            data = lib.wl_shm_buffer_get_data(self.ptr)
            view = np.frombuffer(ffi.buffer(data, self.stride * self.height), dtype=np.uint8)
            yield view.reshape(self.height, self.stride)
        finally:
            lib.wl_shm_buffer_end_access(self.ptr)
