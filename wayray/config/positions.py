"""Where each key and value of a TOML document sits (line, column), for error messages.

``tomllib`` returns plain dicts without positions, so this small scanner walks the same text and
records, for every key path, where its key and its value start. It runs only on documents ``tomllib``
has already accepted, so it does not validate anything; it only has to agree with TOML's grammar on
where things begin and end (strings, arrays and inline tables spanning lines, comments, dotted and
quoted keys, arrays of tables).

Paths are tuples of keys and, inside arrays and arrays of tables, integer indexes:
``("usb", "rule", 2, "class")``. Lines and columns are 1-based, columns count characters, exactly as
``tomllib`` counts them in its syntax-error messages.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass, field

Path = tuple[str | int, ...]
Pos = tuple[int, int]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SYNTAX_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_SYNTAX_END = re.compile(r"\s*\(at end of document\)$")


@dataclass
class PositionIndex:
    keys: dict[Path, Pos] = field(default_factory=dict)
    values: dict[Path, Pos] = field(default_factory=dict)

    def key(self, path: Path) -> Pos | None:
        """Position of the key (or table header) at ``path``, else of its nearest ancestor."""
        return self._nearest(self.keys, path)

    def value(self, path: Path) -> Pos | None:
        """Position of the value at ``path``, else of the nearest enclosing value, else of a key."""
        return self._nearest(self.values, path) or self.key(path)

    def _nearest(self, table: dict[Path, Pos], path: Path) -> Pos | None:
        for end in range(len(path), 0, -1):
            pos = table.get(path[:end])
            if pos is not None:
                return pos
        return None


def syntax_error_position(err: tomllib.TOMLDecodeError, text: str) -> tuple[str, Pos]:
    """Split a ``tomllib`` error into its message and position.

    Python 3.11-3.13 only put the position into the message text ("... (at line 3, column 9)");
    3.14 adds ``lineno``/``colno`` attributes, which are used when present.
    """
    msg = str(err)
    lineno = getattr(err, "lineno", None)
    colno = getattr(err, "colno", None)
    m = _SYNTAX_POS.search(msg)
    if m:
        msg = msg[: m.start()]
        if lineno is None:
            lineno, colno = int(m.group(1)), int(m.group(2))
    elif _SYNTAX_END.search(msg):
        msg = _SYNTAX_END.sub("", msg)
        if lineno is None:
            lines = text.split("\n")
            lineno, colno = len(lines), len(lines[-1]) + 1
    if lineno is None or colno is None:
        return msg, (1, 1)
    return msg, (int(lineno), int(colno))


def position_of_offset(text: str, offset: int) -> Pos:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def index_positions(text: str) -> PositionIndex:
    """Scan ``text`` (valid TOML) and return the positions of all keys and values."""
    return _Scanner(text).run()


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.index = PositionIndex()
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        # Last index used by each array of tables, keyed by its concrete path.
        self._aot_last: dict[Path, int] = {}

    # --- helpers ---------------------------------------------------------------------------------
    def pos(self, offset: int | None = None) -> Pos:
        off = self.i if offset is None else offset
        line = bisect.bisect_right(self._line_starts, off)
        return line, off - self._line_starts[line - 1] + 1

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.i)

    def skip_ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def skip_ws_newlines_comments(self) -> None:
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                break

    def skip_to_line_end(self) -> None:
        end = self.text.find("\n", self.i)
        self.i = len(self.text) if end < 0 else end + 1

    # --- document --------------------------------------------------------------------------------
    def run(self) -> PositionIndex:
        current: Path = ()
        text = self.text
        while True:
            self.skip_ws_newlines_comments()
            if self.i >= len(text):
                break
            if text[self.i] == "[":
                current = self.header()
            else:
                self.keyval(current)
            self.skip_ws()
            if self.i < len(text) and text[self.i] == "#":
                self.skip_to_line_end()
        return self.index

    def header(self) -> Path:
        start = self.i
        is_array = self.peek("[[")
        self.i += 2 if is_array else 1
        self.skip_ws()
        parts = self.key_parts()
        self.skip_ws()
        self.i += 2 if is_array else 1
        concrete: list[str | int] = []
        for n, (name, pos) in enumerate(parts):
            concrete.append(name)
            last = n == len(parts) - 1
            here = tuple(concrete)
            self.index.keys.setdefault(here, pos)
            if last and is_array:
                idx = self._aot_last.get(here, -1) + 1
                self._aot_last[here] = idx
                concrete.append(idx)
                self.index.keys[tuple(concrete)] = self.pos(start)
                # A new element of a parent array restarts the numbering of nested arrays.
                prefix = tuple(concrete)
                for k in [k for k in self._aot_last if k[: len(prefix)] == prefix and k != prefix]:
                    del self._aot_last[k]
            elif here in self._aot_last:
                concrete.append(self._aot_last[here])
        return tuple(concrete)

    def key_parts(self) -> list[tuple[str, Pos]]:
        parts: list[tuple[str, Pos]] = []
        text = self.text
        while True:
            self.skip_ws()
            pos = self.pos()
            c = text[self.i]
            if c == '"':
                end = self._end_of_basic_string(self.i)
                parts.append((tomllib.loads("k = " + text[self.i : end])["k"], pos))
                self.i = end
            elif c == "'":
                end = text.index("'", self.i + 1) + 1
                parts.append((text[self.i + 1 : end - 1], pos))
                self.i = end
            else:
                m = _BARE_KEY.match(text, self.i)
                if not m:  # cannot happen on a document tomllib accepted
                    raise ValueError(f"unexpected character {c!r} in key at {pos}")
                parts.append((m.group(0), pos))
                self.i = m.end()
            self.skip_ws()
            if self.i < len(text) and text[self.i] == ".":
                self.i += 1
                continue
            return parts

    def keyval(self, prefix: Path) -> None:
        parts = self.key_parts()
        path = prefix
        for name, pos in parts:
            path = path + (name,)
            self.index.keys.setdefault(path, pos)
        self.skip_ws()
        self.i += 1  # '='
        self.skip_ws()
        self.value(path)

    # --- values ----------------------------------------------------------------------------------
    def value(self, path: Path) -> None:
        self.index.values[path] = self.pos()
        text = self.text
        if self.peek('"""'):
            self.i = self._end_of_multiline(self.i, '"""', escapes=True)
        elif self.peek("'''"):
            self.i = self._end_of_multiline(self.i, "'''", escapes=False)
        elif self.peek('"'):
            self.i = self._end_of_basic_string(self.i)
        elif self.peek("'"):
            self.i = text.index("'", self.i + 1) + 1
        elif self.peek("["):
            self.i += 1
            n = 0
            while True:
                self.skip_ws_newlines_comments()
                if text[self.i] == "]":
                    self.i += 1
                    break
                self.value(path + (n,))
                n += 1
                self.skip_ws_newlines_comments()
                if text[self.i] == ",":
                    self.i += 1
        elif self.peek("{"):
            self.i += 1
            while True:
                self.skip_ws()
                if text[self.i] == "}":
                    self.i += 1
                    break
                self.keyval(path)
                self.skip_ws()
                if text[self.i] == ",":
                    self.i += 1
        else:
            # Numbers, booleans, dates and times: up to a delimiter (a date-time may hold a space).
            while self.i < len(text) and text[self.i] not in ",]}\n#":
                self.i += 1

    def _end_of_basic_string(self, start: int) -> int:
        text = self.text
        i = start + 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def _end_of_multiline(self, start: int, delim: str, *, escapes: bool) -> int:
        text = self.text
        i = start + 3
        while True:
            if escapes and text[i] == "\\":
                i += 2
                continue
            if text.startswith(delim, i):
                i += 3
                # Up to two quote characters may sit right before the closing delimiter.
                extra = 0
                while extra < 2 and i < len(text) and text[i] == delim[0]:
                    i += 1
                    extra += 1
                return i
            i += 1
