"""Picture held back to meet the sound (issue 13): the pixels of the windows whose program is playing
sound are shown ``delay`` late, while it sounds, so the picture reaches the viewer with its sound.

Only pixels wait. Commits apply at once (buffers are released, frame callbacks answered, geometry,
position, stacking, input and focus are current); what waits is which copy of a surface's pixels the
renderer draws. Each surface of a synced window's tree (its root surface, its subsurfaces, its popups
and theirs) has a *line*: the snapshot shown now and the snapshots waiting, each a copy of the
surface's pixels taken when a composite found new content on it, with the time it was taken and the
damage since the snapshot before. A composite (``AvSync.feed``, before the renderer computes damage)

- appends a snapshot for each synced surface with new content and holds its damage back,
- makes every snapshot whose time plus the delay has come the shown one and hands the union of their
  damages to the renderer (the frame damage stays exact: only what changes as they come due),
- keeps the bytes held under a budget by dropping waiting snapshots (those whose loss leaves the
  smallest gap in time, their damage carried to the next), and
- sets a timer for the next snapshot due (none when nothing waits).

A surface first seen (av-sync just turned on, a new subsurface or popup) shows its current pixels at
once; from then on its new content waits. A surface leaving the set (its window gone, unmapped, its
program no longer sounding) and turning av-sync off drop its line at once and show its current pixels.

Sizes: geometry is always current, contents are late. A snapshot is drawn with its own buffer mapping
at the surface's current origin, clipped to the smaller of its own and the surface's current size;
what the current size covers beyond the snapshot shows what is under the surface until content of
that size comes due.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from wayray.wayland.pixman import Region

if TYPE_CHECKING:
    from wayray.compositor.geometry import BufferMapping
    from wayray.compositor.surface import Surface, Texture
    from wayray.compositor.window import Window
    from wayray.compositor.xdg_popup import PopupRole

#: The longest delay applied (ms); more is clamped (a picture half a second late is already poor).
MAX_DELAY_MS = 500.0
#: Bytes of snapshots a session holds at most (shown and waiting); waiting ones are dropped beyond it.
BUDGET = 64 << 20
#: Pixel arrays of snapshots no longer needed, kept to copy the next ones into (counted in the budget).
SPARES = 2


@dataclass(slots=True, eq=False)
class Snapshot:
    """A surface's pixels as a composite found them at ``at``; drawn in place of its live texture."""

    at: float
    texture: Texture
    mapping: BufferMapping
    scale: int
    #: Surface-local: what differs from the snapshot before it in the line.
    damage: Region

    @property
    def nbytes(self) -> int:
        return int(self.texture.storage.nbytes)


@dataclass(slots=True, eq=False)
class Line:
    """One surface's delay line: the snapshot shown now and those waiting, oldest first."""

    surface: Surface
    shown: Snapshot
    waiting: deque[Snapshot] = field(default_factory=deque)

    @property
    def newest(self) -> Snapshot:
        return self.waiting[-1] if self.waiting else self.shown

    @property
    def nbytes(self) -> int:
        return self.shown.nbytes + sum(s.nbytes for s in self.waiting)


def _add_tree(surface: Surface | None, out: set[Surface]) -> None:
    if surface is None:
        return
    out.add(surface)
    for child in surface.children:
        sub = child.subsurface
        if child is not surface and sub is not None and sub.parent is surface:
            _add_tree(child, out)


def _add_popups(popups: Iterable[PopupRole], out: set[Surface]) -> None:
    for popup in popups:
        if popup.alive:
            _add_tree(popup.surface, out)
            _add_popups(popup.children, out)


class AvSync:
    """The delay lines of one compositor. ``windows`` gives the WM's windows, ``wake`` asks for a
    composite (a snapshot came due), ``now`` is the clock snapshots are stamped with (seconds; the
    loop's, or a test's)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        windows: Callable[[], Iterable[Window]],
        wake: Callable[[], None],
        now: Callable[[], float],
    ) -> None:
        self.loop = loop
        self.windows = windows
        self.wake = wake
        self.now = now
        self.pids: frozenset[int] = frozenset()
        self.delay = 0.0  # seconds
        self.budget = BUDGET
        self.lines: dict[Surface, Line] = {}
        #: What the renderer draws in place of a surface's texture (``Renderer.delayed`` is this dict).
        self.shown: dict[Surface, Snapshot] = {}
        self.dropped = 0  # waiting snapshots dropped for the budget (or never shown: delay lowered)
        self._spare: list[np.ndarray] = []
        self._timer: asyncio.TimerHandle | None = None

    def configure(self, pids: Collection[int], delay_s: float) -> None:
        self.pids = frozenset(pids)
        self.delay = delay_s

    @property
    def held(self) -> int:
        """Bytes of pixels held in snapshots (and spare arrays for the next ones)."""
        return sum(line.nbytes for line in self.lines.values()) + sum(a.nbytes for a in self._spare)

    def _snapshot(self, at: float, surface: Surface, damage: Region) -> Snapshot:
        tex = surface.texture
        assert tex is not None and surface.mapping is not None
        into = None
        shape, dtype = tex.storage.shape, tex.storage.dtype
        for i, spare in enumerate(self._spare):
            if spare.shape == shape and spare.dtype == dtype:
                into = self._spare.pop(i)
                break
        return Snapshot(at, tex.copy(into), surface.mapping, surface.scale, damage)

    def _recycle(self, snap: Snapshot) -> None:
        """``snap`` is no longer drawn nor waiting: keep its array for the next snapshot."""
        if len(self._spare) >= SPARES:
            del self._spare[0]
        self._spare.append(snap.texture.storage)

    @property
    def timer_pending(self) -> bool:
        """A wake-up is set for the next snapshot due (never when nothing waits)."""
        return self._timer is not None

    def synced_surfaces(self) -> set[Surface]:
        out: set[Surface] = set()
        pids = self.pids
        for w in self.windows():
            if w.toplevel.pid in pids:
                _add_tree(w.surface, out)
                _add_popups(w.popups, out)
        return out

    # The frame path -------------------------------------------------------------------------------

    def feed(self, drawn: Iterable[Surface]) -> None:
        """Before the renderer's damage, with the surfaces it draws: take new content into the lines,
        bring due snapshots on."""
        now = self.now()
        synced = self.synced_surfaces()
        lines = self.lines
        seen: set[Surface] = set()
        for s in drawn:
            if s not in synced or s.texture is None or s.mapping is None:
                continue
            seen.add(s)
            line = lines.get(s)
            if line is None:  # first sight: its current pixels now, its frame damage goes out as is
                line = lines[s] = Line(s, self._snapshot(now, s, Region()))
                self.shown[s] = line.shown
                continue
            newest = line.newest
            if s.frame_damage or s.mapping != newest.mapping or s.scale != newest.scale:
                damage = s.frame_damage.copy()
                line.waiting.append(self._snapshot(now, s, damage))
                s.frame_damage.clear()
        for s in [s for s in lines if s not in seen]:
            self._drop(s, show_current=True)
        for line in lines.values():
            self._bring_due(line, now)
        self._enforce_budget()
        self._schedule(now)

    def _bring_due(self, line: Line, now: float) -> None:
        waiting = line.waiting
        if not waiting or waiting[0].at + self.delay > now:
            return
        damage = Region()
        while waiting and waiting[0].at + self.delay <= now:
            self._advance(line, damage)
        self._show(line, damage)

    def _advance(self, line: Line, damage: Region) -> None:
        """The oldest waiting snapshot becomes the shown one; what changes goes into ``damage``."""
        snap = line.waiting.popleft()
        before = line.shown
        if snap.mapping != before.mapping or snap.scale != before.scale:
            damage.add_rect(0, 0, max(snap.mapping.surface_width, before.mapping.surface_width),
                            max(snap.mapping.surface_height, before.mapping.surface_height))  # fmt: skip
        else:
            damage.add(snap.damage)
        line.shown = snap
        self._recycle(before)

    def _show(self, line: Line, damage: Region) -> None:
        s = line.surface
        self.shown[s] = line.shown
        damage.intersect_rect(0, 0, s.width, s.height)
        s.frame_damage.add(damage)

    def _schedule(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        first = min((line.waiting[0].at for line in self.lines.values() if line.waiting), default=None)
        if first is not None:
            self._timer = self.loop.call_later(max(0.0, first + self.delay - now), self._due)

    def _due(self) -> None:
        self._timer = None
        self.wake()

    # Memory ---------------------------------------------------------------------------------------

    def _enforce_budget(self) -> None:
        held = self.held
        if held > self.budget:
            held -= sum(a.nbytes for a in self._spare)
            self._spare.clear()
        while held > self.budget:
            thin = [line for line in self.lines.values() if len(line.waiting) > 1]
            if thin:
                line = max(thin, key=lambda ln: len(ln.waiting))
                held -= self._thin(line)
                continue
            waiting = [line for line in self.lines.values() if line.waiting]
            if not waiting:
                return  # only what is shown: the current pixels of the synced surfaces
            # One waiting snapshot does not fit beside the shown one: it is shown now, not late.
            line = max(waiting, key=lambda ln: ln.nbytes)
            freed = line.shown.nbytes
            damage = Region()
            self._advance(line, damage)
            self._show(line, damage)
            self._spare.clear()
            held -= freed
            self.dropped += 1

    def _thin(self, line: Line) -> int:
        """Drop the waiting snapshot (never the newest) whose loss leaves the smallest gap in time;
        its damage goes to the one after it. Returns the bytes freed."""
        w = line.waiting
        best, gap = 0, float("inf")
        for i in range(len(w) - 1):
            before = w[i - 1].at if i > 0 else line.shown.at
            g = w[i + 1].at - before
            if g < gap:
                best, gap = i, g
        gone = w[best]
        nxt = w[best + 1]
        if gone.mapping == nxt.mapping and gone.scale == nxt.scale:
            nxt.damage.add(gone.damage)
        else:
            nxt.damage.add_rect(0, 0, nxt.mapping.surface_width, nxt.mapping.surface_height)
        del w[best]
        self.dropped += 1
        return gone.nbytes

    # Ending ---------------------------------------------------------------------------------------

    def _drop(self, surface: Surface, show_current: bool) -> None:
        line = self.lines.pop(surface, None)
        self.shown.pop(surface, None)
        self._spare.clear()  # perhaps of its size: all memory of a surface leaving goes now
        if line is not None and show_current and surface.alive:
            surface.frame_damage.add_rect(0, 0, surface.width, surface.height)

    def forget(self, surface: Surface) -> None:
        """``surface`` is destroyed: its snapshots go now."""
        self._drop(surface, show_current=False)

    def close(self) -> None:
        """Off: every snapshot goes and the synced surfaces show their current pixels."""
        for s in list(self.lines):
            self._drop(s, show_current=True)
        self._spare.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
