"""A scripted input method and keyboard client for the compositor's input-method tests.

Usage: input_method.py SCENARIO. Prints what it saw, one line per event worth checking, and exits 3
when the compositor disconnected it with a protocol error (libwayland-client prints the error).

- ``commit TEXT``: become the input method; on every ``activate`` show a preedit and commit TEXT at
  once (a scripted pinyin engine: what fcitx5 does when a word is chosen), and print "committed" once
  the compositor has applied both (a roundtrip later); runs until killed.
- ``commit-then-key TEXT CODE``: as ``commit``, and right after the text a key (evdev CODE, pressed
  and released) through its virtual keyboard, as fcitx5 passes on a key it does not use after
  committing a word (pinyin off again: the next Latin key); "committed" once the compositor has all.
- ``keys-left-unsent CODE1 CODE2``: become the input method, grab the keyboard and make a virtual
  keyboard; on the first ``activate`` pass on key CODE1 (pressed and released) and flush, and leave
  CODE2 unsent until it next hears anything from the compositor, then send it. This is fcitx5 (5.0.21)
  after a burst of keys: it flushes after each key and, when the socket is full (the compositor busy
  reading), keeps the rest in its buffer until an event wakes it (it never waits for the socket to
  drain). Prints "sent CODE1" and "sent CODE2"; runs until killed.
- ``popup W H RGB``: become the input method; on every ``activate`` show a candidate window
  (zwp_input_popup_surface_v2) W x H pixels of one colour (hex RGB) and print "popup shown" once the
  compositor has it; print "rect X Y W H" for every text_input_rectangle it is told; runs until killed.
- ``second``: bind two input methods; print "unavailable" when the second is refused.
- ``vk-no-keymap``: a virtual keyboard that sends a key before its keymap (a protocol error).
- ``double-inhibit``: inhibit a surface's shortcuts twice (a protocol error).
"""

from __future__ import annotations

import errno
import mmap
import os
import sys
from typing import Any

from pywayland import lib
from pywayland.client import Display
from pywayland.protocol.keyboard_shortcuts_inhibit_unstable_v1 import ZwpKeyboardShortcutsInhibitManagerV1
from pywayland.protocol.wayland import WlCompositor, WlSeat, WlShm

from wayray.wayland.protocols.generated.input_method_unstable_v2 import ZwpInputMethodManagerV2
from wayray.wayland.protocols.generated.virtual_keyboard_unstable_v1 import ZwpVirtualKeyboardManagerV1


def connect() -> tuple[Display, dict[str, object]]:
    display = Display()
    display.connect()
    found: dict[str, object] = {}
    registry = display.get_registry()
    wanted = {
        "wl_seat": WlSeat,
        "wl_compositor": WlCompositor,
        "wl_shm": WlShm,
        "zwp_input_method_manager_v2": ZwpInputMethodManagerV2,
        "zwp_virtual_keyboard_manager_v1": ZwpVirtualKeyboardManagerV1,
        "zwp_keyboard_shortcuts_inhibit_manager_v1": ZwpKeyboardShortcutsInhibitManagerV1,
    }

    def on_global(reg, name, interface, version):  # type: ignore[no-untyped-def]
        if interface in wanted:
            found[interface] = reg.bind(name, wanted[interface], 1)

    registry.dispatcher["global"] = on_global
    display.roundtrip()
    return display, found


def say(text: str) -> None:
    print(text, flush=True)


def _error(display: Display) -> int:
    say("protocol error" if lib.wl_display_get_error(display._ptr) == errno.EPROTO else "disconnected")
    return 3


def run(display: Display) -> int:
    try:
        while display.dispatch(block=True) >= 0:
            pass
    except RuntimeError:  # pywayland raises on a display the compositor cut off
        pass
    return _error(display)


def verdict(display: Display) -> int:
    """After a mistake: the compositor's answer (3 and "protocol error" when it disconnected us)."""
    try:
        ok = display.roundtrip() >= 0
    except RuntimeError:
        ok = False
    if not ok:
        return _error(display)
    say("no error")
    return 0


def popup(display: Display, g: dict[str, object], width: int, height: int, rgb: int) -> int:
    im = g["zwp_input_method_manager_v2"].get_input_method(g["wl_seat"])  # type: ignore[attr-defined]
    activations = [0]
    im.dispatcher["activate"] = lambda _im: activations.__setitem__(0, activations[0] + 1)
    im.dispatcher["unavailable"] = lambda _im: say("unavailable")
    display.roundtrip()
    say("ready")
    kept: list[object] = []  # the candidate windows' proxies, alive until we exit
    handled = 0
    try:
        while display.dispatch(block=True) >= 0:
            while handled < activations[0]:
                handled += 1
                surface = g["wl_compositor"].create_surface()  # type: ignore[attr-defined]
                pop = im.get_input_popup_surface(surface)
                pop.dispatcher["text_input_rectangle"] = lambda _p, x, y, w, h: say(f"rect {x} {y} {w} {h}")
                stride, size = width * 4, width * height * 4
                fd = os.memfd_create("candidates")
                os.ftruncate(fd, size)
                with mmap.mmap(fd, size) as mm:
                    mm.write((rgb | 0xFF000000).to_bytes(4, "little") * (width * height))
                pool = g["wl_shm"].create_pool(fd, size)  # type: ignore[attr-defined]
                buf = pool.create_buffer(0, width, height, stride, WlShm.format.argb8888.value)
                pool.destroy()
                os.close(fd)
                surface.attach(buf, 0, 0)
                surface.damage(0, 0, width, height)
                surface.commit()
                kept += [surface, pop, buf]
                display.roundtrip()
                say("popup shown")
    except RuntimeError:
        pass
    return _error(display)


def virtual_keyboard(g: dict[str, object], seat: object) -> Any:
    """A virtual keyboard with a keymap of its own (the compositor types with the seat's keymap)."""
    vk = g["zwp_virtual_keyboard_manager_v1"].create_virtual_keyboard(seat)  # type: ignore[attr-defined]
    keymap = b"xkb_keymap { };\0"
    fd = os.memfd_create("keymap")
    os.write(fd, keymap)
    vk.keymap(1, fd, len(keymap))
    os.close(fd)
    return vk


def keys_left_unsent(display: Display, g: dict[str, object], first: int, second: int) -> int:
    seat = g["wl_seat"]
    im = g["zwp_input_method_manager_v2"].get_input_method(seat)  # type: ignore[attr-defined]
    grab = im.grab_keyboard()
    vk = virtual_keyboard(g, seat)
    activations = [0]
    im.dispatcher["activate"] = lambda _im: activations.__setitem__(0, activations[0] + 1)
    display.roundtrip()  # the grab's keymap, repeat info and modifiers: read before the keys go
    say("ready")
    left: list[int] = []
    try:
        while display.dispatch(block=True) >= 0:
            if left:  # something came from the compositor: the rest goes out now
                code = left.pop()
                vk.key(0, code, 1)
                vk.key(0, code, 0)
                display.flush()
                say(f"sent {code}")
            elif activations[0] == 1:
                activations[0] += 1
                vk.key(0, first, 1)
                vk.key(0, first, 0)
                display.flush()
                say(f"sent {first}")
                left.append(second)
    except RuntimeError:
        pass
    del grab
    return _error(display)


def main() -> int:
    scenario = sys.argv[1]
    display, g = connect()
    seat = g["wl_seat"]
    if scenario in ("commit", "commit-then-key"):
        text = sys.argv[2]
        im = g["zwp_input_method_manager_v2"].get_input_method(seat)  # type: ignore[attr-defined]
        vk = None
        if scenario == "commit-then-key":
            code = int(sys.argv[3])
            vk = virtual_keyboard(g, seat)
        serial = [0]

        def done(_im) -> None:  # type: ignore[no-untyped-def]
            serial[0] += 1

        activations = [0]
        im.dispatcher["done"] = done
        im.dispatcher["activate"] = lambda _im: activations.__setitem__(0, activations[0] + 1)
        im.dispatcher["unavailable"] = lambda _im: say("unavailable")
        display.roundtrip()
        say("ready")
        handled = 0
        try:
            while display.dispatch(block=True) >= 0:
                while handled < activations[0]:  # at once, in the batch that activated it
                    handled += 1
                    im.set_preedit_string("han zi", 0, 6)
                    im.commit(serial[0])
                    im.commit_string(text)
                    im.commit(serial[0])
                    if vk is not None:
                        vk.key(0, code, 1)
                        vk.key(0, code, 0)
                    display.roundtrip()  # the compositor has applied both before we say so
                    say("committed")
        except RuntimeError:  # pywayland raises on a display the compositor cut off
            pass
        return _error(display)
    if scenario == "keys-left-unsent":
        return keys_left_unsent(display, g, int(sys.argv[2]), int(sys.argv[3]))
    if scenario == "popup":
        return popup(display, g, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4], 16))
    if scenario == "second":
        manager = g["zwp_input_method_manager_v2"]
        first = manager.get_input_method(seat)  # type: ignore[attr-defined]
        second = manager.get_input_method(seat)  # type: ignore[attr-defined]
        first.dispatcher["unavailable"] = lambda _im: say("first unavailable")
        second.dispatcher["unavailable"] = lambda _im: say("second unavailable")
        display.roundtrip()
        display.roundtrip()
        return 0
    if scenario == "vk-no-keymap":
        vk = g["zwp_virtual_keyboard_manager_v1"].create_virtual_keyboard(seat)  # type: ignore[attr-defined]
        vk.key(0, 30, 1)
        return verdict(display)
    if scenario == "double-inhibit":
        surface = g["wl_compositor"].create_surface()  # type: ignore[attr-defined]
        manager = g["zwp_keyboard_shortcuts_inhibit_manager_v1"]
        first = manager.inhibit_shortcuts(surface, seat)  # type: ignore[attr-defined]
        second = manager.inhibit_shortcuts(surface, seat)  # type: ignore[attr-defined]
        code = verdict(display)
        del first, second  # kept until the verdict: a collected proxy could be destroyed earlier
        return code
    raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # not through pywayland's finalizers: proxies freed after the display crash it
