"""A scripted X11 client (xcffib) for the X window manager's tests: windows with exact properties.

    python -m tests.compositor.clients.xwin --title T [--size WxH] [--min WxH] [--max WxH]
        [--color RRGGBB] [--dialog] [--override-redirect X,Y] [--request WxH ...] [--no-delete]

It maps a window filled with ``--color`` (with WM_NAME, WM_CLASS "xwin", _NET_WM_PID, WM_PROTOCOLS
[WM_DELETE_WINDOW] unless ``--no-delete``, WM_NORMAL_HINTS from --min/--max; ``--recolor RRGGBB``
fills it with another colour on a key press); ``--dialog`` maps a
second window transient for it ("T dialog", half its size, blue); ``--override-redirect X,Y`` maps an
unmanaged window (a menu) at X,Y instead. Once mapped it asks for each ``--request`` size in turn
(ConfigureWindow, as a program resizing itself would). It prints one line per event the tests read:
``mapped WID``, ``configure WID W H X Y``, ``button WID X Y``, ``key WID CODE``, ``delete WID`` (then
exits 0). ``--moveresize DIR`` asks the WM to move (8) or resize (0-7) the window on a button press.
"""

from __future__ import annotations

import argparse
import os
import sys

import xcffib
import xcffib.xproto as xp


def size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def say(*words: object) -> None:
    print(*words, flush=True)


class XClient:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.conn = xcffib.connect()
        self.core = self.conn.core
        self.screen = self.conn.get_setup().roots[0]
        names = ("WM_PROTOCOLS", "WM_DELETE_WINDOW", "_NET_WM_PID", "UTF8_STRING", "_NET_WM_NAME",
                 "_NET_WM_STATE", "_NET_WM_STATE_FULLSCREEN", "_NET_WM_STATE_MAXIMIZED_VERT",
                 "_NET_WM_STATE_MAXIMIZED_HORZ", "WM_TAKE_FOCUS", "_NET_WM_MOVERESIZE")  # fmt: skip
        self.atoms = {n: self.core.InternAtom(False, len(n), n).reply().atom for n in names}
        self.windows: dict[int, int] = {}  # wid -> colour

    def window(
        self, title: str, wh: tuple[int, int], color: int, *, at: tuple[int, int] | None = None
    ) -> int:
        wid = self.conn.generate_id()
        mask = xp.CW.BackPixel | xp.CW.OverrideRedirect | xp.CW.EventMask
        events = (
            xp.EventMask.StructureNotify
            | xp.EventMask.ButtonPress
            | xp.EventMask.KeyPress
            | xp.EventMask.Exposure
            | xp.EventMask.FocusChange
        )
        x, y = at or (0, 0)
        self.core.CreateWindow(
            self.screen.root_depth, wid, self.screen.root, x, y, wh[0], wh[1], 0,
            xp.WindowClass.InputOutput, self.screen.root_visual, mask, [color, 1 if at else 0, events],
        )  # fmt: skip
        a, name = self.atoms, title.encode()
        self.core.ChangeProperty(
            xp.PropMode.Replace, wid, xp.Atom.WM_NAME, xp.Atom.STRING, 8, len(name), name
        )
        self.core.ChangeProperty(
            xp.PropMode.Replace, wid, a["_NET_WM_NAME"], a["UTF8_STRING"], 8, len(name), name
        )
        cls = b"xwin\0xwin\0"
        self.core.ChangeProperty(
            xp.PropMode.Replace, wid, xp.Atom.WM_CLASS, xp.Atom.STRING, 8, len(cls), cls
        )
        self.core.ChangeProperty(
            xp.PropMode.Replace, wid, a["_NET_WM_PID"], xp.Atom.CARDINAL, 32, 1, [os.getpid()]
        )
        protocols = [] if self.args.no_delete else [a["WM_DELETE_WINDOW"]]
        if self.args.take_focus:  # "globally active" (ICCCM 4.1.7): it sets the focus itself when told
            protocols.append(a["WM_TAKE_FOCUS"])
            self.core.ChangeProperty(xp.PropMode.Replace, wid, xp.Atom.WM_HINTS, xp.Atom.WM_HINTS, 32, 9,
                                     [1, 0] + [0] * 7)  # fmt: skip
        if protocols:
            self.core.ChangeProperty(
                xp.PropMode.Replace, wid, a["WM_PROTOCOLS"], xp.Atom.ATOM, 32, len(protocols), protocols
            )
        self._hints(wid)
        self.windows[wid] = color
        return wid

    def _hints(self, wid: int) -> None:
        flags, mn, mx = 0, (0, 0), (0, 0)
        if self.args.min:
            flags, mn = flags | 16, self.args.min
        if self.args.max:
            flags, mx = flags | 32, self.args.max
        if flags:
            hints = [flags, 0, 0, 0, 0, mn[0], mn[1], mx[0], mx[1]] + [0] * 9
            self.core.ChangeProperty(
                xp.PropMode.Replace, wid, xp.Atom.WM_NORMAL_HINTS, xp.Atom.WM_SIZE_HINTS, 32, 18, hints
            )

    def run(self) -> int:
        args = self.args
        at = tuple(int(v) for v in args.override_redirect.split(",")) if args.override_redirect else None
        for _ in range(args.flash):  # windows mapped and destroyed at once: the WM hears of the dead
            wid = self.window("flash", (50, 50), 0)
            self.core.MapWindow(wid)
            self.core.DestroyWindow(wid)
        self.main = self.window(args.title, args.size, int(args.color, 16), at=at)  # type: ignore[arg-type]
        if not args.never_map:
            self.core.MapWindow(self.main)
        self.conn.flush()
        self.requests = list(args.request)
        self.dialog: int | None = None
        while True:
            try:
                ev = self.conn.wait_for_event()
            except xcffib.Error as err:  # BadWindow for a flashed window, BadValue for a 0 size
                say("error", type(err).__name__)
                continue
            if isinstance(ev, xp.MapNotifyEvent):
                self.mapped(ev.window)
            elif isinstance(ev, xp.ConfigureNotifyEvent):
                say("configure", ev.window, ev.width, ev.height, ev.x, ev.y)
                if ev.window == self.main:
                    self.next_request()
            elif isinstance(ev, xp.ButtonPressEvent):
                say("button", ev.event, ev.event_x, ev.event_y, ev.detail)
                if self.args.moveresize is not None and ev.event == self.main:
                    self.moveresize(ev)
            elif isinstance(ev, xp.KeyPressEvent):
                self.key(ev)
            elif isinstance(ev, xp.ClientMessageEvent) and ev.type == self.atoms["WM_PROTOCOLS"]:
                if ev.data.data32[0] == self.atoms["WM_DELETE_WINDOW"]:
                    say("delete", ev.window)
                    return 0
                if ev.data.data32[0] == self.atoms["WM_TAKE_FOCUS"]:
                    say("take-focus", ev.window)
            self.conn.flush()

    def key(self, ev: xp.KeyPressEvent) -> None:
        say("key", ev.event, ev.detail)
        if self.args.recolor and ev.event == self.main:
            self.core.ChangeWindowAttributes(self.main, xp.CW.BackPixel, [int(self.args.recolor, 16)])
            self.core.ClearArea(False, self.main, 0, 0, 0, 0)

    def resize(self, w: int, h: int) -> None:
        self.core.ConfigureWindow(self.main, xp.ConfigWindow.Width | xp.ConfigWindow.Height, [w, h])

    def next_request(self) -> None:
        if self.requests:
            self.resize(*self.requests.pop(0))

    def mapped(self, wid: int) -> None:
        say("mapped", wid)
        if wid != self.main:
            return
        args = self.args
        if args.flood:
            for i in range(args.flood):
                self.resize(*((100000, 100000), (0, 0), (200 + i % 50, 150))[i % 3])
            say("flooded")
        if args.dialog and self.dialog is None:
            self.dialog = self.window(
                f"{args.title} dialog", (args.size[0] // 2, args.size[1] // 2), 0x0000FF
            )
            self.core.ChangeProperty(
                xp.PropMode.Replace,
                self.dialog,
                xp.Atom.WM_TRANSIENT_FOR,
                xp.Atom.WINDOW,
                32,
                1,
                [self.main],
            )
            self.core.MapWindow(self.dialog)
        self.next_request()
        if args.state:
            self.ask_state(args.state)

    def moveresize(self, press: xp.ButtonPressEvent) -> None:
        """Ask the WM to move or resize the window with the held button, as GTK's header bars do
        (EWMH _NET_WM_MOVERESIZE: the client gives up its pointer grab first)."""
        self.core.UngrabPointer(press.time)
        values = [press.root_x, press.root_y, self.args.moveresize, press.detail, 1]
        data = xp.ClientMessageData.synthetic(values, "I" * 5)
        ev = xp.ClientMessageEvent.synthetic(32, self.main, self.atoms["_NET_WM_MOVERESIZE"], data)
        mask = xp.EventMask.SubstructureRedirect | xp.EventMask.SubstructureNotify
        self.core.SendEvent(False, self.screen.root, mask, ev.pack())
        say("moveresize", self.main, self.args.moveresize)

    def ask_state(self, state: str) -> None:
        """Ask the WM for fullscreen or maximized, as EWMH says (a client message to the root)."""
        a = self.atoms
        props = (
            [a["_NET_WM_STATE_FULLSCREEN"], 0]
            if state == "fullscreen"
            else [a["_NET_WM_STATE_MAXIMIZED_VERT"], a["_NET_WM_STATE_MAXIMIZED_HORZ"]]
        )
        data = xp.ClientMessageData.synthetic([1, *props, 1, 0], "I" * 5)
        ev = xp.ClientMessageEvent.synthetic(32, self.main, a["_NET_WM_STATE"], data)
        mask = xp.EventMask.SubstructureRedirect | xp.EventMask.SubstructureNotify
        self.core.SendEvent(False, self.screen.root, mask, ev.pack())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--title", required=True)
    p.add_argument("--size", type=size, default=(320, 240))
    p.add_argument("--min", type=size)
    p.add_argument("--max", type=size)
    p.add_argument("--color", default="FF0000")
    p.add_argument("--dialog", action="store_true")
    p.add_argument("--override-redirect", metavar="X,Y")
    p.add_argument("--request", type=size, action="append", default=[])
    p.add_argument("--no-delete", action="store_true")
    p.add_argument("--flash", type=int, default=0, help="map and destroy N windows before the main one")
    p.add_argument(
        "--flood", type=int, default=0, help="N configure requests (huge, 0x0, ordinary) once mapped"
    )
    p.add_argument("--never-map", action="store_true", help="create the window, never map it")
    p.add_argument("--state", choices=("fullscreen", "maximized"), help="ask for it once mapped")
    p.add_argument("--take-focus", action="store_true", help="WM_HINTS input False, WM_TAKE_FOCUS")
    p.add_argument("--moveresize", type=int, help="on a button press, _NET_WM_MOVERESIZE this direction")
    p.add_argument("--recolor", metavar="RRGGBB", help="on a key press, fill the window with this colour")
    try:
        return XClient(p.parse_args()).run()
    except xcffib.ConnectionException:
        return 3


if __name__ == "__main__":
    sys.exit(main())
