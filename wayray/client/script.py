"""wrclient's scripts: a few lines that drive a session like a person at the thin client would.

One command per line; ``#`` starts a comment line; blank lines are ignored::

    settle                      # wait until the screen has not changed for 500 ms
    type echo Hello from WayRay # the rest of the line, typed with the viewer's keymap
    type "two\\nlines"          # a double-quoted text takes \\n, \\t, \\" and \\\\ escapes
    key Return                  # one key, or a combo: ctrl+shift+t, alt+F4, altgr+q
    move 400 300                # the pointer to x, y (session output pixels)
    click 400 300 [left|right|middle]
    scroll 3 [horizontal]       # wheel notches; positive scrolls down (right)
    wait 250                    # milliseconds
    settle 1000                 # the screen unchanged for 1000 ms, and exact: no video stream
                                # left on it (fails after --timeout)
    wait-for /tmp/done          # until this file exists (fails after --timeout)
    snapshot shot.png [cursor]  # the framebuffer as PNG (with the pointer drawn: "cursor")
    copy some text              # put text on the viewer's clipboard (sent to the session)
    expect-clipboard some text  # wait until the session's clipboard holds exactly this text
    resize 1024x768             # the viewer's screen changed size: the session is asked to follow
    tap 200 150                 # a finger touches x, y and lifts (touch point 0)
    swipe 100 100 400 100 [N]   # a finger goes down, moves in N steps (10) to the second point, lifts
    touch down 1 300 200        # touch point 1 goes down at x, y (points are numbered 0-15)
    touch move 1 320 210        # ... moves (each touch command is one wl_touch frame)
    touch up 1                  # ... lifts
    touch cancel                # every point is gone, none of it meant

Parsing checks everything before anything runs; a mistake names the file and line. Running stops
at the first command that fails and says which.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from wayray.common.errors import UsageError
from wayray.common.sizes import parse_size


class Op(enum.StrEnum):
    TYPE = "type"
    KEY = "key"
    MOVE = "move"
    CLICK = "click"
    SCROLL = "scroll"
    WAIT = "wait"
    WAIT_FOR = "wait-for"
    SETTLE = "settle"
    SNAPSHOT = "snapshot"
    COPY = "copy"
    EXPECT_CLIPBOARD = "expect-clipboard"
    RESIZE = "resize"
    TAP = "tap"
    SWIPE = "swipe"
    TOUCH = "touch"


class TouchAction(enum.StrEnum):
    DOWN = "down"
    MOVE = "move"
    UP = "up"
    CANCEL = "cancel"


BUTTONS = {"left": 0x110, "right": 0x111, "middle": 0x112}
DEFAULT_SETTLE_MS = 500
DEFAULT_SWIPE_STEPS = 10
#: Touch point ids a script may use (the session takes 16 points at once).
MAX_TOUCH_ID = 15


@dataclass(frozen=True)
class Command:
    op: Op
    line: int
    text: str = ""
    x: float = 0.0
    y: float = 0.0
    button: int = BUTTONS["left"]
    amount: int = 0
    horizontal: bool = False
    ms: int = 0
    path: Path | None = None
    cursor: bool = False
    size: tuple[int, int] = (0, 0)
    touch: TouchAction | None = None
    touch_id: int = 0
    x2: float = 0.0
    y2: float = 0.0


@dataclass(frozen=True)
class Script:
    source: str
    commands: tuple[Command, ...]

    def where(self, cmd: Command) -> str:
        return f"{self.source}:{cmd.line}"


class ScriptError(UsageError):
    """A script that does not parse: the message starts with ``file:line:``."""


def load(path: Path) -> Script:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{path}: cannot read the script: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the script is not UTF-8 text") from None
    return parse(text, str(path))


def parse(text: str, source: str = "<script>") -> Script:
    commands = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            op = Op(word.lower())
        except ValueError:
            known = ", ".join(o.value for o in Op)
            raise ScriptError(f"{source}:{n}: unknown command {word!r} (known: {known})") from None
        try:
            commands.append(_command(op, rest, n))
        except ValueError as err:
            raise ScriptError(f"{source}:{n}: {op}: {err}") from None
    return Script(source, tuple(commands))


def _text_command(op: Op, rest: str, n: int) -> Command:
    """type, copy and expect-clipboard (the rest of the line is the text), key (one key or combo)."""
    if op is Op.KEY:
        args = rest.split()
        if len(args) != 1 or any(not part for part in args[0].split("+")):
            raise ValueError("needs one key or combo, e.g. Return or ctrl+shift+t")
        return Command(op, n, text=args[0])
    if not rest:
        raise ValueError("needs the text")
    return Command(op, n, text=_text(rest))


def _pointer_command(op: Op, args: list[str], n: int) -> Command:
    """move X Y, click X Y [button], scroll N [horizontal]."""
    if op is Op.MOVE:
        x, y = _xy(args, 2)
        return Command(op, n, x=x, y=y)
    if op is Op.CLICK:
        if len(args) not in (2, 3):
            raise ValueError("needs X Y and optionally left, right or middle")
        x, y = _xy(args[:2], 2)
        name = args[2].lower() if len(args) == 3 else "left"
        if name not in BUTTONS:
            raise ValueError(f"{args[2]!r} is not a button (left, right, middle)")
        return Command(op, n, x=x, y=y, button=BUTTONS[name])
    if len(args) not in (1, 2) or (len(args) == 2 and args[1] not in ("horizontal", "vertical")):
        raise ValueError("needs a number of notches, optionally followed by horizontal")
    return Command(op, n, amount=_int(args[0], "notches"), horizontal=args[1:] == ["horizontal"])


def _touch_command(op: Op, args: list[str], n: int) -> Command:
    """tap X Y, swipe X1 Y1 X2 Y2 [STEPS], touch down|move ID X Y, touch up ID, touch cancel."""
    if op is Op.TAP:
        x, y = _xy(args, 2)
        return Command(op, n, x=x, y=y)
    if op is Op.SWIPE:
        if len(args) not in (4, 5):
            raise ValueError("needs X1 Y1 X2 Y2 and optionally the number of steps")
        x, y = _xy(args[:2], 2)
        x2, y2 = _xy(args[2:4], 2)
        steps = _int(args[4], "steps", minimum=1) if len(args) == 5 else DEFAULT_SWIPE_STEPS
        return Command(op, n, x=x, y=y, x2=x2, y2=y2, amount=steps)
    actions = ", ".join(a.value for a in TouchAction)
    if not args:
        raise ValueError(f"needs what the finger does: {actions}")
    try:
        action = TouchAction(args[0].lower())
    except ValueError:
        raise ValueError(f"{args[0]!r} is not a touch action ({actions})") from None
    if action is TouchAction.CANCEL:
        if len(args) != 1:
            raise ValueError("cancel takes nothing more")
        return Command(op, n, touch=action)
    if len(args) < 2:
        raise ValueError(f"{action} needs the touch point's number (0-{MAX_TOUCH_ID})")
    touch_id = _int(args[1], "the touch point's number", minimum=0)
    if touch_id > MAX_TOUCH_ID:
        raise ValueError(f"touch points are numbered 0-{MAX_TOUCH_ID}")
    if action is TouchAction.UP:
        if len(args) != 2:
            raise ValueError("up takes only the touch point's number")
        return Command(op, n, touch=action, touch_id=touch_id)
    x, y = _xy(args[2:], 2)
    return Command(op, n, touch=action, touch_id=touch_id, x=x, y=y)


def _pause_command(op: Op, args: list[str], n: int) -> Command:
    """wait MS, settle [MS]."""
    if op is Op.WAIT:
        if len(args) != 1:
            raise ValueError("needs milliseconds")
        return Command(op, n, ms=_int(args[0], "milliseconds", minimum=0))
    if len(args) > 1:
        raise ValueError("takes at most the quiet time in milliseconds")
    return Command(op, n, ms=_int(args[0], "milliseconds", minimum=1) if args else DEFAULT_SETTLE_MS)


def _command(op: Op, rest: str, n: int) -> Command:
    args = rest.split()
    if op in (Op.TYPE, Op.COPY, Op.EXPECT_CLIPBOARD, Op.KEY):
        return _text_command(op, rest, n)
    if op in (Op.MOVE, Op.CLICK, Op.SCROLL):
        return _pointer_command(op, args, n)
    if op in (Op.TAP, Op.SWIPE, Op.TOUCH):
        return _touch_command(op, args, n)
    if op in (Op.WAIT, Op.SETTLE):
        return _pause_command(op, args, n)
    if op is Op.WAIT_FOR:
        if not rest.strip():
            raise ValueError("needs the path of a file to wait for")
        return Command(op, n, path=Path(rest.strip()))
    if op is Op.SNAPSHOT:
        if len(args) not in (1, 2) or (len(args) == 2 and args[1] != "cursor"):
            raise ValueError("needs a path, optionally followed by cursor")
        return Command(op, n, path=Path(args[0]), cursor=len(args) == 2)
    if op is Op.RESIZE:
        try:
            size = parse_size(rest)
        except ValueError:
            raise ValueError("needs WIDTHxHEIGHT, e.g. 1280x720") from None
        return Command(op, n, size=size)
    raise AssertionError(op)  # pragma: no cover - Op is closed


def _text(rest: str) -> str:
    if rest.startswith('"'):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError as err:
            raise ValueError(f'bad quoted text ({err.msg}); escape quotes as \\"') from None
        if not isinstance(value, str):
            raise ValueError("bad quoted text")
        return value
    return rest


def _xy(args: list[str], count: int) -> tuple[float, float]:
    if len(args) != count:
        raise ValueError("needs X and Y")
    try:
        x, y = (float(a) for a in args)
    except ValueError:
        raise ValueError(f"{' '.join(args)!r}: X and Y are numbers") from None
    if x < 0 or y < 0:
        raise ValueError("X and Y are not negative")
    return x, y


def _int(text: str, what: str, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r}: {what} must be a whole number") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be at least {minimum}")
    return value
