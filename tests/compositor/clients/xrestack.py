"""Ask for an X window's restacking as a program does (ConfigureWindow with a stack mode).

    python xrestack.py WID MODE [SIBLING]

MODE is Above, Below, TopIf, BottomIf or Opposite; SIBLING a window id. Under a window manager the
request is redirected to it (a ConfigureRequest); this exits once it was sent.
"""

from __future__ import annotations

import sys

import xcffib
import xcffib.xproto as xp


def main() -> int:
    wid, mode = int(sys.argv[1], 0), getattr(xp.StackMode, sys.argv[2])
    conn = xcffib.connect()
    if len(sys.argv) > 3:
        mask, values = xp.ConfigWindow.Sibling | xp.ConfigWindow.StackMode, [int(sys.argv[3], 0), mode]
    else:
        mask, values = xp.ConfigWindow.StackMode, [mode]
    conn.core.ConfigureWindowChecked(wid, mask, values).check()
    conn.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
