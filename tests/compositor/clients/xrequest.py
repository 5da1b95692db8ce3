"""An X client asking for the clipboard by hand (xcffib), for the selection bridge's tests.

    python xrequest.py [--target UTF8_STRING] [--stall]

It converts CLIPBOARD to ``--target`` into a property of its own window and prints ``type NAME`` (the
reply's type: ``INCR`` for an answer in pieces); then it reads the pieces (ICCCM 2.7.2) and prints
``got N`` with the total length. ``--stall`` stops after the first line and never takes a piece, as a
hung program would.
"""

from __future__ import annotations

import argparse
import sys
import time

import xcffib
import xcffib.xproto as xp


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--target", default="UTF8_STRING")
    p.add_argument("--stall", action="store_true")
    args = p.parse_args()
    conn = xcffib.connect()
    core = conn.core
    screen = conn.get_setup().roots[0]

    def atom(name: str) -> int:
        return int(core.InternAtom(False, len(name), name).reply().atom)

    wid = conn.generate_id()
    core.CreateWindow(0, wid, screen.root, 0, 0, 1, 1, 0, xp.WindowClass.InputOutput, screen.root_visual,
                      xp.CW.EventMask, [xp.EventMask.PropertyChange])  # fmt: skip
    prop, incr = atom("XREQUEST"), atom("INCR")
    core.ConvertSelection(wid, atom("CLIPBOARD"), atom(args.target), prop, xp.Time.CurrentTime)
    conn.flush()
    while True:
        ev = conn.wait_for_event()
        if isinstance(ev, xp.SelectionNotifyEvent):
            break
    if ev.property == 0:
        print("refused", flush=True)
        return 1
    reply = core.GetProperty(False, wid, prop, xp.GetPropertyType.Any, 0, 0x1FFFFFFF).reply()
    name = core.GetAtomName(reply.type).reply().name.to_string()
    print("type", name, flush=True)
    if args.stall:
        while True:
            time.sleep(60)
    if reply.type != incr:
        print("got", len(reply.value.buf()), flush=True)
        return 0
    core.DeleteProperty(wid, prop)  # "give me the first piece"
    conn.flush()
    total = 0
    while True:
        ev = conn.wait_for_event()
        if not isinstance(ev, xp.PropertyNotifyEvent) or ev.state != xp.Property.NewValue:
            continue
        piece = core.GetProperty(True, wid, prop, xp.GetPropertyType.Any, 0, 0x1FFFFFFF).reply()
        conn.flush()
        size = len(piece.value.buf())
        if size == 0:
            print("got", total, flush=True)
            return 0
        total += size


if __name__ == "__main__":
    sys.exit(main())
