"""The clipboard and primary selection between X and Wayland clients, both ways (docs/xwayland.md §7).

The X window manager owns a hidden window for this. **X → Wayland**: XFixes tells it when an X client
takes ``CLIPBOARD`` or ``PRIMARY``; it asks the owner for its ``TARGETS`` and makes an ``XSource`` the
session's selection, which converts from X when a Wayland client (or the viewer) reads a type.
**Wayland → X**: when a Wayland client sets a selection, it takes the X selection, and answers X
clients' ``SelectionRequest``s with the Wayland source's data (read through a pipe, asynchronously).
Text goes as ``UTF8_STRING``/``TEXT``/``STRING`` ⇄ ``text/plain;charset=utf-8``/``text/plain``;
other types by their MIME name as the atom's; ``TARGETS`` lists every type offered, ``TIMESTAMP`` says
when the bridge took the selection (ICCCM 2.6.2). Large selections go in INCR pieces (ICCCM 2.7.2)
both ways: from X up to 16 MiB (gathered, then offered); towards X without a limit, streamed from the
Wayland source's pipe one piece at a time as the X requestor takes them (``_Answer``), so the
compositor holds at most a piece or two per transfer.
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

from wayray.compositor.data_device import (
    MAX_SELECTION_BYTES,
    READ_TIMEOUT,
    CompositorSource,
    PipeWriter,
    Selection,
    SelectionKind,
    Source,
)

log = logging.getLogger(__name__)

UTF8_MIME = "text/plain;charset=utf-8"
TEXT_MIMES = (UTF8_MIME, "text/plain", "UTF8_STRING", "TEXT", "STRING", "text/plain;charset=UTF-8")
TEXT_TARGETS = ("UTF8_STRING", "TEXT", "STRING")
SELECTIONS = {SelectionKind.CLIPBOARD: "CLIPBOARD", SelectionKind.PRIMARY: "PRIMARY"}
#: An INCR transfer whose next piece does not come this long after the last is abandoned.
INCR_TIMEOUT = 5.0
#: Answers to X larger than this go in INCR pieces of this size (what GTK and Qt do as owners: every
#: X requestor of theirs reads INCR), smaller ones in one property.
INCR_CHUNK = 256 * 1024


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
    def __init__(
        self,
        conn: Any,
        core: Any,
        root: int,
        visual: int,
        host: SelectionHost,
        watched: Callable[[int], bool] = lambda wid: False,
    ) -> None:
        self.conn = conn
        self.core = core
        self.host = host
        #: Whether the window manager selects PropertyChange on this window already (its toplevels).
        self.watched = watched
        names = ("CLIPBOARD", "PRIMARY", "TARGETS", "UTF8_STRING", "TEXT", "INCR", "TIMESTAMP",
                 "WAYRAY_CLIPBOARD", "WAYRAY_PRIMARY", "WAYRAY_TIME")  # fmt: skip
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
        #: The X server's time when the bridge last took each selection (the answer to TIMESTAMP).
        self._owned_since: dict[SelectionKind, int] = {}
        self._pending_time: deque[SelectionKind] = deque()  # ownerships waiting for their time
        #: One property of a request is at most this large; INCR pieces never are.
        self.chunk = min(INCR_CHUNK, conn.get_maximum_request_length() * 4 - 64)
        #: Answers towards X in progress, by (requestor window, property).
        self._answers: dict[tuple[int, int], _Answer] = {}
        self._listening: dict[int, int] = {}  # requestor window -> answers that selected its events
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
        for answer in list(self._answers.values()):
            answer.abandon()
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
        """PropertyNotify on the bridge's window: the next piece of an INCR transfer from X, or the
        server's time of a selection the bridge just took."""
        if ev.atom == self.atoms["WAYRAY_TIME"]:
            if self._pending_time:
                self._owned_since[self._pending_time.popleft()] = ev.time
            return
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
        self._owned_since.pop(kind, None)
        # The server's time now (the PropertyNotify of an empty append carries it): what TIMESTAMP
        # answers, since X took the selection at the same instant for CurrentTime.
        self._pending_time.append(kind)
        time_atom = self.atoms["WAYRAY_TIME"]
        self.core.ChangeProperty(xp.PropMode.Append, self.wid, time_atom, xp.Atom.INTEGER, 32, 0, [])
        self.conn.flush()

    def requested(self, ev: Any) -> None:
        """SelectionRequest: an X client asks for our (the Wayland) selection as ``ev.target``."""
        kind = self._kind(ev.selection)
        source = self._selection(kind).source if kind is not None else None
        if kind is None or source is None or isinstance(source, XSource):
            self._notify(ev, 0)
            return
        mimes = list(source.mime_types)
        prop = ev.property or ev.target  # ICCCM 2.2: None from an obsolete client means the target
        if ev.target == self.atoms["TARGETS"]:
            atoms = [self.atoms["TARGETS"], self.atoms["TIMESTAMP"]]
            if any(m in TEXT_MIMES for m in mimes):
                atoms += [self.atoms[t] for t in TEXT_TARGETS]
            atoms += [self._intern(m) for m in mimes if m not in TEXT_TARGETS]
            atoms = list(dict.fromkeys(atoms))
            self.core.ChangeProperty(
                xp.PropMode.Replace, ev.requestor, prop, xp.Atom.ATOM, 32, len(atoms), atoms
            )
            self._notify(ev, prop)
            return
        if ev.target == self.atoms["TIMESTAMP"]:
            since = self._owned_since.get(kind)
            if since is None:
                self._notify(ev, 0)
                return
            self.core.ChangeProperty(
                xp.PropMode.Replace, ev.requestor, prop, xp.Atom.INTEGER, 32, 1, [since]
            )
            self._notify(ev, prop)
            return
        mime = self._mime_for(self._atom_name(ev.target), mimes)
        if mime is None:
            self._notify(ev, 0)
            return
        old = self._answers.get((ev.requestor, prop))
        if old is not None:  # the requestor reuses a property still in use: the old answer is void
            old.abandon()
        # TEXT asks for text in whatever encoding the owner likes (ICCCM 2.7.1): ours is UTF-8.
        kind_atom = self.atoms["UTF8_STRING"] if ev.target == self.atoms["TEXT"] else ev.target
        self._answers[(ev.requestor, prop)] = _Answer(self, ev, prop, kind_atom, self._selection(kind), mime)

    @staticmethod
    def _mime_for(target: str, mimes: list[str]) -> str | None:
        if target in TEXT_TARGETS:
            return next((m for m in TEXT_MIMES if m in mimes), None)
        return target if target in mimes else None

    def requestor_property(self, ev: Any) -> bool:
        """PropertyNotify on another client's window: an INCR requestor took a piece (True: ours)."""
        answer = self._answers.get((ev.window, ev.atom))
        if answer is None:
            return False
        if ev.state == xp.Property.Delete:
            answer.taken()
        return True

    def window_destroyed(self, wid: int) -> None:
        """A requestor's window went: its answers in progress end."""
        for (requestor, _prop), answer in list(self._answers.items()):
            if requestor == wid:
                answer.abandon(gone=True)

    def _listen(self, wid: int) -> None:
        """Hear the PropertyNotify (and DestroyNotify) of an INCR requestor's window."""
        if self.watched(wid):
            return
        self._listening[wid] = self._listening.get(wid, 0) + 1
        if self._listening[wid] == 1:
            mask = xp.EventMask.PropertyChange | xp.EventMask.StructureNotify
            self.core.ChangeWindowAttributes(wid, xp.CW.EventMask, [mask])

    def _unlisten(self, wid: int, gone: bool) -> None:
        count = self._listening.get(wid)
        if count is None:
            return
        if count > 1:
            self._listening[wid] = count - 1
            return
        del self._listening[wid]
        if not gone and not self.watched(wid):  # (gone: the window, or the connection)
            self.core.ChangeWindowAttributes(wid, xp.CW.EventMask, [xp.EventMask.NoEvent])

    def _answer_done(self, answer: _Answer, gone: bool) -> None:
        if self._answers.get(answer.key) is answer:
            del self._answers[answer.key]
        if answer.listening:
            self._unlisten(answer.requestor, gone or self.closed)

    def _notify(self, ev: Any, prop: int) -> None:
        note = xp.SelectionNotifyEvent.synthetic(ev.time, ev.requestor, ev.selection, ev.target, prop)
        self.core.SendEvent(False, ev.requestor, xp.EventMask.NoEvent, note.pack())
        self.conn.flush()


class _Answer:
    """One answer to an X requestor, read from the Wayland source's pipe (ICCCM 2.7.2 for INCR).

    What fits in one piece goes as one property. A larger answer starts with an ``INCR`` property;
    each time the requestor deletes the property it gets the next piece (``Append`` to the deleted
    property), and an empty one ends it. The pipe is read only while less than a piece waits, so a
    large selection flows at the requestor's pace and never sits whole in the compositor. A source
    silent for ``READ_TIMEOUT`` or a requestor taking no piece for ``INCR_TIMEOUT`` ends it.
    """

    def __init__(
        self, bridge: SelectionBridge, ev: Any, prop: int, type_atom: int, selection: Selection, mime: str
    ) -> None:
        self.bridge = bridge
        self.ev = ev
        self.requestor = ev.requestor
        self.prop = prop
        self.key = (ev.requestor, prop)
        self.type_atom = type_atom
        self.buf = bytearray()
        self.pos = 0  # what of buf went to X already
        self.eof = False
        self.incr = False  # sent as INCR pieces
        self.ready = False  # the requestor deleted the property: it wants the next piece
        self.listening = False
        self.sent = 0
        self.done = False
        self.fd: int | None = None
        self._reading = False
        loop = bridge.loop
        self._timer: asyncio.TimerHandle | None = loop.call_later(READ_TIMEOUT, self._stalled)
        source = selection.source
        if source is None:
            self.abandon()
            return
        if isinstance(source, CompositorSource):
            data = source.data.get(mime)
            if data is None:
                self.abandon()
                return
            self.buf = bytearray(data)
            self.eof = True
            self._pump()
            return
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.fd = rfd
        try:
            source.send(mime, wfd)
            selection.display.flush()
        finally:
            os.close(wfd)
        self._pump()

    @property
    def waiting(self) -> int:
        return len(self.buf) - self.pos

    def _readable(self) -> None:
        assert self.fd is not None
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            log.debug("reading the Wayland selection for X failed: %s", err)
            chunk = b""
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        if chunk:
            self.buf += chunk
        else:
            self.eof = True
            self._close_fd()
        self._restart_timer(READ_TIMEOUT if not self.incr else INCR_TIMEOUT)
        self._pump()

    def _pump(self) -> None:
        if self.done:
            return
        bridge, core = self.bridge, self.bridge.core
        chunk = bridge.chunk
        if not self.incr:
            if self.eof and self.waiting <= chunk:  # all of it came, and it fits in one property
                data = bytes(self.buf)
                core.ChangeProperty(
                    xp.PropMode.Replace, self.requestor, self.prop, self.type_atom, 8, len(data), data
                )
                bridge._notify(self.ev, self.prop)
                self._finish()
                return
            if self.waiting > chunk:
                self.incr = True
                self.listening = True
                bridge._listen(self.requestor)
                core.ChangeProperty(
                    xp.PropMode.Replace,
                    self.requestor,
                    self.prop,
                    bridge.atoms["INCR"],
                    32,
                    1,
                    [self.waiting],
                )
                bridge._notify(self.ev, self.prop)
                self._restart_timer(INCR_TIMEOUT)
        elif self.ready and (self.waiting >= chunk or self.eof):
            piece = bytes(self.buf[self.pos : self.pos + chunk])
            self.pos += len(piece)
            self.sent += len(piece)
            self.ready = False
            core.ChangeProperty(
                xp.PropMode.Append, self.requestor, self.prop, self.type_atom, 8, len(piece), piece
            )
            self._restart_timer(INCR_TIMEOUT)
            if not piece:  # the empty piece: the end (the requestor deletes it, nobody waits for that)
                log.debug("sent a selection of %d bytes to X in INCR pieces", self.sent)
                self._finish()
                bridge.conn.flush()
                return
        self._want_data(not self.eof and self.waiting <= chunk)
        bridge.conn.flush()

    def taken(self) -> None:
        """The requestor deleted the property: it read the INCR property or the last piece."""
        if self.incr and not self.done:
            self.ready = True
            self._pump()

    def _want_data(self, on: bool) -> None:
        if self.fd is None or on == self._reading:
            return
        self._reading = on
        if on:
            self.bridge.loop.add_reader(self.fd, self._readable)
        else:
            self.bridge.loop.remove_reader(self.fd)

    def _restart_timer(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.bridge.loop.call_later(delay, self._stalled)

    def _stalled(self) -> None:
        self._timer = None
        if self.done:
            return
        if self.incr and self.ready or not self.incr:
            log.warning("a Wayland client sent no more of its selection for X: abandoned")
        else:
            log.warning("an X client stopped taking a selection in INCR pieces: abandoned")
        self.abandon()

    def abandon(self, gone: bool = False) -> None:
        """End it early: a refusal if the requestor was not answered yet; else it just stops (the
        requestor's own timeout ends its side)."""
        if self.done:
            return
        if not self.incr and not gone and not self.bridge.closed:
            self.bridge._notify(self.ev, 0)
        self._finish(gone)

    def _finish(self, gone: bool = False) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._close_fd()
        self.buf = bytearray()
        self.bridge._answer_done(self, gone)

    def _close_fd(self) -> None:
        if self.fd is not None:
            self._want_data(False)
            os.close(self.fd)
            self.fd = None
