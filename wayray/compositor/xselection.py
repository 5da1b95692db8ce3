"""The clipboard and primary selection between X and Wayland clients, both ways (docs/xwayland.md §7).

The X window manager owns a hidden window for this. **X → Wayland**: XFixes tells it when an X client
takes ``CLIPBOARD`` or ``PRIMARY``; it asks the owner for its ``TARGETS`` and makes an ``XSource`` the
session's selection, which converts from X when a Wayland client (or the viewer) reads a type.
**Wayland → X**: when a Wayland client sets a selection, it takes the X selection, and answers X
clients' ``SelectionRequest``s with the Wayland source's data (read through a pipe, asynchronously).
Text goes as ``UTF8_STRING``/``TEXT``/``STRING`` ⇄ ``text/plain;charset=utf-8``/``text/plain``;
other types by their MIME name as the atom's. From X, large selections come in INCR pieces (ICCCM
2.7.2), up to 16 MiB; towards X, one larger than one X request is refused for now, and logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import xcffib
import xcffib.xfixes
import xcffib.xproto as xp

from wayray.compositor.data_device import MAX_SELECTION_BYTES, PipeWriter, Selection, SelectionKind, Source

log = logging.getLogger(__name__)

UTF8_MIME = "text/plain;charset=utf-8"
TEXT_MIMES = (UTF8_MIME, "text/plain", "UTF8_STRING", "TEXT", "STRING", "text/plain;charset=UTF-8")
TEXT_TARGETS = ("UTF8_STRING", "TEXT", "STRING")
SELECTIONS = {SelectionKind.CLIPBOARD: "CLIPBOARD", SelectionKind.PRIMARY: "PRIMARY"}
#: An INCR transfer whose next piece does not come this long after the last is abandoned.
INCR_TIMEOUT = 5.0


class SelectionHost(Protocol):
    """What the bridge needs of the compositor: its two selections and the pipe writer."""

    @property
    def clipboard(self) -> Selection: ...

    @property
    def primary(self) -> Selection: ...

    @property
    def pipe_writer(self) -> PipeWriter: ...


class XSource(Source):
    """An X client's selection as the session's: each read is a conversion from X."""

    def __init__(self, bridge: SelectionBridge, kind: SelectionKind, targets: dict[str, int]) -> None:
        self.bridge = bridge
        self.kind = kind
        self.targets = targets  # mime -> X target atom
        self.mime_types = list(targets)

    def send(self, mime: str, fd: int) -> None:
        target = self.targets.get(mime)
        if target is None:
            return
        out = os.dup(fd)
        writer = self.bridge.host.pipe_writer

        def done(data: bytes | None) -> None:
            if data is None:
                os.close(out)
            else:
                writer.write(out, data)

        self.bridge.convert(self.kind, target, done)


class SelectionBridge:
    def __init__(self, conn: Any, core: Any, root: int, visual: int, host: SelectionHost) -> None:
        self.conn = conn
        self.core = core
        self.host = host
        names = ("CLIPBOARD", "PRIMARY", "TARGETS", "UTF8_STRING", "TEXT", "INCR", "TIMESTAMP",
                 "WAYRAY_CLIPBOARD", "WAYRAY_PRIMARY")  # fmt: skip
        cookies = {n: core.InternAtom(False, len(n), n) for n in names}
        self.atoms: dict[str, int] = {n: c.reply().atom for n, c in cookies.items()}
        self.atoms["STRING"] = xp.Atom.STRING
        self.wid = conn.generate_id()
        core.CreateWindow(
            0, self.wid, root, -10, -10, 1, 1, 0, xp.WindowClass.InputOutput, visual,
            xp.CW.EventMask, [xp.EventMask.PropertyChange],
        )  # fmt: skip
        xfixes: Any = conn(xcffib.xfixes.key)
        xfixes.QueryVersion(5, 0).reply()
        mask = xcffib.xfixes.SelectionEventMask
        for name in SELECTIONS.values():
            events = mask.SetSelectionOwner | mask.SelectionWindowDestroy | mask.SelectionClientClose
            xfixes.SelectSelectionInput(self.wid, self.atoms[name], events)
        self._queues: dict[SelectionKind, deque[tuple[int, Callable[[bytes | None], None]]]] = {
            k: deque() for k in SELECTIONS
        }
        self._waiting: dict[SelectionKind, bool] = {k: False for k in SELECTIONS}
        self._owned: dict[SelectionKind, bool] = {k: False for k in SELECTIONS}
        self._max_bytes = conn.get_maximum_request_length() * 4 - 64
        self._tasks: set[asyncio.Task[None]] = set()
        self._incr: dict[SelectionKind, list[bytes]] = {}  # INCR transfers in progress: pieces so far
        self._incr_timer: dict[SelectionKind, asyncio.TimerHandle] = {}
        self.loop = asyncio.get_running_loop()
        self.closed = False
        for sel in (host.clipboard, host.primary):
            sel.watchers.append(self._wayland_changed)
            if sel.source is not None and not isinstance(sel.source, XSource):
                self._take_x_selection(sel.kind)
            else:  # an X client of an Xwayland before a restart may own it (XFixes tells only changes)
                owner = core.GetSelectionOwner(self.atoms[SELECTIONS[sel.kind]]).reply().owner
                if owner:
                    self.convert(
                        sel.kind, self.atoms["TARGETS"], functools.partial(self._got_targets, sel.kind)
                    )

    def close(self) -> None:
        self.closed = True
        for sel in (self.host.clipboard, self.host.primary):
            if self._wayland_changed in sel.watchers:
                sel.watchers.remove(self._wayland_changed)
            if isinstance(sel.source, XSource) and sel.source.bridge is self:
                sel.set(None, from_client=True)
            for _target, done in self._queues[sel.kind]:
                done(None)
        for task in self._tasks:
            task.cancel()
        for timer in self._incr_timer.values():
            timer.cancel()

    def _selection(self, kind: SelectionKind) -> Selection:
        return self.host.clipboard if kind is SelectionKind.CLIPBOARD else self.host.primary

    def _kind(self, atom: int) -> SelectionKind | None:
        for kind, name in SELECTIONS.items():
            if self.atoms[name] == atom:
                return kind
        return None

    def _atom_name(self, atom: int) -> str:
        try:
            return str(self.core.GetAtomName(atom).reply().name.to_string())
        except xcffib.Error:
            return ""

    def _intern(self, name: str) -> int:
        if name not in self.atoms:
            self.atoms[name] = self.core.InternAtom(False, len(name), name).reply().atom
        return self.atoms[name]

    # X -> Wayland -----------------------------------------------------------------------------

    def owner_changed(self, ev: Any) -> None:
        """XFixes: ``ev.owner`` took ``ev.selection`` (0: nobody has it now)."""
        kind = self._kind(ev.selection)
        if kind is None or ev.owner == self.wid:
            return
        self._owned[kind] = False
        if ev.owner == 0:
            sel = self._selection(kind)
            if isinstance(sel.source, XSource):
                sel.set(None, from_client=True)
            return
        self.convert(kind, self.atoms["TARGETS"], lambda data: self._got_targets(kind, data))

    def _got_targets(self, kind: SelectionKind, data: bytes | None) -> None:
        if data is None or self.closed:
            return
        atoms = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data) - 3, 4)]
        targets: dict[str, int] = {}
        for atom in atoms:
            name = self._atom_name(atom)
            if name in TEXT_TARGETS:
                targets.setdefault(UTF8_MIME if name != "STRING" else "text/plain", atom)
                targets.setdefault(name, atom)
            elif "/" in name:
                targets.setdefault(name, atom)
        if UTF8_MIME in targets:
            targets.setdefault("text/plain", targets[UTF8_MIME])
        if targets:
            self._selection(kind).set(XSource(self, kind, targets), from_client=True)

    def convert(self, kind: SelectionKind, target: int, done: Callable[[bytes | None], None]) -> None:
        """Ask the X owner of ``kind`` for ``target``; ``done(data or None)`` when it answered."""
        self._queues[kind].append((target, done))
        self._next(kind)

    def _next(self, kind: SelectionKind) -> None:
        if self._waiting[kind] or not self._queues[kind] or self.closed:
            return
        target, _ = self._queues[kind][0]
        self._waiting[kind] = True
        prop = self.atoms[f"WAYRAY_{SELECTIONS[kind]}"]
        self.core.ConvertSelection(self.wid, self.atoms[SELECTIONS[kind]], target, prop, xp.Time.CurrentTime)
        self.conn.flush()

    def converted(self, ev: Any) -> None:
        """SelectionNotify: the owner put what we asked for into our property (or refused)."""
        kind = self._kind(ev.selection)
        if kind is None or ev.requestor != self.wid or not self._queues[kind]:
            return
        data: bytes | None = None
        if ev.property != 0:
            reply = self.core.GetProperty(True, self.wid, ev.property, 0, 0, 0x1FFFFFFF).reply()
            if reply.type == self.atoms["INCR"]:
                # ICCCM 2.7.2: the owner sends it in pieces, each a new value of the property we
                # delete, and an empty one at the end (property_changed gathers them).
                self._incr[kind] = []
                self._incr_timer[kind] = self.loop.call_later(INCR_TIMEOUT, self._incr_stalled, kind)
                self.conn.flush()
                return
            data = reply.value.buf()
        self._finish(kind, data)

    def _finish(self, kind: SelectionKind, data: bytes | None) -> None:
        _, done = self._queues[kind].popleft()
        self._waiting[kind] = False
        self._incr.pop(kind, None)
        timer = self._incr_timer.pop(kind, None)
        if timer is not None:
            timer.cancel()
        try:
            done(data)
        finally:
            self._next(kind)

    def property_changed(self, ev: Any) -> None:
        """PropertyNotify on the bridge's window: the next piece of an INCR transfer."""
        kind = next((k for k in SELECTIONS if self.atoms[f"WAYRAY_{SELECTIONS[k]}"] == ev.atom), None)
        if kind is None or kind not in self._incr or ev.state != xp.Property.NewValue:
            return
        reply = self.core.GetProperty(True, self.wid, ev.atom, 0, 0, 0x1FFFFFFF).reply()
        piece = reply.value.buf()
        chunks = self._incr[kind]
        if not piece:
            self._finish(kind, b"".join(chunks))
            return
        chunks.append(piece)
        if sum(len(c) for c in chunks) > MAX_SELECTION_BYTES:
            log.warning("an X selection is larger than %d bytes: cut there", MAX_SELECTION_BYTES)
            self._finish(kind, b"".join(chunks)[:MAX_SELECTION_BYTES])
            return
        timer = self._incr_timer.pop(kind, None)
        if timer is not None:
            timer.cancel()
        self._incr_timer[kind] = self.loop.call_later(INCR_TIMEOUT, self._incr_stalled, kind)
        self.conn.flush()

    def _incr_stalled(self, kind: SelectionKind) -> None:
        self._incr_timer.pop(kind, None)
        if kind in self._incr and not self.closed:
            log.warning("an X client stopped sending its selection for %.0f s: abandoned", INCR_TIMEOUT)
            self._finish(kind, None)

    # Wayland -> X -----------------------------------------------------------------------------

    def _wayland_changed(self, kind: SelectionKind, source: Source | None) -> None:
        if self.closed or isinstance(source, XSource):
            return
        if source is None:
            if self._owned[kind]:
                self.core.SetSelectionOwner(0, self.atoms[SELECTIONS[kind]], xp.Time.CurrentTime)
                self._owned[kind] = False
                self.conn.flush()
            return
        self._take_x_selection(kind)

    def _take_x_selection(self, kind: SelectionKind) -> None:
        self.core.SetSelectionOwner(self.wid, self.atoms[SELECTIONS[kind]], xp.Time.CurrentTime)
        self._owned[kind] = True
        self.conn.flush()

    def requested(self, ev: Any) -> None:
        """SelectionRequest: an X client asks for our (the Wayland) selection as ``ev.target``."""
        kind = self._kind(ev.selection)
        source = self._selection(kind).source if kind is not None else None
        if kind is None or source is None or isinstance(source, XSource):
            self._notify(ev, 0)
            return
        mimes = list(source.mime_types)
        if ev.target == self.atoms["TARGETS"]:
            atoms = [self.atoms["TARGETS"]]
            if any(m in TEXT_MIMES for m in mimes):
                atoms += [self.atoms[t] for t in TEXT_TARGETS]
            atoms += [self._intern(m) for m in mimes if "/" in m]
            prop = ev.property or ev.target
            self.core.ChangeProperty(
                xp.PropMode.Replace, ev.requestor, prop, xp.Atom.ATOM, 32, len(atoms), atoms
            )
            self._notify(ev, prop)
            return
        mime = self._mime_for(self._atom_name(ev.target), mimes)
        if mime is None:
            self._notify(ev, 0)
            return
        task = asyncio.get_running_loop().create_task(self._answer(ev, kind, mime))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _mime_for(target: str, mimes: list[str]) -> str | None:
        if target in TEXT_TARGETS:
            return next((m for m in TEXT_MIMES if m in mimes), None)
        return target if target in mimes else None

    async def _answer(self, ev: Any, kind: SelectionKind, mime: str) -> None:
        data = await self._selection(kind).read(mime)
        if self.closed:
            return
        prop = ev.property or ev.target
        if data is None or len(data) > self._max_bytes:
            if data is not None:
                log.warning(
                    "a selection of %d bytes is too large for X without INCR: not bridged", len(data)
                )
            self._notify(ev, 0)
            return
        self.core.ChangeProperty(xp.PropMode.Replace, ev.requestor, prop, ev.target, 8, len(data), data)
        self._notify(ev, prop)

    def _notify(self, ev: Any, prop: int) -> None:
        note = xp.SelectionNotifyEvent.synthetic(ev.time, ev.requestor, ev.selection, ev.target, prop)
        self.core.SendEvent(False, ev.requestor, xp.EventMask.NoEvent, note.pack())
        self.conn.flush()
