"""Declared JSON messages: each a frozen dataclass whose fields say what values they accept and what
they mean. The one schema layer of the JSON protocols between WayRay's processes: wrsessd's IPC
(``launcher/protocol.py``), wrsessd's channel to its session workers (``launcher/worker_protocol.py``),
wrsrvd's admin socket (``server/admin_protocol.py``) and the link's control messages
(``link/protocol.py``).

A field is declared with :func:`field`: a :class:`Kind` (which values are valid), a meaning, whether
it must be present. From those declarations one code path validates what another process sent
(:meth:`Record.from_json`), writes what this one sends (:meth:`Record.to_json`) and renders the
reference tables of the docs (:func:`record_table`), which tests compare with the code.

Messages tagged by a ``"type"`` string are registered in a :class:`MessageTable` (one per protocol)
with the direction they go in; the table parses a decoded object into its message, or raises the
protocol's own error naming what is wrong. Stdlib only, like every user of it (wrlogin, wradm).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from wayray.common import jsonframe

# --- what is wrong with a record -------------------------------------------------------------------


class SchemaError(ValueError):
    """An object that is not a valid record; ``str()`` says why. A protocol may word the subclasses
    its own way (the link does)."""


class UnknownFields(SchemaError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"unknown field {names[0]!r}")
        self.names = names


class MissingField(SchemaError):
    def __init__(self, name: str) -> None:
        super().__init__(f"field {name!r} is required")
        self.name = name


class BadField(SchemaError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"field {name!r}: {reason}")
        self.name = name
        self.reason = reason


# --- field kinds -----------------------------------------------------------------------------------


class Kind:
    """What values a field accepts. ``check`` returns the value to store or raises ValueError."""

    def check(self, value: object) -> object:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Kind):
    """A string of at most ``max_len`` characters, without NUL (no C string holds one)."""

    max_len: int
    pattern: str | None = None
    allow_empty: bool = False

    def check(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {type(value).__name__}")
        if not value and not self.allow_empty:
            raise ValueError("must not be empty")
        if len(value) > self.max_len:
            raise ValueError(f"longer than {self.max_len} characters")
        if "\0" in value:
            raise ValueError("contains a NUL character")
        if self.pattern is not None and value and not re.fullmatch(self.pattern, value):
            raise ValueError(f"does not match {self.pattern}")
        return value

    def describe(self) -> str:
        return f"string ≤ {self.max_len}" + (f", `{self.pattern}`" if self.pattern else "")


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of at most ``max_items`` values of one kind (stored as a tuple)."""

    max_items: int
    item: Kind

    def check(self, value: object) -> object:
        if not isinstance(value, list):
            raise ValueError(f"must be a list, not {type(value).__name__}")
        if len(value) > self.max_items:
            raise ValueError(f"more than {self.max_items} items")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.check(item))
            except ValueError as err:
                raise ValueError(f"item {i}: {err}") from None
        return tuple(out)

    def describe(self) -> str:
        return f"list ≤ {self.max_items} of ({self.item.describe()})"


@dataclass(frozen=True)
class MapOf(Kind):
    """An object of at most ``max_items`` entries, its keys of one kind of text, its values of one kind
    (stored as a dict)."""

    max_items: int
    key: Text
    value: Kind

    def check(self, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError(f"must be an object, not {type(value).__name__}")
        if len(value) > self.max_items:
            raise ValueError(f"more than {self.max_items} entries")
        out = {}
        for k, v in value.items():
            try:
                out[self.key.check(k)] = self.value.check(v)
            except ValueError as err:
                raise ValueError(f"entry {k!r}: {err}") from None
        return out

    def describe(self) -> str:
        return f"object ≤ {self.max_items} entries of ({self.key.describe()}) → ({self.value.describe()})"


@dataclass(frozen=True)
class Choice(Kind):
    enum: type[enum.StrEnum]

    def check(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {type(value).__name__}")
        try:
            return self.enum(value)
        except ValueError:
            raise ValueError(f"must be one of {', '.join(m.value for m in self.enum)}") from None

    def describe(self) -> str:
        return " \\| ".join(f"`{m.value}`" for m in self.enum)


@dataclass(frozen=True)
class Integer(Kind):
    low: int
    high: int

    def check(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {type(value).__name__}")
        if not self.low <= value <= self.high:
            raise ValueError(f"must be between {self.low} and {self.high}")
        return value

    def describe(self) -> str:
        return f"integer {self.low}…{self.high}"


@dataclass(frozen=True)
class Number(Kind):
    """A number of at least ``low``, stored as a float (``keep_ints``: an integer stays one, so that
    what is read is written again as it came)."""

    low: float
    keep_ints: bool = False

    def check(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {type(value).__name__}")
        if value < self.low:
            raise ValueError(f"must be ≥ {self.low}")
        return value if self.keep_ints and isinstance(value, int) else float(value)

    def describe(self) -> str:
        return f"number ≥ {self.low:g}"


@dataclass(frozen=True)
class Flag(Kind):
    def check(self, value: object) -> object:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {type(value).__name__}")
        return value

    def describe(self) -> str:
        return "boolean"


@dataclass(frozen=True)
class AnyObject(Kind):
    """Any JSON object, kept as it is (for a payload another module's own schema checks)."""

    what: str

    def check(self, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError(f"must be an object, not {type(value).__name__}")
        return value

    def describe(self) -> str:
        return f"object ({self.what})"


@dataclass(frozen=True)
class Nested(Kind):
    cls: type[Record]

    def check(self, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError(f"must be an object, not {type(value).__name__}")
        return self.cls.from_json(value)

    def describe(self) -> str:
        return f"`{self.cls.__name__}` object"


class NestedList(ListOf):
    """A list of at most ``max_items`` objects of one record class."""

    def __init__(self, cls: type[Record], max_items: int) -> None:
        super().__init__(max_items, Nested(cls))

    def describe(self) -> str:
        assert isinstance(self.item, Nested)
        return f"list of `{self.item.cls.__name__}`"


# --- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    kind: Kind
    doc: str
    required: bool


def field(kind: Kind, doc: str, *, required: bool = False, default: Any = None) -> Any:
    """Declare a record's field: its kind, its meaning, whether it must be present. A required field
    of a ``kw_only`` dataclass has no default unless one is given (constructing it without the field
    is then a TypeError, as with any dataclass)."""
    spec = {"spec": FieldSpec(kind, doc, required)}
    if required and default is None:
        return dataclasses.field(metadata=spec)
    return dataclasses.field(default=default, metadata=spec)


R = TypeVar("R", bound="Record")


class Record:
    """A JSON object made of declared fields (a message or a nested object)."""

    #: Whether a field that is None is written as ``null`` (True) or left out (False).
    WRITE_NULLS: ClassVar[bool] = False
    #: Whether a ``null`` that was received counts as an absent field (True) or is checked like any
    #: other value (False: it is then refused by every kind).
    NULL_IS_ABSENT: ClassVar[bool] = True

    @classmethod
    def specs(cls) -> Iterator[tuple[str, FieldSpec]]:
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            yield f.name, f.metadata["spec"]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, _spec in self.specs():
            value = getattr(self, name)
            if value is None and not self.WRITE_NULLS:
                continue
            out[name] = _jsonable(value)
        return out

    @classmethod
    def from_json(
        cls: type[R], obj: Mapping[str, object], *, skip: frozenset[str] = frozenset(), strict: bool = True
    ) -> R:
        """The record ``obj`` holds, or a :class:`SchemaError`. ``skip``: names that are not fields
        (a message's ``type``); ``strict``: refuse fields this side does not know (else ignore them)."""
        if strict:
            known = {name for name, _ in cls.specs()}
            unknown = sorted(set(obj) - known - skip)
            if unknown:
                raise UnknownFields(unknown)
        values: dict[str, object] = {}
        for name, spec in cls.specs():
            if name not in obj or (obj[name] is None and cls.NULL_IS_ABSENT):
                if spec.required:
                    raise MissingField(name)
                continue
            try:
                values[name] = spec.kind.check(obj[name])
            except ValueError as err:
                raise BadField(name, str(err)) from None
        return cls(**values)


def _jsonable(value: object) -> object:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def record_table(cls: type[Record]) -> list[str]:
    """A record's fields as a Markdown table: name, kind, whether required, meaning."""
    rows = ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, spec in cls.specs():
        rows.append(
            f"| `{name}` | {spec.kind.describe()} | {'yes' if spec.required else 'no'} | {spec.doc} |"
        )
    if len(rows) == 2:
        return ["(no fields)"]
    return rows


# --- messages tagged by "type" ---------------------------------------------------------------------


class Direction(enum.StrEnum):
    """Which way a message goes on a channel with a client and a server side."""

    REQUEST = "request"  # client → server (wrsessd; a worker's daemon; wrsrvd's admin socket)
    RESPONSE = "response"  # server → client


class Message(Record):
    """A record sent on its own, tagged by its ``type`` (set by :meth:`MessageTable.message`)."""

    type: ClassVar[str]
    direction: ClassVar[Direction]
    doc: ClassVar[str]
    table: ClassVar[MessageTable]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **super().to_json()}

    def encode(self) -> bytes:
        """This message as one frame of its protocol."""
        return self.table.encode(self.to_json())


M = TypeVar("M", bound=type[Message])


class MessageTable:
    """Every message of one protocol by its direction and ``type``: the one table its parser, its
    encoder and its docs use.

    ``error`` makes the protocol's own exception from a sentence (what the other side is told);
    ``max_bytes`` is the largest frame body it sends; ``ensure_ascii`` how its JSON is written."""

    def __init__(
        self,
        name: str,
        *,
        error: Callable[[str], Exception],
        max_bytes: int | None = None,
        ensure_ascii: bool = False,
    ) -> None:
        self.name = name
        self.error = error
        self.max_bytes = max_bytes
        self.ensure_ascii = ensure_ascii
        self._by_type: dict[tuple[Direction, str], type[Message]] = {}

    def message(self, type_: str, direction: Direction, doc: str) -> Callable[[M], M]:
        """Class decorator: register a message of this protocol."""

        def register(cls: M) -> M:
            assert (direction, type_) not in self._by_type, (self.name, type_)
            cls.type = type_
            cls.direction = direction
            cls.doc = doc
            cls.table = self
            self._by_type[(direction, type_)] = cls
            return cls

        return register

    def messages(self, direction: Direction | None = None) -> list[type[Message]]:
        return [c for (d, _), c in self._by_type.items() if direction is None or d is direction]

    def parse(self, obj: Mapping[str, Any], direction: Direction, *, strict: bool = True) -> Message:
        """Validate one decoded object as a message going ``direction``; the protocol's error says
        what is wrong. ``strict``: refuse fields this side does not know (else ignore them)."""
        type_ = obj.get("type")
        cls = self._by_type.get((direction, type_)) if isinstance(type_, str) else None
        if cls is None:
            raise self.error(f"unknown {direction.value} type {type_!r}")
        try:
            return cls.from_json(obj, skip=frozenset({"type"}), strict=strict)
        except SchemaError as err:
            raise self.error(f"{type_}: {err}") from None

    def encode(self, obj: Mapping[str, Any]) -> bytes:
        """One frame holding ``obj`` (the framing of :mod:`wayray.common.jsonframe`)."""
        try:
            return jsonframe.encode(obj, self.max_bytes, ensure_ascii=self.ensure_ascii)
        except jsonframe.FrameTooLarge as err:
            raise self.error(f"message {err.reason}") from None

    def reference(
        self, titles: Mapping[Direction, str], heading: Callable[[type[Message]], str], *, level: int = 3
    ) -> list[str]:
        """The messages as Markdown: a section per direction (``titles``, headings of ``level``), in
        it one per message (its ``heading``), with its meaning and its fields."""
        out: list[str] = []
        for direction, title in titles.items():
            out += [f"{'#' * level} {title}", ""]
            for cls in self.messages(direction):
                out += [heading(cls), "", cls.doc, "", *record_table(cls), ""]
        return out
