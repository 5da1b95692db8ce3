"""Value types of the configuration schema: how a raw TOML value becomes a typed Python value.

Each type knows its name for messages and docs ("integer", "duration"), parses a raw value from
``tomllib`` (raising :class:`Invalid` with a message a person can act on), and turns a typed value back
into TOML for ``wradm show``. Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import enum
import ipaddress
import re
import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


class Invalid(ValueError):
    """A raw value does not fit its type; the message says what was expected and what was found."""


def describe(raw: object) -> str:
    """``string "forty"``, ``integer 7``, ``array``: how a raw TOML value is named in messages."""
    if isinstance(raw, bool):
        return f"boolean {str(raw).lower()}"
    if isinstance(raw, int):
        if raw.bit_length() > 128:  # not printed: str() of a huge integer is slow, or refused
            return f"integer of about {int(raw.bit_length() * 0.30103) + 1} digits"
        return f"integer {raw}"
    if isinstance(raw, float):
        return f"float {raw}"
    if isinstance(raw, str):
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        return f"string {_quote(shown)}"
    if isinstance(raw, list):
        return "array"
    if isinstance(raw, dict):
        return "table"
    if isinstance(raw, _dt.datetime):
        return "date-time"
    if isinstance(raw, _dt.date):
        return "date"
    if isinstance(raw, _dt.time):
        return "time"
    return type(raw).__name__


#: Longest value messages quote in full; longer ones are cut (a message is one readable line).
MAX_QUOTED = 80


def _quote(s: str) -> str:
    if len(s) > MAX_QUOTED:
        return _quote(s[: MAX_QUOTED - 20]) + f"... ({len(s)} characters)"
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in out)
    return f'"{out}"'


#: "Did you mean" looks at most this many choices, for words of at most this many characters: a
#: suggestion is for a typo, and comparing every name with every other is quadratic.
_GUESS_CHOICES = 256
_GUESS_LENGTH = 64


def did_you_mean(word: str, choices: list[str] | tuple[str, ...], *, value: bool = False) -> str:
    """`` (did you mean 'listen'?)`` for keys, `` (did you mean "both"?)`` for values, or ""."""
    if len(word) > _GUESS_LENGTH or len(choices) > _GUESS_CHOICES:
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {_quote(close[0]) if value else repr(close[0])}?)"


class ValueType(Generic[T]):
    """Base of all value types. Subclasses set ``name`` and implement ``parse``/``to_toml``."""

    name = "value"

    def parse(self, raw: object) -> T:
        raise NotImplementedError

    def to_toml(self, value: T) -> object:
        """A value ``tomllib`` could have produced, for ``wradm show``."""
        return value

    def expected(self, raw: object) -> Invalid:
        return Invalid(f"expected {self.name}, got {describe(raw)}")


# --- scalars ---------------------------------------------------------------------------------------


class Bool(ValueType[bool]):
    name = "boolean (true or false)"

    def parse(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false", "yes", "no", "on", "off"):
            word = "true" if raw.lower() in ("true", "yes", "on") else "false"
            raise Invalid(f"expected boolean, got {describe(raw)} (write {word} without quotes)")
        raise Invalid(f"expected boolean (true or false), got {describe(raw)}")


class Integer(ValueType[int]):
    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.name = "integer"
        if minimum is not None and maximum is not None:
            self.name = f"integer from {minimum} to {maximum}"
        elif minimum is not None:
            self.name = f"integer of at least {minimum}"

    def parse(self, raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
                raise Invalid(f"expected integer, got {describe(raw)} (write {raw.strip()} without quotes)")
            raise Invalid(f"expected integer, got {describe(raw)}")
        if (self.minimum is not None and raw < self.minimum) or (
            self.maximum is not None and raw > self.maximum
        ):
            raise Invalid(f"expected {self.name}, got {describe(raw).removeprefix('integer ')}")
        return raw


class Number(ValueType[float]):
    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.name = f"number from {minimum:g} to {maximum:g}"

    def parse(self, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.expected(raw)
        if not self.minimum <= raw <= self.maximum:
            raise Invalid(f"expected {self.name}, got {raw:g}")
        return float(raw)


class String(ValueType[str]):
    """A string, optionally constrained by a regular expression explained by ``rule``."""

    def __init__(
        self,
        pattern: str | None = None,
        rule: str = "",
        *,
        max_length: int | None = None,
        name: str = "string",
    ) -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.rule = rule
        self.max_length = max_length
        self.name = name

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise self.expected(raw)
        if self.max_length is not None and len(raw) > self.max_length:
            raise Invalid(f"{_quote(raw)} is longer than {self.max_length} characters")
        if self.pattern is not None and not self.pattern.fullmatch(raw):
            raise Invalid(f"{_quote(raw)} is not allowed here: {self.rule}")
        return raw


class Choice(ValueType[E]):
    """One of the values of a string enum."""

    def __init__(self, enum_cls: type[E], *, booleans: Mapping[bool, E] | None = None) -> None:
        self.enum_cls = enum_cls
        self.values = [str(m.value) for m in enum_cls]
        self.name = "one of " + ", ".join(_quote(v) for v in self.values)
        #: What ``true`` and ``false`` mean where the setting was a boolean before (older files).
        self.booleans = dict(booleans or {})

    def parse(self, raw: object) -> E:
        if isinstance(raw, bool) and raw in self.booleans:
            return self.booleans[raw]
        if isinstance(raw, str):
            for member in self.enum_cls:
                if member.value == raw:
                    return member
            raise Invalid(
                f"expected {self.name}; got {_quote(raw)}{did_you_mean(raw, self.values, value=True)}"
            )
        raise self.expected(raw)

    def to_toml(self, value: E) -> object:
        return value.value


# --- durations, sizes, rates -----------------------------------------------------------------------

_DURATION_UNITS = {
    "ms": 0.001, "msec": 0.001,
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_DURATION_PART = re.compile(r"\s*([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([a-z]+)")
#: Longer durations are mistakes (and beyond what timers and timedelta can hold).
MAX_DURATION_S = 100 * 365 * 86400
_NEVER = ("never", "infinity")


class Duration(ValueType["_dt.timedelta | None"]):
    """A time span such as ``"90s"``, ``"30min"``, ``"1h 30min"``, ``"24h"``; ``"never"`` when allowed."""

    def __init__(self, *, allow_never: bool = False, minimum: float = 0) -> None:
        self.allow_never = allow_never
        self.minimum = minimum
        self.name = 'duration such as "30s", "15min", "24h"' + (' or "never"' if allow_never else "")

    def parse(self, raw: object) -> _dt.timedelta | None:
        if isinstance(raw, bool) or not isinstance(raw, str):
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                hint = f' (write "{raw}s" for seconds)' if abs(raw) < 10**12 else ""
                raise Invalid(f"expected a {self.name}; got {describe(raw)}{hint}")
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        text = raw.strip().lower()
        if text in _NEVER:
            if self.allow_never:
                return None
            raise Invalid(f'"{raw}" is not allowed here: give a finite duration such as "30min"')
        if text == "0":
            return _dt.timedelta(0) if self.minimum <= 0 else self._too_small(raw)
        total = 0.0
        pos = 0
        # One part after the other from the start: finditer() would retry at every position of a
        # long run of digits, which is quadratic.
        while (m := _DURATION_PART.match(text, pos)) is not None:
            unit = m.group(2)
            if unit not in _DURATION_UNITS:
                hint = did_you_mean(unit, sorted(_DURATION_UNITS), value=True)
                raise Invalid(f'unknown time unit "{unit}" in "{raw}"{hint}; use s, min, h, d or w')
            total += float(m.group(1)) * _DURATION_UNITS[unit]
            pos = m.end()
        if pos == 0 or text[pos:].strip():
            raise Invalid(f"expected a {self.name}; got {_quote(raw)}")
        if total < self.minimum:
            return self._too_small(raw)
        if total > MAX_DURATION_S:
            raise Invalid(f'{_quote(raw)} is too long: at most 100 years, or "never" where allowed')
        return _dt.timedelta(seconds=total)

    def _too_small(self, raw: str) -> _dt.timedelta:
        raise Invalid(
            f'"{raw}" is too short: at least {format_duration(_dt.timedelta(seconds=self.minimum))}'
        )

    def to_toml(self, value: _dt.timedelta | None) -> object:
        return "never" if value is None else format_duration(value)


def format_duration(value: _dt.timedelta) -> str:
    seconds = value.total_seconds()
    if seconds == 0:
        return "0"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            n = int(seconds // size)
            parts.append(f"{n}{unit}")
            seconds -= n * size
    if seconds > 1e-9:
        parts.append(f"{round(seconds * 1000)}ms")
    return " ".join(parts)


_SIZE = re.compile(r"([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([KMGT]?)(i?B)?", re.IGNORECASE)
#: Sizes beyond this are mistakes (and beyond what systemd's MemoryMax= takes).
MAX_SIZE = 1 << 62
_SIZE_FACTOR = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class Size(ValueType["int | None"]):
    """Bytes: an integer or ``"512M"``, ``"4G"`` (base 1024, as systemd counts); ``"infinity"``."""

    name = 'size such as "512M" or "4G", or "infinity"'

    def parse(self, raw: object) -> int | None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw <= 0:
                raise Invalid(f"expected a positive size, got {describe(raw).removeprefix('integer ')}")
            if raw > MAX_SIZE:
                raise Invalid(f'{raw} is too large: at most 4E, or "infinity"')
            return raw
        if not isinstance(raw, str):
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        if raw.strip().lower() == "infinity":
            return None
        m = _SIZE.fullmatch(raw.strip())
        if not m:
            raise Invalid(f"expected a {self.name}; got {_quote(raw)}")
        amount = float(m.group(1)) * _SIZE_FACTOR[m.group(2).upper()]
        if amount > MAX_SIZE:
            raise Invalid(f'{_quote(raw)} is too large: at most 4E, or "infinity"')
        value = int(amount)
        if value <= 0:
            raise Invalid(f"expected a positive size, got {_quote(raw)}")
        return value

    def to_toml(self, value: int | None) -> object:
        if value is None:
            return "infinity"
        for suffix in ("T", "G", "M", "K"):
            if value % _SIZE_FACTOR[suffix] == 0:
                return f"{value // _SIZE_FACTOR[suffix]}{suffix}"
        return value


class Percent(ValueType["int | None"]):
    """CPU quota in percent of one CPU (``"200%"`` = two CPUs), as systemd's ``CPUQuota=``."""

    name = 'percentage such as "200%" (100% = one CPU), or "infinity"'

    def parse(self, raw: object) -> int | None:
        if isinstance(raw, str):
            text = raw.strip()
            if text.lower() == "infinity":
                return None
            number = text[:-1].strip()
            if text.endswith("%") and re.fullmatch(r"[0-9]{1,9}", number):
                value = int(number)
                if value <= 0:
                    raise Invalid(f"expected a positive percentage, got {_quote(raw)}")
                return value
        if isinstance(raw, int) and not isinstance(raw, bool):
            raise Invalid(f'expected a {self.name}; got {describe(raw)} (write "{raw}%")')
        raise Invalid(f"expected a {self.name}; got {describe(raw)}")

    def to_toml(self, value: int | None) -> object:
        return "infinity" if value is None else f"{value}%"


_RATE = re.compile(r"([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([kMG]?)(bit/s|bps)?", re.IGNORECASE)
#: A terabit per second: more is a mistake.
MAX_BITRATE = 10**12


class Bitrate(ValueType[int]):
    """Bits per second: an integer or ``"8M"``, ``"800k"`` (base 1000, as networks count)."""

    name = 'bit rate such as "8M" or "800k"'

    def parse(self, raw: object) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and (m := _RATE.fullmatch(raw.strip())):
            factor = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}[m.group(2).lower()]
            amount = float(m.group(1)) * factor
            value = int(amount) if amount <= MAX_BITRATE else MAX_BITRATE + 1
        else:
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        if value > MAX_BITRATE:
            raise Invalid(f"bit rate {describe(raw)} is too high: at most 1000G")
        if value < 10_000:
            raise Invalid(f"bit rate {value} bit/s is too low to carry video; give at least 10k")
        return value

    def to_toml(self, value: int) -> object:
        for suffix, size in (("G", 1000**3), ("M", 1000**2), ("k", 1000)):
            if value % size == 0:
                return f"{value // size}{suffix}"
        return value


# --- network, files, commands, names ---------------------------------------------------------------


class IPAddress(ValueType[str]):
    name = 'IP address such as "::", "0.0.0.0" or "192.0.2.10"'

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise Invalid(f"expected an {self.name}; got {describe(raw)}")
        try:
            return str(ipaddress.ip_address(raw.strip("[]")))
        except ValueError:
            raise Invalid(
                f"{_quote(raw)} is not an IP address; listen addresses are literal IPv4/IPv6 addresses"
            ) from None


class ServerAddress(ValueType[str]):
    """``host``, ``host:port`` or ``[v6]:port`` of a WayRay server, as a client dials it."""

    name = 'server address such as "srv1.example.org", "srv1:7100" or "[2001:db8::1]:7100"'
    _HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        host, port = raw, ""
        if raw.startswith("["):
            host, _, rest = raw[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else rest
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise Invalid(f"{_quote(raw)}: {_quote(host)} is not an IPv6 address") from None
        elif raw.count(":") == 1:
            host, port = raw.split(":")
        if ":" not in host and not self._HOST.fullmatch(host):
            raise Invalid(f"{_quote(raw)} is not a host name or address")
        if raw.count(":") > 1 and not raw.startswith("["):
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                raise Invalid(f"{_quote(raw)}: write IPv6 addresses as [addr]:port") from None
        if port and not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
            raise Invalid(f"{_quote(raw)}: port must be a number from 1 to 65535")
        return raw


class AbsPath(ValueType["PurePosixPath | None"]):
    """An absolute path; ``""`` means "not set" where ``optional``."""

    def __init__(self, *, optional: bool = False) -> None:
        self.optional = optional
        self.name = "absolute path" + (' (or "" for none)' if optional else "")

    def parse(self, raw: object) -> PurePosixPath | None:
        if not isinstance(raw, str):
            raise Invalid(f"expected an {self.name}; got {describe(raw)}")
        if raw == "" and self.optional:
            return None
        if not raw.startswith("/"):
            raise Invalid(f"{_quote(raw)} is not an absolute path (it must start with /)")
        if "\0" in raw or "\n" in raw:
            raise Invalid("paths cannot contain NUL or newline characters")
        return PurePosixPath(raw)

    def to_toml(self, value: PurePosixPath | None) -> object:
        return "" if value is None else str(value)


class Command(ValueType[tuple[str, ...]]):
    """A command line: a string split like a shell does (no expansion), or an array of strings."""

    name = 'command: a string such as "foot --server" or an array ["foot", "--server"]; "" for none'

    def parse(self, raw: object) -> tuple[str, ...]:
        if isinstance(raw, str):
            try:
                return tuple(split_command(raw))
            except ValueError as err:
                raise Invalid(f"cannot split command {_quote(raw)}: {err}") from None
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            if any(x == "" for x in raw[:1]):
                raise Invalid("the program name (first element) cannot be empty")
            return tuple(raw)
        raise Invalid(f"expected a {self.name}; got {describe(raw)}")

    def to_toml(self, value: tuple[str, ...]) -> object:
        return shlex.join(value)


_SPLIT = re.compile(
    r"(?P<ws>[ \t\r\n]+)"  # shlex's whitespace: only these four
    r"""|(?P<plain>[^ \t\r\n'"\\]+)"""
    r"|'(?P<sq>[^']*)'"  # no escapes between single quotes
    r'|"(?P<dq>(?:[^"\\]|\\[\s\S])*)"'  # \" and \\ are escapes, any other backslash stays
    r"|\\(?P<esc>[\s\S])"  # outside quotes a backslash takes the next character as it is
)
_DQ_ESCAPE = re.compile(r'\\(["\\])')
_DQ_BODY = re.compile(r'(?:[^"\\]|\\[\s\S])*')


def split_command(text: str) -> list[str]:
    """Split ``text`` into words exactly as ``shlex.split(text)`` does (POSIX rules: quotes,
    backslashes, no comments, no expansion), in linear time: shlex builds each word a character at
    a time, so one long word takes quadratic time (a 1 MB word: most of a minute)."""
    words: list[str] = []
    parts: list[str] = []
    in_word = False
    pos = 0
    n = len(text)
    while pos < n:
        m = _SPLIT.match(text, pos)
        if m is None:
            # What shlex says: a backslash at the very end has nothing to escape (also inside an
            # unterminated double-quoted part), else a quote is not closed.
            if text[pos] == '"':
                body = _DQ_BODY.match(text, pos + 1)
                if body is not None and body.end() == n - 1:
                    raise ValueError("No escaped character")
            elif text[pos] == "\\":
                raise ValueError("No escaped character")
            raise ValueError("No closing quotation")
        kind = m.lastgroup
        if kind == "ws":
            if in_word:
                words.append("".join(parts))
                parts, in_word = [], False
        elif kind == "dq":
            parts.append(_DQ_ESCAPE.sub(r"\1", m.group("dq")))
            in_word = True
        else:
            assert kind is not None
            parts.append(m.group(kind))
            in_word = True
        pos = m.end()
    if in_word:
        words.append("".join(parts))
    return words


# POSIX "portable filename character set" (3.437 User Name), as shadow-utils' relaxed check allows,
# with Linux's 32-character limit; all-digit names are refused because tools read them as UIDs.
_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,31}")
USER_RULE = (
    "user names use letters, digits, '.', '_' and '-', do not start with '-', "
    "are not all digits and have at most 32 characters"
)


def user_name_problem(name: str) -> str | None:
    if not _USER.fullmatch(name) or name.isdigit() or name in (".", ".."):
        return f"{_quote(name)} is not a valid user name: {USER_RULE}"
    return None


class UserName(ValueType[str]):
    name = "user name"

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise self.expected(raw)
        problem = user_name_problem(raw)
        if problem:
            raise Invalid(problem)
        return raw


class Principal(ValueType[str]):
    """A user name, or ``@group`` for every member of a group."""

    name = 'user name or "@group"'

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        problem = user_name_problem(raw[1:] if raw.startswith("@") else raw)
        if problem:
            raise Invalid(problem.replace("user name", "group name") if raw.startswith("@") else problem)
        return raw


class UsbId(ValueType["int | None"]):
    """A USB class/subclass/protocol (8 bits) or vendor/product id (16 bits); ``"*"`` matches any.

    Integers may be written in hex (``0x046d``); strings of hex digits as ``lsusb`` prints them
    (``"046d"``) are accepted too.
    """

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.maximum = (1 << bits) - 1
        example = "0x046d" if bits == 16 else "0x08"
        self.name = f'{bits}-bit USB id: an integer such as {example}, hex digits as a string, or "*"'

    def parse(self, raw: object) -> int | None:
        if isinstance(raw, str):
            text = raw.strip().lower()
            if text in ("*", "any"):
                return None
            text = text.removeprefix("0x")
            if not text or not re.fullmatch(r"[0-9a-f]+", text):
                raise Invalid(f"expected a {self.name}; got {_quote(raw)}")
            if len(text.lstrip("0")) > self.bits // 4:
                raise Invalid(f"{_quote(raw)} does not fit in {self.bits} bits (0 to {self.maximum:#x})")
            value = int(text, 16)
        elif isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        else:
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        if not 0 <= value <= self.maximum:
            shown = f"{value:#x}" if value.bit_length() <= 64 else describe(value)
            raise Invalid(f"{shown} does not fit in {self.bits} bits (0 to {self.maximum:#x})")
        return value

    def to_toml(self, value: int | None) -> object:
        return "*" if value is None else f"0x{value:0{self.bits // 4}x}"


class Fingerprint(ValueType[str]):
    """A certificate fingerprint, ``sha256:`` plus 64 hex digits (colons allowed, case ignored)."""

    name = 'certificate fingerprint "sha256:<64 hex digits>"'

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        algo, sep, digest = raw.partition(":")
        digest = digest.replace(":", "").lower()
        if algo.lower() != "sha256" or not sep or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise Invalid(f"expected a {self.name}; got {_quote(raw)}")
        return f"sha256:{digest}"


# --- containers ------------------------------------------------------------------------------------


class ListOf(ValueType[tuple[Any, ...]]):
    def __init__(self, item: ValueType[Any], *, min_items: int = 0) -> None:
        self.item = item
        self.min_items = min_items
        if isinstance(item, Choice):
            self.name = "array of " + ", ".join(_quote(v) for v in item.values)
        else:
            self.name = f"array of {item.name}"

    def parse(self, raw: object) -> tuple[Any, ...]:
        # Element problems are reported per element by the loader (it knows their positions), so
        # this only checks the shape.
        if not isinstance(raw, list):
            raise Invalid(f"expected an {self.name}; got {describe(raw)}")
        return tuple(raw)

    def to_toml(self, value: tuple[Any, ...]) -> object:
        return [self.item.to_toml(v) for v in value]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Environment(ValueType[Mapping[str, str]]):
    """Environment variables: a table of ``NAME = "value"``; merged name by name across layers."""

    name = 'table of environment variables (NAME = "value")'

    def parse(self, raw: object) -> Mapping[str, str]:
        if not isinstance(raw, dict):
            raise Invalid(f"expected a {self.name}; got {describe(raw)}")
        for key, value in raw.items():
            if not _ENV_NAME.fullmatch(key):
                raise Invalid(f"{_quote(key)} is not a valid environment variable name")
            if not isinstance(value, str):
                raise Invalid(f"{key}: expected a string value, got {describe(value)}")
            if "\0" in value:
                raise Invalid(f"{key}: values cannot contain NUL characters")
        return MappingProxyType(dict(raw))

    def to_toml(self, value: Mapping[str, str]) -> object:
        return dict(value)
