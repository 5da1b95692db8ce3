"""Limits a configuration file must keep before it is parsed, checked in one linear pass.

``tomllib`` recurses once per nesting level (arrays and inline tables nested 5,000 deep raise
``RecursionError``), keeps a tuple per prefix of a dotted key (a key of 50,000 parts takes gigabytes
before it fails with ``MemoryError``) and converts numbers with ``int()`` (5,000 digits raise
``ValueError``). None of that is an error message. A WayRay configuration needs nothing near these
limits, so they are checked first, with the position of the offending place:

- arrays and inline tables nested at most :data:`MAX_DEPTH` deep;
- keys and table headers of at most :data:`MAX_KEY_PARTS` dotted parts;
- values that are not strings (numbers, dates, booleans) of at most :data:`MAX_BARE_VALUE` characters.

The scan knows TOML's lexical structure (comments, the four kinds of strings, brackets) but does not
validate anything else: text it cannot follow (an unterminated string) ends the scan, and ``tomllib``
then reports the syntax error. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

MAX_DEPTH = 32
MAX_KEY_PARTS = 16
MAX_BARE_VALUE = 100

_WS = re.compile(r"[ \t\r]+")
_COMMENT = re.compile(r"#[^\n]*")
_BASIC = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_LITERAL = re.compile(r"'[^'\n]*'")
_ML_BASIC = re.compile(r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""(?:"{1,2})?')
_ML_LITERAL = re.compile(r"'''[\s\S]*?'''(?:'{1,2})?")
_WORD = re.compile(r"""[^\s\[\]{}=.,#"']+""")

#: (message, (line, column)) of a limit a text exceeds.
Problem = tuple[str, tuple[int, int]]


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def check_limits(text: str) -> Problem | None:
    """The first limit ``text`` exceeds, as (message, (line, column)); None when it keeps them all."""
    try:
        _Scan(text).run()
    except _Stop as stop:
        return stop.problem
    return None


class _Stop(Exception):
    """Ends the scan: with the limit exceeded, or None where the text is not TOML the scan can
    follow (``tomllib`` then says what is wrong, and where)."""

    def __init__(self, problem: Problem | None) -> None:
        super().__init__()
        self.problem = problem


class _Scan:
    """The one pass: a step for each kind of token, and what they need to know where they are."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.stack: list[str] = []  # "[" (array) or "{" (inline table) for each open value container
        self.expect_key = True  # at a key (start of a line, after "{" or "," in an inline table) or a value
        self.in_header = False
        self.parts = 0  # parts of the key so far
        self.key_start = 0
        self.after_dot = False

    def run(self) -> None:
        text, n, steps = self.text, len(self.text), self._STEPS
        while self.i < n:
            steps.get(text[self.i], _Scan._word)(self)

    def _newline(self) -> None:
        if not self.stack:
            self.expect_key, self.in_header, self.parts, self.after_dot = True, False, 0, False
        self.i += 1

    def _space(self) -> None:
        m = _WS.match(self.text, self.i)
        self.i = m.end() if m else self.i + 1

    def _comment(self) -> None:
        m = _COMMENT.match(self.text, self.i)
        self.i = m.end() if m else len(self.text)

    def _string(self) -> None:
        text, i = self.text, self.i
        c = text[i]
        if text.startswith(c * 3, i):
            m = (_ML_BASIC if c == '"' else _ML_LITERAL).match(text, i)
        else:
            m = (_BASIC if c == '"' else _LITERAL).match(text, i)
        if m is None:
            raise _Stop(None)  # unterminated: tomllib says where
        if self.expect_key or self.in_header:
            self._key_part()
        self.i = m.end()

    def _dot(self) -> None:
        self.after_dot = self.expect_key or self.in_header
        self.i += 1

    def _equals(self) -> None:
        if self.in_header:
            raise _Stop(None)  # not TOML: tomllib says what is wrong
        self.expect_key, self.parts, self.after_dot = False, 0, False
        self.i += 1

    def _open_bracket(self) -> None:
        """A table header (``[table]``, ``[[array]]``) at a key outside values, else an array."""
        if self.expect_key and not self.stack and not self.in_header:
            self.in_header = True
            self.parts, self.after_dot = 0, False
            self.i += 2 if self.text.startswith("[[", self.i) else 1
            return
        self._open("[")
        self.expect_key = False

    def _open_brace(self) -> None:
        self._open("{")
        self.expect_key, self.parts, self.after_dot = True, 0, False

    def _open(self, bracket: str) -> None:
        self.stack.append(bracket)
        if len(self.stack) > MAX_DEPTH:
            raise _Stop(_too_deep(self.text, self.i))
        self.i += 1

    def _close(self) -> None:
        if self.in_header and not self.stack:
            self.in_header = False
            self.expect_key = False
        elif self.stack:
            self.stack.pop()
            self.expect_key = False
        self.i += 1

    def _comma(self) -> None:
        if self.stack and self.stack[-1] == "{":
            self.expect_key, self.parts, self.after_dot = True, 0, False
        self.i += 1

    def _word(self) -> None:
        """A bare key, or a value that is not a string (a number, a date, a boolean)."""
        i = self.i
        m = _WORD.match(self.text, i)
        if m is None:
            self.i += 1  # a character TOML does not allow here: tomllib says so
            return
        if self.expect_key or self.in_header:
            self._key_part()
        elif m.end() - i > MAX_BARE_VALUE:
            raise _Stop(
                (
                    f"a value of {m.end() - i} characters that is not a string is too long (numbers, "
                    f'dates and booleans have at most {MAX_BARE_VALUE}); quote text: key = "text"',
                    _position(self.text, i),
                )
            )
        self.i = m.end()

    def _key_part(self) -> None:
        """One more part of a key, at ``i``: the first one, or one after a dot."""
        if not self.after_dot:
            self.parts, self.key_start = 1, self.i
        else:
            self.parts += 1
            if self.parts > MAX_KEY_PARTS:
                raise _Stop(
                    (
                        f"a key or table name of more than {MAX_KEY_PARTS} dotted parts; "
                        "WayRay's keys have at most 4 (such as server.main.limits.memory_max)",
                        _position(self.text, self.key_start),
                    )
                )
        self.after_dot = False

    _STEPS: ClassVar[dict[str, Callable[[_Scan], None]]] = {
        "\n": _newline,
        " ": _space,
        "\t": _space,
        "\r": _space,
        "#": _comment,
        '"': _string,
        "'": _string,
        ".": _dot,
        "=": _equals,
        "[": _open_bracket,
        "{": _open_brace,
        "]": _close,
        "}": _close,
        ",": _comma,
    }


def _too_deep(text: str, i: int) -> Problem:
    return (
        f"arrays and inline tables nested more than {MAX_DEPTH} levels deep; "
        "WayRay's values are nested at most 3 levels",
        _position(text, i),
    )
