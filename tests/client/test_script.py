"""wrclient's script language and keyboard translation (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wayray.client.backend import KeyEvent
from wayray.client.keyboard import Keyboard, KeyLookupError, KeymapChoice
from wayray.client.script import BUTTONS, Op, ScriptError, parse
from wayray.common.errors import UsageError

KEY_Y, KEY_Z, KEY_T, KEY_ENTER, KEY_LEFTSHIFT, KEY_LEFTCTRL = 21, 44, 20, 28, 42, 29


def test_a_script_parses_every_command() -> None:
    s = parse(
        """# a comment
type echo hi
type "two\\nlines \\"quoted\\""
key ctrl+shift+t
move 10 20.5
click 30 40 right
scroll -3 horizontal
wait 250
settle
settle 900
snapshot out.png cursor
copy some text
expect-clipboard some text
resize 1024x768
""",
        "t.txt",
    )
    ops = [c.op for c in s.commands]
    assert ops == [
        Op.TYPE, Op.TYPE, Op.KEY, Op.MOVE, Op.CLICK, Op.SCROLL, Op.WAIT, Op.SETTLE, Op.SETTLE,
        Op.SNAPSHOT, Op.COPY, Op.EXPECT_CLIPBOARD, Op.RESIZE,
    ]  # fmt: skip
    c = s.commands
    assert c[0].text == "echo hi" and c[1].text == 'two\nlines "quoted"'
    assert (c[3].x, c[3].y) == (10, 20.5) and c[4].button == BUTTONS["right"]
    assert c[5].amount == -3 and c[5].horizontal
    assert c[7].ms == 500 and c[8].ms == 900
    assert c[9].path == Path("out.png") and c[9].cursor
    assert c[12].size == (1024, 768)
    assert s.where(c[2]) == "t.txt:4"


@pytest.mark.parametrize(
    "line,message",
    [
        ("jump 1 2", "t.txt:2: unknown command 'jump'"),
        ("click 1", "t.txt:2: click: needs X Y"),
        ("click 1 2 thumb", "'thumb' is not a button"),
        ("move -1 5", "not negative"),
        ("wait soon", "'soon': milliseconds must be a whole number"),
        ("settle 0", "at least 1"),
        ("type", "needs the text"),
        ('type "unterminated', "bad quoted text"),
        ("resize big", "WIDTHxHEIGHT"),
        ("snapshot", "needs a path"),
        ("key ctrl+", "needs one key"),
        ("wait-for", "t.txt:2: wait-for: needs the path of a file to wait for"),
    ],
)
def test_mistakes_name_the_file_and_line(line: str, message: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse(f"settle\n{line}\n", "t.txt")
    assert message in info.value.message
    assert info.value.exit_code == 2


def test_text_is_typed_with_the_viewers_layout() -> None:
    us = Keyboard.load(KeymapChoice.parse("us", None))
    de = Keyboard.load(KeymapChoice.parse("de", None))
    press = lambda code: [KeyEvent(code, True), KeyEvent(code, False)]  # noqa: E731
    assert us.type_text("z") == press(KEY_Z)
    assert de.type_text("z") == press(KEY_Y)  # QWERTZ
    assert de.type_text("y") == press(KEY_Z)
    assert us.type_text("T") == [
        KeyEvent(KEY_LEFTSHIFT, True),
        *press(KEY_T),
        KeyEvent(KEY_LEFTSHIFT, False),
    ]
    assert us.type_text("\n") == press(KEY_ENTER)


def test_wait_for_takes_the_rest_of_the_line_as_a_path() -> None:
    (cmd,) = parse("wait-for /tmp/a file\n").commands
    assert (cmd.op, cmd.path) == (Op.WAIT_FOR, Path("/tmp/a file"))


def test_key_combos() -> None:
    kb = Keyboard.load(KeymapChoice())
    assert kb.combo("ctrl+shift+t") == [
        KeyEvent(KEY_LEFTCTRL, True),
        KeyEvent(KEY_LEFTSHIFT, True),
        KeyEvent(KEY_T, True),
        KeyEvent(KEY_T, False),
        KeyEvent(KEY_LEFTSHIFT, False),
        KeyEvent(KEY_LEFTCTRL, False),
    ]
    assert kb.combo("Return")[0] == KeyEvent(KEY_ENTER, True)
    assert kb.combo("alt+F4")[1] == KeyEvent(62, True)
    with pytest.raises(KeyLookupError, match="not a modifier"):
        kb.combo("hyper+x")
    with pytest.raises(KeyLookupError, match="no key 'NoSuchKey'"):
        kb.combo("NoSuchKey")
    with pytest.raises(KeyLookupError, match="cannot type"):
        kb.type_text("字")


def test_an_unknown_layout_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="keymap nosuchlayout"):
        Keyboard.load(KeymapChoice.parse("nosuchlayout", None))
    assert KeymapChoice.parse("de,nodeadkeys", None) == KeymapChoice("de", "nodeadkeys")


def test_touch_commands_parse_into_points_and_frames() -> None:
    from wayray.client.backend import TouchDownEvent, TouchFrameEvent, TouchMotionEvent, TouchUpEvent
    from wayray.client.runner import _touch_events
    from wayray.client.script import TouchAction

    s = parse(
        "tap 10 20\nswipe 0 0 100 50 4\ntouch down 3 5 6\ntouch move 3 7 8\ntouch up 3\ntouch cancel\n"
    )
    tap, swipe, down, move, up, cancel = s.commands
    assert _touch_events(tap) == [
        TouchDownEvent(0, 10, 20),
        TouchFrameEvent(),
        TouchUpEvent(0),
        TouchFrameEvent(),
    ]
    events = _touch_events(swipe)
    motions = [e for e in events if isinstance(e, TouchMotionEvent)]
    assert [(m.x, m.y) for m in motions] == [(25, 12.5), (50, 25), (75, 37.5), (100, 50)]
    assert events.count(TouchFrameEvent()) == 6  # the down, every step and the lift: a frame each
    assert (down.touch, down.touch_id, down.x, down.y) == (TouchAction.DOWN, 3, 5, 6)
    assert (
        move.touch is TouchAction.MOVE and up.touch is TouchAction.UP and cancel.touch is TouchAction.CANCEL
    )


@pytest.mark.parametrize(
    "line,message",
    [
        ("touch", "t.txt:1: touch: needs what the finger does: down, move, up, cancel"),
        ("touch poke 1 2 3", "'poke' is not a touch action"),
        ("touch down 16 1 1", "touch points are numbered 0-15"),
        ("touch down 1 2", "needs X and Y"),
        ("touch up", "up needs the touch point's number"),
        ("touch cancel 1", "cancel takes nothing more"),
        ("swipe 1 2 3", "needs X1 Y1 X2 Y2"),
        ("swipe 1 2 3 4 0", "steps must be at least 1"),
        ("tap -1 2", "not negative"),
    ],
)
def test_touch_mistakes_are_named_with_file_and_line(line: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse(line + "\n", "t.txt")
