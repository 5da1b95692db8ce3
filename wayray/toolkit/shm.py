"""Shared-memory buffers: memfd-backed ``wl_buffer``\\ s, and a swapchain that honours ``wl_buffer.release``.

A :class:`Swapchain` holds two or three buffers of one size. The compositor may read a committed
buffer until it sends ``release``; we never draw into it before then. Each buffer remembers what
changed since it was last drawn (its *stale* region), so drawing a frame repaints only that — the
new damage plus whatever the other buffers received meanwhile — instead of the whole buffer.
"""

from __future__ import annotations

import enum
import mmap
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from wayray.toolkit.connection import WaylandConnection
from wayray.wayland.pixman import Region

RectTuple = tuple[int, int, int, int]


class PixelFormat(enum.IntEnum):
    """wl_shm formats every compositor supports (32-bit words, little-endian: bytes B, G, R, A/X)."""

    ARGB8888 = 0  # premultiplied alpha
    XRGB8888 = 1


class Buffer:
    """One ``wl_buffer`` over its own memfd; ``pixels`` is a writable (height, width) uint32 view."""

    def __init__(self, conn: WaylandConnection, shm: Any, width: int, height: int, fmt: PixelFormat) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"buffer size {width}x{height} must be positive")
        self.conn = conn
        self.width = width
        self.height = height
        self.format = fmt
        self.stride = width * 4
        size = self.stride * height
        fd = os.memfd_create("wayray-shm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            pool = shm.create_pool(fd, size)
        finally:
            os.close(fd)  # libwayland sent a copy; the mapping stays valid
        self.pixels: npt.NDArray[np.uint32] = np.frombuffer(self._map, dtype="<u4").reshape(height, width)
        self.proxy = conn.track(pool.create_buffer(0, width, height, self.stride, int(fmt)))
        pool.destroy()  # the buffer keeps the pool's memory; the pool object is no longer needed
        #: True from attach+commit until the compositor's release.
        self.busy = False
        #: What changed since this buffer was last drawn (buffer pixels).
        self.stale = Region.rect(0, 0, width, height)
        conn.listen(self.proxy, release=self._released)
        conn.flush()

    def _released(self) -> None:
        self.busy = False

    def destroy(self) -> None:
        """Destroy the wl_buffer (allowed while the compositor holds it) and unmap our view."""
        if self.proxy is not None:
            self.conn.destroy(self.proxy)
            self.proxy = None
        self.pixels = np.zeros((0, 0), dtype="<u4")
        try:
            self._map.close()
        except BufferError:  # a numpy view of it is still alive somewhere: let the GC unmap it
            pass


class Swapchain:
    """Two or three same-sized buffers used in turn, never touching one the compositor still reads."""

    def __init__(
        self, conn: WaylandConnection, shm: Any, fmt: PixelFormat = PixelFormat.XRGB8888, count: int = 3
    ) -> None:
        if not 1 <= count <= 4:
            raise ValueError("a swapchain has 1 to 4 buffers")
        self.conn = conn
        self.shm = shm
        self.format = fmt
        self.count = count
        self.width = 0
        self.height = 0
        self.buffers: list[Buffer] = []

    def resize(self, width: int, height: int) -> None:
        """Use buffers of ``width`` x ``height`` from now on (the old ones are destroyed)."""
        if (width, height) == (self.width, self.height):
            return
        self.destroy()
        self.width, self.height = width, height

    def damage(self, rects: Iterable[RectTuple]) -> None:
        """The picture changed in ``rects``: every buffer must repaint them before it is shown again."""
        for b in self.buffers:
            for x, y, w, h in rects:
                b.stale.add_rect(x, y, w, h)

    def damage_all(self) -> None:
        for b in self.buffers:
            b.stale = Region.rect(0, 0, b.width, b.height)

    def acquire(self) -> Buffer | None:
        """A buffer the compositor does not hold (its ``stale`` region must be repainted), or None."""
        for b in self.buffers:
            if not b.busy:
                return b
        if len(self.buffers) < self.count and self.width > 0 and self.height > 0:
            b = Buffer(self.conn, self.shm, self.width, self.height, self.format)
            self.buffers.append(b)
            return b
        return None

    def destroy(self) -> None:
        for b in self.buffers:
            b.destroy()
        self.buffers.clear()
        self.width = self.height = 0


def single_pixel(conn: WaylandConnection, shm: Any, argb: int) -> Buffer:
    """A 1x1 buffer of one colour (stretched with wp_viewport: backgrounds for any size)."""
    fmt = PixelFormat.ARGB8888 if (argb >> 24) != 0xFF else PixelFormat.XRGB8888
    b = Buffer(conn, shm, 1, 1, fmt)
    b.pixels[0, 0] = argb
    return b
