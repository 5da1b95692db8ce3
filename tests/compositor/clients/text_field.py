"""A text field (zwp_text_input_v3) that keeps the protocol's serials as strictly as foot does.

Usage: text_field.py GO_FILE [--restless], or text_field.py --cursor X Y W H. It maps a small window
(64 x 48); when its text input enters the window it enables it and commits (commit 1) and prints "enabled".
Then, without reading anything the compositor sends, it waits until GO_FILE exists (the test creates
it once the input method has committed its text), commits a cursor rectangle (commit 2), as foot does
when it draws its cursor after the focus came, and only then reads: the input method's text was
answered to commit 1, so it arrives stale. It prints "text: T" with all the text committed into it
so far, after that and whenever more comes, "preedit: P" whenever its preedit changes, and "key: N"
for every key (evdev code N) pressed on its keyboard: the lines come in the order the field applied
what it got, as foot would write them to its terminal. It stays until killed. With --cursor it
enables its text input with that cursor rectangle (surface coordinates), prints "enabled" once the
compositor has it, and then only reads. With GO_FILE --restless, after GO_FILE it commits a new cursor
rectangle at every ``done`` it reads once it has the input method's text (its cursor moves with every
character, as foot's does while a key it holds repeats), 500 times, then prints "calm" and only reads.

The rules it keeps are foot's (ime.c): a ``done`` whose serial is not the number of commits it has
made is ignored, and what came before it (preedit, commit string) stays pending for the next ``done``
that matches. A compositor that never answers the latest commit with a ``done`` leaves the text
pending for ever: it never reaches the program.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from misbehave import Client  # noqa: E402
from pywayland import ffi  # noqa: E402
from pywayland.protocol.text_input_unstable_v3 import ZwpTextInputManagerV3, ZwpTextInputV3  # noqa: E402
from pywayland.protocol_core.argument import ArgumentType  # noqa: E402
from pywayland.protocol_core.message import Message  # noqa: E402

_decode = Message.c_to_arguments


def _decode_null_strings(self: Message, args_ptr: Any) -> list[Any]:
    """pywayland 0.4 fails on a null string (preedit_string's and commit_string's "nothing"): it
    tests the argument, not its string, for NULL. Decode those as None."""
    nulls = [
        i
        for i, a in enumerate(self.arguments)
        if a.argument_type == ArgumentType.String and a.nullable and args_ptr[i].s == ffi.NULL
    ]
    empty = ffi.new("char[]", b"")
    for i in nulls:
        args_ptr[i].s = empty
    try:
        args = _decode(self, args_ptr)
    finally:
        for i in nulls:
            args_ptr[i].s = ffi.NULL
    for i in nulls:
        args[i] = None
    return args


Message.c_to_arguments = _decode_null_strings  # type: ignore[method-assign]


def say(text: str) -> None:
    print(text, flush=True)


class Field:
    def __init__(self, ti: Any) -> None:
        self.ti = ti
        self.commits = 0
        self.entered = False
        self.text = ""
        self.preedit = ""
        self.pending_commit: str | None = None
        self.pending_preedit: str | None = None
        #: Commits still to make, one at every done read (``--restless``, once it has text).
        self.restless = 0
        self.restless_after_text = 0
        ti.dispatcher["enter"] = self.on_enter
        ti.dispatcher["leave"] = self.on_leave
        ti.dispatcher["preedit_string"] = self.on_preedit
        ti.dispatcher["commit_string"] = self.on_commit_string
        ti.dispatcher["delete_surrounding_text"] = lambda *_a: None
        ti.dispatcher["done"] = self.on_done

    def commit(self) -> None:
        self.ti.commit()
        self.commits += 1

    def on_enter(self, _ti: Any, _surface: Any) -> None:
        self.entered = True

    def on_leave(self, _ti: Any, _surface: Any) -> None:
        self.entered = False

    def on_preedit(self, _ti: Any, text: str | None, _begin: int, _end: int) -> None:
        self.pending_preedit = text

    def on_commit_string(self, _ti: Any, text: str | None) -> None:
        self.pending_commit = text

    def on_done(self, _ti: Any, serial: int) -> None:
        self.apply(serial)
        if self.restless > 0:  # its cursor moved (a repeated character, say): it says so at once
            self.restless -= 1
            self.ti.set_cursor_rectangle(4 + self.restless % 2, 4, 8, 16)
            self.commit()
            if self.restless == 0:
                say("calm")

    def apply(self, serial: int) -> None:
        if serial != self.commits:
            return  # foot: "IME serial mismatch", and the pending state stays pending
        if self.pending_commit:
            self.text += self.pending_commit
            say(f"text: {self.text}")
            self.restless, self.restless_after_text = self.restless_after_text, 0
        preedit = self.pending_preedit or ""
        if preedit != self.preedit:
            self.preedit = preedit
            say(f"preedit: {preedit}")
        self.pending_commit = self.pending_preedit = None


def main() -> None:
    go = sys.argv[1]
    c = Client()
    registry = c.display.get_registry()
    managers: list[Any] = []

    def on_global(reg: Any, name: int, interface: str, _version: int) -> None:
        if interface == "zwp_text_input_manager_v3":
            managers.append(reg.bind(name, ZwpTextInputManagerV3, 1))

    registry.dispatcher["global"] = on_global
    c.display.roundtrip()
    field = Field(managers[0].get_text_input(c.globals["wl_seat"]))
    keyboard = c.globals["wl_seat"].get_keyboard()  # type: ignore[attr-defined]
    keyboard.dispatcher["keymap"] = lambda _kb, _format, fd, _size: os.close(fd)
    keyboard.dispatcher["key"] = lambda _kb, _serial, _time, key, state: state and say(f"key: {key}")
    c.mapped_toplevel()
    while not field.entered:
        c.display.dispatch(block=True)
    field.ti.enable()
    field.ti.set_content_type(ZwpTextInputV3.content_hint.none, ZwpTextInputV3.content_purpose.terminal)
    if go == "--cursor":
        field.ti.set_cursor_rectangle(*(int(v) for v in sys.argv[2:6]))
        field.commit()
        c.display.roundtrip()
        say("enabled")
        while c.display.dispatch(block=True) >= 0:
            pass
        return
    field.ti.set_cursor_rectangle(0, 0, 0, 0)
    field.commit()
    c.display.flush()
    say("enabled")
    while not os.path.exists(go):  # nothing is read meanwhile: the compositor's answers queue up
        time.sleep(0.02)
    field.ti.set_cursor_rectangle(4, 4, 8, 16)
    field.commit()
    if sys.argv[2:3] == ["--restless"]:
        field.restless_after_text = 500
    c.display.roundtrip()
    c.display.roundtrip()
    say(f"text: {field.text}")
    while c.display.dispatch(block=True) >= 0:
        pass


if __name__ == "__main__":
    main()
