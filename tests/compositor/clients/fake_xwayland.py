"""A stand-in for an Xwayland that speaks xwayland_shell_v1 (Debian 12's 22.1.9 does not), for the
protocol test of the compositor's side (docs/xwayland.md §4).

Started by the compositor in Xwayland's place, with Xwayland's arguments and its WAYLAND_SOCKET (the
connection the compositor knows as Xwayland's). It runs the real Xwayland for the X side (the -wm,
-displayfd and -listenfd descriptors are passed on) but connects that one as an ordinary Wayland
client, so its own WL_SURFACE_ID pairing cannot succeed; on WAYLAND_SOCKET it plays Xwayland's other
half as 23.1 does: binds xwayland_shell_v1, and for each top-level X window mapped makes a wl_surface
(filled with magenta, not the window's colour), gives it the serial (1 << 32) + n with
get_xwayland_surface/set_serial/commit, and sends the window's WL_SURFACE_SERIAL client message to the
root as Xwayland does. Odd windows get the message before the commit, even ones after. It prints
``bound xwayland_shell_v1`` and ``paired WID SERIAL``. With ``FAKE_XWAYLAND_CHECK`` it breaks one
rule of the protocol instead (see ``misbehave``) and starts no X server.
"""

from __future__ import annotations

import mmap
import os
import select
import subprocess
import sys
from pathlib import Path

import xcffib
import xcffib.xproto as xp
from pywayland.client import Display
from pywayland.protocol.wayland import WlCompositor, WlShm
from pywayland.protocol.xwayland_shell_v1 import XwaylandShellV1

MAGENTA = b"\xff\x00\xff\xff"  # ARGB8888 little-endian


def say(*words: object) -> None:
    print(*words, flush=True)


def main() -> int:
    argv = sys.argv[1:]
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    sockets = [p.name for p in runtime.iterdir() if p.is_socket()]
    env = dict(os.environ)
    wayland_socket = int(env.pop("WAYLAND_SOCKET"))
    env["WAYLAND_DISPLAY"] = sockets[0]
    fds = [
        int(a) for flag, a in zip(argv, argv[1:], strict=False) if flag in ("-wm", "-displayfd", "-listenfd")
    ]
    check = os.environ.get("FAKE_XWAYLAND_CHECK")
    if check is None:
        xwayland = subprocess.Popen(["Xwayland", *argv], env=env, pass_fds=fds)
    for fd in fds:
        os.close(fd)

    display = Display(wayland_socket)
    display.connect()
    found: dict[str, object] = {}
    registry = display.get_registry()

    def on_global(reg, name, interface, version):  # type: ignore[no-untyped-def]
        if interface == "wl_compositor":
            found[interface] = reg.bind(name, WlCompositor, 4)
        elif interface == "wl_shm":
            found[interface] = reg.bind(name, WlShm, 1)
        elif interface == "xwayland_shell_v1":
            found[interface] = reg.bind(name, XwaylandShellV1, 1)

    registry.dispatcher["global"] = on_global
    display.roundtrip()
    if "xwayland_shell_v1" not in found:
        say("no xwayland_shell_v1")
        return 1
    say("bound xwayland_shell_v1")
    if check is not None:
        return misbehave(display, found, check)
    # The real Xwayland's WL_SURFACE_ID names ids of its own connection; the XWM looks them up on this
    # one. Objects that are not surfaces hold the low ids, so none of ours is ever taken for its.
    keep = [found["wl_compositor"].create_region() for _ in range(2000)]  # type: ignore[attr-defined]

    return serve(display, found, xwayland, argv[0], keep)


def serve(
    display: Display, found: dict[str, object], xwayland: subprocess.Popen[bytes], name: str, keep: object
) -> int:
    """Pair every top-level X window mapped on display ``name`` until the real Xwayland ends."""
    conn = xcffib.connect(display=name)
    core = conn.core
    root = conn.get_setup().roots[0].root
    core.ChangeWindowAttributes(root, xp.CW.EventMask, [xp.EventMask.SubstructureNotify])
    conn.flush()
    objects: list[object] = [keep]
    paired: list[int] = []

    def pair_once(window: int) -> None:
        if window not in paired:
            paired.append(window)
            n = len(paired)
            objects.extend(pair(display, conn, found, window, (1 << 32) + n, message_first=bool(n % 2)))

    # X programs may have mapped windows before this connection listened (the real Xwayland is up
    # before this stand-in has connected to it): those already on screen are paired now.
    for child in core.QueryTree(root).reply().children:
        if core.GetWindowAttributes(child).reply().map_state == xp.MapState.Viewable:
            pair_once(child)
    while xwayland.poll() is None:
        display.flush()
        ready, _, _ = select.select([conn.get_file_descriptor(), display.get_fd()], [], [], 0.2)
        if display.get_fd() in ready:
            display.dispatch(block=True)
        while (ev := conn.poll_for_event()) is not None:
            if isinstance(ev, xp.MapNotifyEvent) and ev.event == root:
                pair_once(ev.window)
    return xwayland.returncode or 0


def pair(
    display: Display,
    conn: xcffib.Connection,
    found: dict[str, object],
    window: int,
    serial: int,
    *,
    message_first: bool,
) -> list[object]:
    """Give ``window`` a magenta surface of ours with ``serial``, as Xwayland 23.1 does."""
    core = conn.core
    compositor, shm, shell = found["wl_compositor"], found["wl_shm"], found["xwayland_shell_v1"]
    serial_atom = core.InternAtom(False, 17, "WL_SURFACE_SERIAL").reply().atom
    geo = core.GetGeometry(window).reply()
    w, h = max(1, geo.width), max(1, geo.height)
    size = w * h * 4
    fd = os.memfd_create("fake-xwayland")
    os.ftruncate(fd, size)
    with mmap.mmap(fd, size) as mm:
        mm.write(MAGENTA * (w * h))
    pool = shm.create_pool(fd, size)  # type: ignore[attr-defined]
    os.close(fd)
    buffer = pool.create_buffer(0, w, h, w * 4, WlShm.format.argb8888.value)
    surface = compositor.create_surface()  # type: ignore[attr-defined]
    xsurface = shell.get_xwayland_surface(surface)  # type: ignore[attr-defined]

    def x_message() -> None:
        root = conn.get_setup().roots[0].root
        data = xp.ClientMessageData.synthetic([serial & 0xFFFFFFFF, serial >> 32, 0, 0, 0], "I" * 5)
        msg = xp.ClientMessageEvent.synthetic(32, window, serial_atom, data)
        core.SendEvent(False, root, xp.EventMask.SubstructureRedirect, msg.pack())
        conn.flush()

    if message_first:
        x_message()
    xsurface.set_serial(serial & 0xFFFFFFFF, serial >> 32)
    surface.attach(buffer, 0, 0)
    surface.damage(0, 0, w, h)
    surface.commit()
    display.roundtrip()
    if not message_first:
        x_message()
    say("paired", window, serial)
    return [pool, buffer, surface, xsurface]


def misbehave(display: Display, found: dict[str, object], check: str) -> int:
    """FAKE_XWAYLAND_CHECK: break a rule of the protocol (``role``: a second xwayland_surface for one
    surface; ``serial0``: the serial 0 committed) and report whether the compositor ended this
    connection for it."""
    surface = found["wl_compositor"].create_surface()  # type: ignore[attr-defined]
    shell = found["xwayland_shell_v1"]
    first = shell.get_xwayland_surface(surface)  # type: ignore[attr-defined]
    if check == "role":
        shell.get_xwayland_surface(surface)  # type: ignore[attr-defined]
    else:
        first.set_serial(0, 0)
        surface.commit()
    try:
        display.roundtrip()
        display.roundtrip()
    except Exception as err:  # pywayland: the connection's end after the protocol error
        say("disconnected", type(err).__name__)
        return 0
    say("still connected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
