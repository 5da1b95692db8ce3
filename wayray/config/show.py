"""The effective configuration as TOML (what ``wradm show`` prints), optionally with the origin of
every value. The output without origins is itself a valid configuration that means the same.

Keys and values are written by ``tomli_w`` (TOML's own escaping: a control character such as U+007F
in a value comes out as ``\\u007f``, which ``tomllib`` reads back). ``tomli_w`` is imported when
something is shown, so the generator, which imports this package at boot, still needs only the
standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wayray.config.diagnostics import Origin, printable
from wayray.config.loader import Config
from wayray.config.model import FILES
from wayray.config.schema import FileSpec, Kind, Shape, settings_of

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _dumps_one(key: str, value: Any) -> str:
    """``key = value`` as tomli_w writes it (one line: no table, no multi-line string), with the
    characters TOML allows raw but terminals and line-splitting tools do not (U+0085, U+2028, bidi
    overrides, ...) escaped as well."""
    import tomli_w

    text = tomli_w.dumps({key: value}).rstrip("\n")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def toml_key(key: str) -> str:
    if _BARE.fullmatch(key):
        return key
    return _dumps_one(key, 0).rpartition(" = ")[0]


def toml_value(value: Any) -> str:
    """Format a TOML-native Python value (what ``tomllib`` returns) as TOML text on one line."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool | int | float | str):
        return _dumps_one("v", value).partition(" = ")[2]
    raise TypeError(f"cannot format {value!r} as TOML")


@dataclass(frozen=True)
class Line:
    """One line of ``show`` output: a table header, a ``key = value`` or a comment."""

    text: str
    #: Dotted key of the value (or table) on this line, for filtering; "" for comments.
    key: str = ""
    origin: Origin | None = None
    is_value: bool = False


def effective_lines(config: Config) -> Iterator[Line]:
    for spec in FILES:
        read = [printable(s.logical) for s in config.sources if s.spec_name == spec.name]
        yield Line(f"# {spec.name}: " + (", ".join(read) if read else "built-in defaults only"))
        yield from _file_lines(config, spec)
        yield Line("")


def _file_lines(config: Config, spec: FileSpec) -> Iterator[Line]:
    if spec.shape is Shape.SINGLE:
        obj = getattr(config, spec.table)
        yield Line(f"[{spec.table}]", spec.table, config.origin(spec.table))
        yield from _record_lines(config, spec.record, obj, spec.table, "")
        return
    collection = config.servers if spec.table == "server" else config.policies
    if not collection:
        yield Line(f"# (no [{spec.table}.<name>] tables)")
    for name, obj in collection.items():
        dotted = f"{spec.table}.{name}"
        yield Line(f"[{spec.table}.{toml_key(name)}]", dotted, config.origin(dotted))
        yield from _record_lines(config, spec.record, obj, dotted, "")
        yield Line("")


def _record_lines(config: Config, record: type, obj: Any, dotted: str, prefix: str) -> Iterator[Line]:
    deferred: list[tuple[str, Any, type]] = []
    for s in settings_of(record):
        key = f"{dotted}.{s.key}"
        value = getattr(obj, s.attr)
        if s.kind is Kind.TABLE:
            assert s.record is not None
            yield from _record_lines(config, s.record, value, key, f"{prefix}{s.key}.")
        elif s.kind is Kind.RECORDS:
            assert s.record is not None
            deferred.append((key, value, s.record))
        else:
            assert s.type is not None
            text = f"{prefix}{toml_key(s.key)} = {toml_value(s.type.to_toml(value))}"
            yield Line(text, key, config.origin(key), is_value=True)
    for key, items, sub in deferred:
        if not items:
            yield Line(f"{key.rpartition('.')[2]} = []", key, config.origin(key), is_value=True)
        for i, item in enumerate(items):
            yield Line("")
            item_key = f"{key}[{i}]"
            yield Line(f"[[{key}]]", item_key, config.origin(item_key))
            yield from _record_lines(config, sub, item, item_key, "")


def render(config: Config, *, origins: bool = False, prefix: str = "") -> str:
    """``wradm show`` output. ``prefix`` keeps only keys below it ("server.lab", "usb")."""
    lines = list(effective_lines(config))
    if prefix:
        lines = _filter(lines, prefix)
    if not origins:
        return _squeeze("\n".join(ln.text for ln in lines))
    width = min(max((len(ln.text) for ln in lines if ln.key), default=0) + 2, 64)
    out = []
    for ln in lines:
        if not ln.key:
            out.append(ln.text)
            continue
        if ln.origin is not None:
            where = str(ln.origin)
        else:
            where = "default" if ln.is_value else "built-in"
        out.append(f"{ln.text:<{width}}# {where}".rstrip(" #") if where else ln.text)
    return _squeeze("\n".join(out))


def _filter(lines: list[Line], prefix: str) -> list[Line]:
    """Lines whose key is ``prefix`` or below it, each under its table header."""

    def wanted(key: str) -> bool:
        return key == prefix or key.startswith((prefix + ".", prefix + "["))

    out: list[Line] = []
    header: Line | None = None
    for ln in lines:
        if ln.key and not ln.is_value:
            header = ln
            if wanted(ln.key):
                out.extend([Line(""), ln])
        elif ln.is_value and wanted(ln.key):
            if header is not None and header not in out:
                out.extend([Line(""), header])
            out.append(ln)
    return out


def _squeeze(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
