"""Binary layouts: the field types every message body is made of, each with a hard size cap.

A layout is declared once (see :mod:`wayray.wire.protocol`) and drives encoding, decoding, the size
limits and the field tables of docs/protocol.md. The rules, in short:

* integers are little-endian and fixed width (``u8 u16 u32 u64 i32 i64``); ``f64`` is IEEE 754
  little-endian and must be finite; ``bool`` is one byte, 0 or 1;
* ``str<N>`` is a ``u32`` byte length then that many bytes of UTF-8, at most ``N`` bytes;
  ``bytes<N>`` the same without the UTF-8 rule; ``list<N, T>`` a ``u32`` count then the items;
  ``set<N, T>`` a list whose items are all different (sent sorted); ``bytes16<N>`` and
  ``list8<N, T>`` are the short forms, with a ``u16`` length and a ``u8`` count (SmallFrameUpdate);
* an enum is its declared integer width; values the enum does not define are malformed;
* a struct is its fields in order, nothing between them; a message body is exactly one struct, with
  no trailing bytes.

Decoders raise :class:`~wayray.wire.errors.WireProtocolError` (``MALFORMED_MESSAGE``) naming the field,
for every bad input; encoders raise :class:`~wayray.wire.errors.EncodeError` for local mistakes.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from wayray.wire.errors import EncodeError, ErrorCode, WireProtocolError

KiB = 1024
MiB = 1024 * 1024

_LEN = struct.Struct("<I")


def size_text(n: int) -> str:
    """``64Mi``, ``512Ki`` or ``1000``: how caps are written in the spec."""
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB}Mi"
    if n >= KiB and n % KiB == 0:
        return f"{n // KiB}Ki"
    return str(n)


def malformed(reason: str) -> WireProtocolError:
    return WireProtocolError(ErrorCode.MALFORMED_MESSAGE, reason)


class Reader:
    """A cursor over one message body; running past the end is a protocol error, not an IndexError."""

    __slots__ = ("_view", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._view) - self._pos

    def take(self, n: int) -> memoryview:
        end = self._pos + n
        if n < 0 or end > len(self._view):
            raise malformed(f"needs {n} more bytes, only {self.remaining} left")
        chunk = self._view[self._pos : end]
        self._pos = end
        return chunk

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        if self._pos + st.size > len(self._view):
            raise malformed(f"needs {st.size} more bytes, only {self.remaining} left")
        values = st.unpack_from(self._view, self._pos)
        self._pos += st.size
        return values


class WireType:
    """One field type: how a Python value becomes bytes and back, and at most how many bytes."""

    #: How the type is written in docs/protocol.md (``u32``, ``str<1Ki>``, ``list<4096, Region>``).
    name: str = ""

    def encode(self, value: Any, out: bytearray) -> None:
        raise NotImplementedError

    def decode(self, r: Reader) -> Any:
        raise NotImplementedError

    @property
    def max_size(self) -> int:
        """The largest encoding of a legal value, in bytes."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class Int(WireType):
    _FORMATS = {
        ("u", 8): "B",
        ("u", 16): "H",
        ("u", 32): "I",
        ("u", 64): "Q",
        ("i", 32): "i",
        ("i", 64): "q",
    }

    def __init__(self, kind: str, bits: int, *, minimum: int | None = None) -> None:
        self._st = struct.Struct("<" + self._FORMATS[(kind, bits)])
        self.lo = 0 if kind == "u" else -(1 << (bits - 1))
        self.hi = (1 << bits) - 1 if kind == "u" else (1 << (bits - 1)) - 1
        self.minimum = minimum
        self.name = f"{kind}{bits}" + (f"≥{minimum}" if minimum is not None else "")

    def encode(self, value: Any, out: bytearray) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EncodeError(f"expected an integer, got {type(value).__name__}")
        if not self.lo <= value <= self.hi or (self.minimum is not None and value < self.minimum):
            raise EncodeError(f"{value} does not fit {self.name}")
        out += self._st.pack(value)

    def decode(self, r: Reader) -> int:
        (value,) = r.unpack(self._st)
        if self.minimum is not None and value < self.minimum:
            raise malformed(f"{value} is below the minimum {self.minimum}")
        return int(value)

    @property
    def max_size(self) -> int:
        return self._st.size


class Bool(WireType):
    name = "bool"

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, bool):
            raise EncodeError(f"expected a bool, got {type(value).__name__}")
        out.append(1 if value else 0)

    def decode(self, r: Reader) -> bool:
        b = r.take(1)[0]
        if b > 1:
            raise malformed(f"bool byte is {b}, must be 0 or 1")
        return b == 1

    @property
    def max_size(self) -> int:
        return 1


class F64(WireType):
    name = "f64"
    _st = struct.Struct("<d")

    def encode(self, value: Any, out: bytearray) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EncodeError(f"expected a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise EncodeError(f"{value} is not finite")
        out += self._st.pack(value)

    def decode(self, r: Reader) -> float:
        (value,) = r.unpack(self._st)
        if not math.isfinite(value):
            raise malformed(f"{value} is not a finite number")
        return float(value)

    @property
    def max_size(self) -> int:
        return 8


_SHORT_LEN = struct.Struct("<H")
_SHORT_COUNT = struct.Struct("<B")


class Blob(WireType):
    """``bytes<N>``: a u32 length then the bytes (``short``: ``bytes16<N>``, a u16 length)."""

    def __init__(self, cap: int, *, short: bool = False) -> None:
        self.cap = cap
        self._len = _SHORT_LEN if short else _LEN
        if short and cap > 0xFFFF:
            raise ValueError(f"bytes16 holds at most 65535 bytes, not {cap}")
        self.name = f"bytes16<{size_text(cap)}>" if short else f"bytes<{size_text(cap)}>"

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise EncodeError(f"expected bytes, got {type(value).__name__}")
        n = len(value)
        if n > self.cap:
            raise EncodeError(f"{n} bytes exceed the {self.cap}-byte limit")
        out += self._len.pack(n)
        out += value

    def decode(self, r: Reader) -> bytes:
        (n,) = r.unpack(self._len)
        if n > self.cap:
            raise malformed(f"{n} bytes exceed the {self.cap}-byte limit")
        return bytes(r.take(n))

    @property
    def max_size(self) -> int:
        return self._len.size + self.cap


class Text(WireType):
    """``str<N>``: a u32 byte length then UTF-8, at most N bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.name = f"str<{size_text(cap)}>"

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, str):
            raise EncodeError(f"expected a str, got {type(value).__name__}")
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as err:  # lone surrogates
            raise EncodeError(f"not encodable as UTF-8: {err.reason}") from None
        if len(raw) > self.cap:
            raise EncodeError(f"{len(raw)} UTF-8 bytes exceed the {self.cap}-byte limit")
        out += _LEN.pack(len(raw))
        out += raw

    def decode(self, r: Reader) -> str:
        (n,) = r.unpack(_LEN)
        if n > self.cap:
            raise malformed(f"string of {n} bytes exceeds the {self.cap}-byte limit")
        raw = r.take(n)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as err:
            raise malformed(f"invalid UTF-8 at byte {err.start}") from None

    @property
    def max_size(self) -> int:
        return 4 + self.cap


class _Items(WireType):
    """A u32 count then the items (``short``: a u8 count)."""

    def __init__(self, cap: int, item: WireType, *, short: bool = False) -> None:
        self.cap = cap
        self.item = item
        self._count = _SHORT_COUNT if short else _LEN
        if short and cap > 0xFF:
            raise ValueError(f"a short list holds at most 255 items, not {cap}")

    def _check_count(self, n: int) -> None:
        if n > self.cap:
            raise EncodeError(f"{n} items exceed the limit of {self.cap}")

    def _encode_items(self, items: Sequence[Any], out: bytearray) -> None:
        self._check_count(len(items))
        out += self._count.pack(len(items))
        for i, item in enumerate(items):
            try:
                self.item.encode(item, out)
            except EncodeError as err:
                raise EncodeError(f"[{i}]: {err}") from None

    def _decode_items(self, r: Reader) -> list[Any]:
        (n,) = r.unpack(self._count)
        if n > self.cap:
            raise malformed(f"{n} items exceed the limit of {self.cap}")
        items = []
        for i in range(n):
            try:
                items.append(self.item.decode(r))
            except WireProtocolError as err:
                raise malformed(f"[{i}]: {err.reason}") from None
        return items

    @property
    def max_size(self) -> int:
        return self._count.size + self.cap * self.item.max_size


class ListOf(_Items):
    """``list<N, T>``: a u32 count then the items; decodes to a tuple."""

    def __init__(self, cap: int, item: WireType, *, short: bool = False) -> None:
        super().__init__(cap, item, short=short)
        self.name = f"list8<{cap}, {item.name}>" if short else f"list<{size_text(cap)}, {item.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise EncodeError(f"expected a sequence, got {type(value).__name__}")
        self._encode_items(value, out)

    def decode(self, r: Reader) -> tuple[Any, ...]:
        return tuple(self._decode_items(r))


class SetOf(_Items):
    """``set<N, T>``: a list whose items are all different, sent sorted; decodes to a frozenset."""

    def __init__(self, cap: int, item: WireType) -> None:
        super().__init__(cap, item)
        self.name = f"set<{size_text(cap)}, {item.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, frozenset | set):
            raise EncodeError(f"expected a set, got {type(value).__name__}")
        self._encode_items(sorted(value), out)

    def decode(self, r: Reader) -> frozenset[Any]:
        items = self._decode_items(r)
        result = frozenset(items)
        if len(result) != len(items):
            raise malformed("set contains the same item twice")
        return result


class EnumOf(WireType):
    """An ``enum.IntEnum`` sent as a fixed-width unsigned integer."""

    def __init__(self, cls: type[enum.IntEnum], bits: int = 8) -> None:
        self.cls = cls
        self._int = Int("u", bits)
        self.name = f"{cls.__name__}(u{bits})"
        for member in cls:
            if not self._int.lo <= member.value <= self._int.hi:
                raise ValueError(f"{cls.__name__}.{member.name} does not fit u{bits}")

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, self.cls):
            raise EncodeError(f"expected a {self.cls.__name__}, got {value!r}")
        self._int.encode(int(value), out)

    def decode(self, r: Reader) -> enum.IntEnum:
        raw = self._int.decode(r)
        try:
            return self.cls(raw)
        except ValueError:
            raise malformed(f"{raw} is not a {self.cls.__name__}") from None

    @property
    def max_size(self) -> int:
        return self._int.max_size


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: WireType
    #: The protocol version that added the field (a versioned struct's later fields), else None.
    since: tuple[int, int] | None = None


class StructOf(WireType):
    """A frozen dataclass sent as its fields in order. The declared field names must match the class.

    Consecutive fixed-width fields (integers, bools, enums, f64) are packed and unpacked with one
    ``struct.Struct`` call; FrameUpdates with hundreds of regions make this the hot path.
    """

    def __init__(
        self,
        cls: type,
        fields: Iterable[tuple[str, WireType] | tuple[str, WireType, tuple[int, int]]],
        *,
        versioned: bool = False,
    ) -> None:
        """``versioned``: the struct starts with ``version_major``/``version_minor`` (u16 each), and
        fields given with a third element, the version that added them, are on the wire only when the
        struct's own version is at least that (a receiver of an older one takes their defaults)."""
        self.cls = cls
        self.fields = tuple(Field(*f) for f in fields)
        self.name = cls.__name__
        self.versioned = versioned
        declared = [f.name for f in self.fields]
        actual = [f.name for f in dataclasses.fields(cls)]
        if declared != actual:
            raise ValueError(f"layout of {cls.__name__} lists {declared}, the class has {actual}")
        later = [f for f in self.fields if f.since is not None]
        if later and not versioned:
            raise ValueError(f"{cls.__name__}: fields with a version need a versioned struct")
        if versioned and [f.name for f in self.fields[:2]] != ["version_major", "version_minor"]:
            raise ValueError(f"{cls.__name__}: a versioned struct starts with version_major, version_minor")
        if later and any(f.since is None for f in self.fields[self.fields.index(later[0]) :]):
            raise ValueError(f"{cls.__name__}: fields with a version come after all the others")
        self._steps: list[_Run | Field] = []
        run: list[Field] = []
        for f in self.fields:
            if isinstance(f.type, Int | Bool | F64 | EnumOf) and f.since is None:
                run.append(f)
                continue
            if run:
                self._steps.append(_Run(run))
                run = []
            self._steps.append(f)
        if run:
            self._steps.append(_Run(run))

    def encode(self, value: Any, out: bytearray) -> None:
        if not isinstance(value, self.cls):
            raise EncodeError(f"expected a {self.cls.__name__}, got {type(value).__name__}")
        version: tuple[int, int] | None = None
        if self.versioned:
            fields: Any = value  # (isinstance above narrowed it to object)
            version = (fields.version_major, fields.version_minor)
        for step in self._steps:
            if isinstance(step, Field) and step.since is not None and version is not None:
                if version < step.since:
                    break  # this version's struct ends here (later fields all have a version)
            if isinstance(step, _Run):
                values = [getattr(value, n) for n in step.names]
                try:
                    for i, check in step.encode_checks:
                        check(values[i])
                    out += step.st.pack(*values)
                    continue
                except (EncodeError, struct.error):
                    fields = step.fields  # find the culprit for a precise message
            else:
                fields = (step,)
            for f in fields:
                try:
                    f.type.encode(getattr(value, f.name), out)
                except EncodeError as err:
                    raise EncodeError(f"{self.cls.__name__}.{f.name}: {err}") from None

    def decode(self, r: Reader) -> Any:
        values: dict[str, Any] = {}
        for step in self._steps:
            if isinstance(step, Field) and step.since is not None:
                if (values["version_major"], values["version_minor"]) < step.since:
                    break  # an older version's struct: the later fields keep their defaults
            if isinstance(step, _Run):
                try:
                    raw = r.unpack(step.st)  # short input: the message is malformed
                except WireProtocolError as err:
                    names = step.names[0] if len(step.names) == 1 else f"{step.names[0]}..{step.names[-1]}"
                    raise malformed(f"{self.cls.__name__}.{names}: truncated: {err.reason}") from None
                for name, v in zip(step.names, raw, strict=True):
                    values[name] = v
                for i, convert in step.decode_checks:
                    name = step.names[i]
                    try:
                        values[name] = convert(values[name])
                    except WireProtocolError as err:
                        raise malformed(f"{self.cls.__name__}.{name}: {err.reason}") from None
                continue
            try:
                values[step.name] = step.type.decode(r)
            except WireProtocolError as err:
                raise malformed(f"{self.cls.__name__}.{step.name}: {err.reason}") from None
        return self.cls(**values)

    @property
    def max_size(self) -> int:
        return sum(f.type.max_size for f in self.fields)


class _Run:
    """Consecutive fixed-width fields: one struct format, plus the checks struct does not make."""

    def __init__(self, fields: list[Field]) -> None:
        self.fields = tuple(fields)
        self.names = tuple(f.name for f in fields)
        fmt = "<"
        self.encode_checks: list[tuple[int, Any]] = []
        self.decode_checks: list[tuple[int, Any]] = []
        for i, f in enumerate(fields):
            t = f.type
            if isinstance(t, Int):
                fmt += t._st.format[1:]
                if t.minimum is not None:
                    self.encode_checks.append((i, _encode_check(t)))
                    self.decode_checks.append((i, _decode_check(t)))
            elif isinstance(t, EnumOf):
                fmt += t._int._st.format[1:]
                self.encode_checks.append((i, _encode_check(t)))
                self.decode_checks.append((i, _decode_enum(t)))
            elif isinstance(t, Bool):
                fmt += "B"
                self.encode_checks.append((i, _encode_check(t)))
                self.decode_checks.append((i, _decode_bool))
            else:
                fmt += "d"
                self.encode_checks.append((i, _encode_check(t)))
                self.decode_checks.append((i, _decode_finite))
        self.st = struct.Struct(fmt)


def _encode_check(t: WireType) -> Any:
    def check(v: Any) -> None:
        t.encode(v, bytearray())  # raises EncodeError; the bytes are thrown away

    if isinstance(t, EnumOf):
        cls = t.cls

        def check_enum(v: Any) -> None:
            if not isinstance(v, cls):
                raise EncodeError(f"expected a {cls.__name__}, got {v!r}")

        return check_enum
    if isinstance(t, Bool):

        def check_bool(v: Any) -> None:
            if not isinstance(v, bool):
                raise EncodeError(f"expected a bool, got {type(v).__name__}")

        return check_bool
    return check


def _decode_check(t: Int) -> Any:
    minimum = t.minimum
    assert minimum is not None

    def check(v: int) -> int:
        if v < minimum:
            raise malformed(f"{v} is below the minimum {minimum}")
        return v

    return check


def _decode_enum(t: EnumOf) -> Any:
    cls = t.cls

    def convert(v: int) -> enum.IntEnum:
        try:
            return cls(v)
        except ValueError:
            raise malformed(f"{v} is not a {cls.__name__}") from None

    return convert


def _decode_bool(v: int) -> bool:
    if v > 1:
        raise malformed(f"bool byte is {v}, must be 0 or 1")
    return v == 1


def _decode_finite(v: float) -> float:
    if not math.isfinite(v):
        raise malformed(f"{v} is not a finite number")
    return v


U8 = Int("u", 8)
U16 = Int("u", 16)
U32 = Int("u", 32)
U64 = Int("u", 64)
I32 = Int("i", 32)
I64 = Int("i", 64)
BOOL = Bool()
FLOAT64 = F64()
