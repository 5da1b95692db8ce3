"""Frames out: pull-based consumers that always get the newest content and never queue.

Each consumer accumulates the output damage since it last took a frame. When something changes it
is told (an ``asyncio.Event`` and an optional callback); it calls ``take_frame()`` when it is ready
(for instance when its network link has credit), and gets its own snapshot of the framebuffer --
only the damaged rectangles are copied into it -- plus exactly those rectangles. A consumer that
falls behind simply gets a larger union later: nothing piles up. A new consumer, and every
consumer after an output resize, starts with full damage.

Exactness: a consumer that keeps its own image and, on every frame, copies only ``damage`` from
``pixels`` into it holds the compositor's framebuffer bit for bit.

The compositor tells a consumer through its ``core.FrameSink`` hooks (``on_damage``,
``on_cursor_changed``, ``on_reset``); what a consumer reads from the compositor is ``FrameSource``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from wayray.common import trace
from wayray.compositor.cursor import CursorState
from wayray.compositor.geometry import Rect
from wayray.wayland.pixman import Region

if TYPE_CHECKING:
    from wayray.compositor.scene import Renderer


class FrameSource(Protocol):
    """What a frame consumer reads from the compositor (``Core``)."""

    @property
    def renderer(self) -> Renderer:
        """The output framebuffer, its size and scale."""

    @property
    def frame_seq(self) -> int: ...

    @property
    def cursor_serial(self) -> int:
        """Changes exactly when the cursor's image or hotspot does."""

    def cursor_state(self) -> CursorState: ...

    def remove_consumer(self, consumer: FrameConsumer) -> None: ...


@dataclass(frozen=True)
class Frame:
    """One frame for one consumer.

    ``pixels``: XRGB8888, uint32 (height, width), the consumer's private snapshot: it stays valid and
    unchanged until this consumer's next ``take_frame()``. ``damage``: non-overlapping rectangles
    (output pixels) changed since the consumer's previous frame. ``seq``: the compositor's frame
    number (increases with every composited frame). ``cursor``: drawn by the viewer, never part of
    ``pixels``.
    """

    pixels: np.ndarray
    damage: tuple[Rect, ...]
    seq: int
    width: int
    height: int
    scale: int
    cursor: CursorState

    @property
    def full(self) -> bool:
        return len(self.damage) == 1 and self.damage[0] == Rect(0, 0, self.width, self.height)


class FrameConsumer:
    """A reader of frames (encoder, screenshot tool, test); made by ``SessionCompositor.consumer()``."""

    def __init__(self, source: FrameSource, on_change: Callable[[], None] | None) -> None:
        self._source = source
        self._on_change = on_change
        self.changed = asyncio.Event()
        self._damage = Region()
        self._snapshot: np.ndarray | None = None
        self._cursor_serial = -1
        self._cursor_pos: tuple[int, int] | None = None
        self.closed = False
        self.on_reset()

    # The compositor's hooks (core.FrameSink) ------------------------------------------------------

    def on_reset(self) -> None:
        """The output is new (or was resized): the next frame is all of it."""
        r = self._source.renderer
        self._snapshot = np.zeros((r.height, r.width), dtype=np.uint32)
        self._damage = Region.rect(0, 0, r.width, r.height)
        self._notify()

    def on_damage(self, damage: Region) -> None:
        """A composite changed ``damage`` (output pixels)."""
        if damage:
            self._damage.add(damage)
            self._notify()

    def on_cursor_changed(self) -> None:
        self._notify()

    def _notify(self) -> None:
        if self.closed:
            return
        self.changed.set()
        if self._on_change is not None:
            self._on_change()

    @property
    def pending(self) -> bool:
        """True when ``take_frame()`` would return something new."""
        return bool(self._damage) or self._cursor_serial != self._source.cursor_serial

    def take_frame(self) -> Frame:
        """The current frame: damage since the last take (possibly none, e.g. for a cursor change)."""
        self.changed.clear()
        if trace.ENABLED:
            trace.pass_on("composited", "taken")
        source = self._source
        r = source.renderer
        assert self._snapshot is not None
        boxes = self._damage.boxes()
        fb = r.framebuffer
        snap = self._snapshot
        for b in boxes:
            snap[b.y1 : b.y2, b.x1 : b.x2] = fb[b.y1 : b.y2, b.x1 : b.x2]
        self._damage.clear()
        cursor = source.cursor_state()
        self._cursor_serial = cursor.serial
        view = snap.view()
        view.flags.writeable = False
        return Frame(
            pixels=view,
            damage=tuple(Rect(b.x1, b.y1, b.width, b.height) for b in boxes),
            seq=source.frame_seq,
            width=r.width,
            height=r.height,
            scale=r.scale,
            cursor=cursor,
        )

    async def next_frame(self) -> Frame:
        """Wait until something changed, then take the frame."""
        while not self.pending:
            self.changed.clear()
            await self.changed.wait()
        return self.take_frame()

    def close(self) -> None:
        self.closed = True
        self._source.remove_consumer(self)
