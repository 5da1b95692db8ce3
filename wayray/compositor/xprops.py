"""Reading the ICCCM and EWMH properties of an X window for the X window manager (``xwm.py``).

Each read is a GetProperty waited for (see xwm.py on why that cannot deadlock); a window gone
meanwhile reads as empty. Values from clients are cut to sane ranges: sizes to ``MAX_SIZE``, frame
extents to 256 px, a maximum below the minimum ignored.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

import xcffib
import xcffib.xproto as xp

P_MIN_SIZE, P_MAX_SIZE = 16, 32
#: The largest X window the WM lets a client ask for (X's own limit is 32767).
MAX_SIZE = 16384


class XProps(Protocol):
    """The window's state the properties fill in (``xwm.XWindow``)."""

    wid: int
    title: str
    app_id: str
    pid: int
    protocols: set[int]
    transient_for: int | None
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    input_hint: bool
    undecorated: bool
    extents: tuple[int, int, int, int]


class PropertyReader:
    def __init__(self, core: Any, atoms: dict[str, int]) -> None:
        self.core = core
        self.atoms = atoms

    def get(self, wid: int, atom: int, kind: int = xp.GetPropertyType.Any) -> tuple[int, bytes]:
        try:
            reply = self.core.GetProperty(False, wid, atom, kind, 0, 2048).reply()
        except xcffib.Error:
            return (0, b"")
        return (reply.type, reply.value.buf())

    def read_all(self, win: XProps) -> None:
        self.read_title(win)
        _, wm_class = self.get(win.wid, xp.Atom.WM_CLASS)
        parts = wm_class.split(b"\0")
        win.app_id = (parts[1] if len(parts) > 1 else parts[0]).decode("utf-8", "replace")
        _, protocols = self.get(win.wid, self.atoms["WM_PROTOCOLS"], xp.Atom.ATOM)
        win.protocols = set(struct.unpack(f"={len(protocols) // 4}I", protocols[: len(protocols) // 4 * 4]))
        _, pid = self.get(win.wid, self.atoms["_NET_WM_PID"], xp.Atom.CARDINAL)
        win.pid = struct.unpack("=I", pid[:4])[0] if len(pid) >= 4 else 0
        self.read_size_hints(win)
        self.read_transient(win)
        self.read_frame(win)
        _, hints = self.get(win.wid, xp.Atom.WM_HINTS)
        if len(hints) >= 8:
            flags, value = struct.unpack("=2I", hints[:8])
            win.input_hint = not (flags & 1) or bool(value)  # InputHint given and False: no SetInputFocus

    def read_frame(self, win: XProps) -> None:
        _, motif = self.get(win.wid, self.atoms["_MOTIF_WM_HINTS"])
        if len(motif) >= 12:
            flags, _functions, decorations = struct.unpack("=3I", motif[:12])
            win.undecorated = bool(flags & 2) and decorations == 0  # MWM_HINTS_DECORATIONS, none
        _, extents = self.get(win.wid, self.atoms["_GTK_FRAME_EXTENTS"], xp.Atom.CARDINAL)
        if len(extents) >= 16:
            values = struct.unpack("=4I", extents[:16])
            win.extents = tuple(min(v, 256) for v in values)
        else:
            win.extents = (0, 0, 0, 0)

    def read_title(self, win: XProps) -> None:
        kind, net = self.get(win.wid, self.atoms["_NET_WM_NAME"])
        if net:
            win.title = net.decode("utf-8", "replace")
            return
        kind, name = self.get(win.wid, xp.Atom.WM_NAME)
        win.title = name.decode("utf-8" if kind == self.atoms["UTF8_STRING"] else "latin-1", "replace")

    def read_size_hints(self, win: XProps) -> None:
        _, hints = self.get(win.wid, xp.Atom.WM_NORMAL_HINTS)
        if len(hints) < 4 * 9:
            win.min_size = win.max_size = (0, 0)
            return
        flags, _x, _y, _w, _h, min_w, min_h, max_w, max_h = struct.unpack("=I4i4i", hints[:36])
        win.min_size = (
            (max(0, min(min_w, MAX_SIZE)), max(0, min(min_h, MAX_SIZE))) if flags & P_MIN_SIZE else (0, 0)
        )
        win.max_size = (
            (max(0, min(max_w, MAX_SIZE)), max(0, min(max_h, MAX_SIZE))) if flags & P_MAX_SIZE else (0, 0)
        )
        if (
            win.max_size[0]
            and win.max_size[0] < win.min_size[0]
            or win.max_size[1]
            and win.max_size[1] < win.min_size[1]
        ):
            win.max_size = (0, 0)

    def read_transient(self, win: XProps) -> None:
        _, data = self.get(win.wid, xp.Atom.WM_TRANSIENT_FOR, xp.Atom.WINDOW)
        win.transient_for = struct.unpack("=I", data[:4])[0] if len(data) >= 4 else None
