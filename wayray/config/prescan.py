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
    i = 0
    n = len(text)
    stack: list[str] = []  # "[" (array) or "{" (inline table) for each open value container
    expect_key = True  # at a key (start of a line, after "{" or "," in an inline table) or a value
    in_header = False
    parts = 0
    key_start = 0
    after_dot = False
    while i < n:
        c = text[i]
        if c == "\n":
            if not stack:
                expect_key, in_header, parts, after_dot = True, False, 0, False
            i += 1
        elif c in " \t\r":
            m = _WS.match(text, i)
            i = m.end() if m else i + 1
        elif c == "#":
            m = _COMMENT.match(text, i)
            i = m.end() if m else n
        elif c in "\"'":
            if text.startswith(c * 3, i):
                m = (_ML_BASIC if c == '"' else _ML_LITERAL).match(text, i)
            else:
                m = (_BASIC if c == '"' else _LITERAL).match(text, i)
            if m is None:
                return None  # unterminated: tomllib says where
            if expect_key or in_header:
                parts, key_start, problem = _key_part(text, i, after_dot, parts, key_start)
                if problem is not None:
                    return problem
                after_dot = False
            i = m.end()
        elif c == ".":
            after_dot = expect_key or in_header
            i += 1
        elif c == "=":
            if in_header:
                return None  # not TOML: tomllib says what is wrong
            expect_key, parts, after_dot = False, 0, False
            i += 1
        elif c == "[":
            if expect_key and not stack and not in_header:
                in_header = True
                parts, after_dot = 0, False
                i += 2 if text.startswith("[[", i) else 1
                continue
            stack.append("[")
            if len(stack) > MAX_DEPTH:
                return _too_deep(text, i)
            expect_key = False
            i += 1
        elif c == "{":
            stack.append("{")
            if len(stack) > MAX_DEPTH:
                return _too_deep(text, i)
            expect_key, parts, after_dot = True, 0, False
            i += 1
        elif c in "]}":
            if in_header and not stack:
                in_header = False
                expect_key = False
            elif stack:
                stack.pop()
                expect_key = False
            i += 1
        elif c == ",":
            if stack and stack[-1] == "{":
                expect_key, parts, after_dot = True, 0, False
            i += 1
        else:
            m = _WORD.match(text, i)
            if m is None:
                i += 1  # a character TOML does not allow here: tomllib says so
                continue
            if expect_key or in_header:
                parts, key_start, problem = _key_part(text, i, after_dot, parts, key_start)
                if problem is not None:
                    return problem
                after_dot = False
            elif m.end() - i > MAX_BARE_VALUE:
                return (
                    f"a value of {m.end() - i} characters that is not a string is too long (numbers, "
                    f'dates and booleans have at most {MAX_BARE_VALUE}); quote text: key = "text"',
                    _position(text, i),
                )
            i = m.end()
    return None


def _key_part(
    text: str, i: int, after_dot: bool, parts: int, key_start: int
) -> tuple[int, int, Problem | None]:
    """One more part of a key: (parts so far, where the key starts, the problem if too many)."""
    if not after_dot:
        return 1, i, None
    parts += 1
    if parts > MAX_KEY_PARTS:
        problem = (
            f"a key or table name of more than {MAX_KEY_PARTS} dotted parts; "
            "WayRay's keys have at most 4 (such as server.main.limits.memory_max)",
            _position(text, key_start),
        )
        return parts, key_start, problem
    return parts, key_start, None


def _too_deep(text: str, i: int) -> Problem:
    return (
        f"arrays and inline tables nested more than {MAX_DEPTH} levels deep; "
        "WayRay's values are nested at most 3 levels",
        _position(text, i),
    )
