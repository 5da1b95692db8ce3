"""Playing a wrclient script against a live viewer (see :mod:`wayray.client.script` for the language)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from wayray.client.backend import (
    ClipboardChangedEvent,
    ConnectionState,
    CursorImage,
    InputEvent,
    PointerAxisEvent,
    PointerButtonEvent,
    PointerMotionEvent,
    ScreenChangedEvent,
    TouchCancelEvent,
    TouchDownEvent,
    TouchFrameEvent,
    TouchMotionEvent,
    TouchUpEvent,
)
from wayray.client.keyboard import Keyboard, KeyLookupError
from wayray.client.script import Command, Op, Script, TouchAction
from wayray.client.snapshot import png_bytes
from wayray.client.viewer import Viewer
from wayray.common.errors import WayRayError
from wayray.common.files import write_atomic

log = logging.getLogger("wayray.client")

#: Wheel notches become this many pixels of scrolling (what libinput reports for one notch).
PIXELS_PER_NOTCH = 15.0
#: The commands that send input to the session (:meth:`ScriptRunner._input_events`).
_INPUT = frozenset({Op.TYPE, Op.KEY, Op.MOVE, Op.CLICK, Op.SCROLL, Op.COPY, Op.TAP, Op.SWIPE, Op.TOUCH})


class ScriptFailed(WayRayError):
    """A command of a script failed; the message starts with ``file:line:``."""


def snapshot(viewer: Viewer, path: Path, *, include_cursor: bool = False) -> None:
    """Write the viewer's picture (as decoded, in sync or not) to ``path`` as a PNG, atomically; while
    the session does not respond, with the notice the person sees over it."""
    fb = viewer.decoder.framebuffer
    if fb is None:
        raise WayRayError("no frame has arrived yet: nothing to write")
    cursor = None
    at = None
    state = viewer.cursor.state
    if include_cursor and state is not None:
        cursor = CursorImage(state.image, state.hotspot_x, state.hotspot_y)
        at = (state.x, state.y)
    notice = viewer.not_responding
    status = None if notice is None else (ConnectionState.NOT_RESPONDING, notice)
    try:
        write_atomic(path, png_bytes(fb, cursor, at, status=status), mode=None)
    except OSError as err:
        raise WayRayError(f"cannot write the snapshot {path}: {err.strerror}") from None


class ScriptRunner:
    def __init__(self, script: Script, viewer: Viewer, keyboard: Keyboard, *, timeout: float) -> None:
        self.script = script
        self.viewer = viewer
        self.keyboard = keyboard
        self.timeout = timeout
        self.pointer = (0.0, 0.0)

    async def run(self) -> None:
        for cmd in self.script.commands:
            where = self.script.where(cmd)
            log.debug("%s: %s", where, cmd.op)
            self.viewer.stats.script_marks.append((cmd.line, str(cmd.op), time.monotonic()))
            try:
                await self._run(cmd)
            except KeyLookupError as err:
                raise ScriptFailed(f"{where}: {cmd.op}: {err}") from None
            except ScriptFailed as err:
                raise ScriptFailed(f"{where}: {cmd.op}: {err.message}") from None
            except WayRayError as err:
                raise ScriptFailed(f"{where}: {cmd.op}: {err.message}") from None
        # A script may end right after its last key: the viewer leaves only once the server has
        # everything it sent (acknowledged), or the keys would be lost with the connection.
        if not await self.viewer.wait_delivered(self.timeout):
            raise ScriptFailed(self._why("the server did not acknowledge the script's last input"))

    async def _send(self, events: list[InputEvent]) -> None:
        if not await self.viewer.wait_connected(self.timeout):
            raise ScriptFailed(self._why("not connected to the session"))
        for e in events:
            self.viewer.handle_input(e)

    def _why(self, what: str) -> str:
        v = self.viewer
        if v.ending is not None:
            return f"{what}: the viewer stopped ({v.ending}: {v.ending_detail})"
        return f"{what} within {self.timeout:g} s" + (
            f" (last close: {v.stats.last_close})" if v.stats.last_close else ""
        )

    async def _run(self, cmd: Command) -> None:
        v = self.viewer
        if cmd.op in _INPUT:
            await self._send(self._input_events(cmd))
        elif cmd.op is Op.WAIT:
            await asyncio.sleep(cmd.ms / 1000)
        elif cmd.op is Op.WAIT_FOR:
            assert cmd.path is not None
            if not await _file_appears(cmd.path, self.timeout):
                raise ScriptFailed(self._why(f"{cmd.path} did not appear"))
        elif cmd.op is Op.SETTLE:
            if not await v.wait_settled(cmd.ms / 1000, self.timeout):
                raise ScriptFailed(self._why(f"the screen did not stay unchanged for {cmd.ms} ms"))
        elif cmd.op is Op.SNAPSHOT:
            assert cmd.path is not None
            if not await v.wait_complete(self.timeout):
                raise ScriptFailed(self._why("no complete picture"))
            snapshot(v, cmd.path, include_cursor=cmd.cursor)
            log.info("snapshot written to %s", cmd.path)
        elif cmd.op is Op.EXPECT_CLIPBOARD:
            if not await v.wait_clipboard(cmd.text, self.timeout):
                got = v.session_clipboard
                raise ScriptFailed(
                    self._why(f"the session's clipboard did not become {cmd.text!r} (it has {got})")
                )
        elif cmd.op is Op.RESIZE:
            resize = getattr(v.backend, "resize", None)
            if callable(resize):
                resize(*cmd.size)
            else:
                await self._send([ScreenChangedEvent(cmd.size[0], cmd.size[1])])
        else:  # pragma: no cover - Op is closed
            raise AssertionError(cmd.op)

    def _input_events(self, cmd: Command) -> list[InputEvent]:
        """What an input command sends to the session (a move or click moves the pointer first)."""
        if cmd.op is Op.TYPE:
            return list(self.keyboard.type_text(cmd.text))
        if cmd.op is Op.KEY:
            return list(self.keyboard.combo(cmd.text))
        if cmd.op is Op.COPY:
            return [ClipboardChangedEvent(cmd.text)]
        if cmd.op is Op.SCROLL:
            return [PointerAxisEvent(1 if cmd.horizontal else 0, cmd.amount * PIXELS_PER_NOTCH, cmd.amount)]
        if cmd.op in (Op.TAP, Op.SWIPE, Op.TOUCH):
            return _touch_events(cmd)
        self.pointer = (cmd.x, cmd.y)
        if cmd.op is Op.MOVE:
            return [PointerMotionEvent(cmd.x, cmd.y)]
        assert cmd.op is Op.CLICK, cmd.op
        return [
            PointerMotionEvent(cmd.x, cmd.y),
            PointerButtonEvent(cmd.button, True),
            PointerButtonEvent(cmd.button, False),
        ]


async def _file_appears(path: Path, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


def _touch_events(cmd: Command) -> list[InputEvent]:
    """What a touch command sends: its points' events, each step closed by a frame."""
    frame = TouchFrameEvent()
    if cmd.op is Op.TAP:
        return [TouchDownEvent(0, cmd.x, cmd.y), frame, TouchUpEvent(0), frame]
    if cmd.op is Op.SWIPE:
        events: list[InputEvent] = [TouchDownEvent(0, cmd.x, cmd.y), frame]
        for i in range(1, cmd.amount + 1):
            f = i / cmd.amount
            x = cmd.x + (cmd.x2 - cmd.x) * f
            y = cmd.y + (cmd.y2 - cmd.y) * f
            events += [TouchMotionEvent(0, x, y), frame]
        return [*events, TouchUpEvent(0), frame]
    if cmd.touch is TouchAction.DOWN:
        return [TouchDownEvent(cmd.touch_id, cmd.x, cmd.y), frame]
    if cmd.touch is TouchAction.MOVE:
        return [TouchMotionEvent(cmd.touch_id, cmd.x, cmd.y), frame]
    if cmd.touch is TouchAction.UP:
        return [TouchUpEvent(cmd.touch_id), frame]
    return [TouchCancelEvent(), frame]
