"""The machinery of the declarative schema.

Every setting is declared once, as a field of a frozen dataclass in :mod:`wayray.config.model`::

    port: int = setting(7100, Integer(1, 65535), "UDP port the server listens on.")

The declaration carries the TOML key, the value type, the default, the help text and (for arrays)
the rule for combining layers. That one table drives parsing and validation (the loader), the typed
objects the daemons use (the dataclasses themselves), ``wradm show`` and the reference in
``docs/configuration.md``.
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from wayray.config.types import ValueType

T = TypeVar("T")

_META = "wayray.setting"


class ListRule(enum.StrEnum):
    """How an array combines across layers and drop-ins."""

    #: Later files add to the list; an empty array resets it (like an empty assignment in systemd).
    APPEND = "append"
    #: The last file that sets the array wins.
    REPLACE = "replace"


class Kind(enum.Enum):
    VALUE = "value"  # a scalar, an array of scalars, or a free-form table (environment)
    TABLE = "table"  # a nested table with its own settings (``[server.x.output]``)
    RECORDS = "records"  # an array of tables with their own settings (``[[usb.rule]]``)


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    attr: str
    kind: Kind
    help: str
    type: ValueType[Any] | None = None
    record: builtins.type | None = None
    default: Any = None
    required: bool = False
    list_rule: ListRule | None = None
    #: For defaults computed from other settings: how the reference documents them.
    derived: str = ""
    #: For settings whose feature does not exist yet: what is missing (the reference says the value
    #: is accepted and validated but not in effect yet). Empty: the setting takes effect.
    not_yet: str = ""


@dataclasses.dataclass(frozen=True)
class _Meta:
    kind: Kind
    help: str
    type: ValueType[Any] | None = None
    record: builtins.type | None = None
    key: str | None = None
    list_rule: ListRule | None = None
    derived: str = ""
    required: bool = False
    not_yet: str = ""


def _field(default: Any, meta: _Meta) -> Any:
    md = {_META: meta}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=md)
    if type(default).__hash__ is None:  # dicts and mapping proxies are not valid dataclass defaults
        return dataclasses.field(default_factory=lambda: default, metadata=md)
    return dataclasses.field(default=default, metadata=md)


def setting(
    default: T,
    kind: ValueType[Any],
    help: str,
    *,
    key: str | None = None,
    list_rule: ListRule | None = None,
    derived: str = "",
    not_yet: str = "",
) -> T:
    """Declare a setting with a default. ``key`` defaults to the attribute name. ``not_yet`` says
    what is missing for a setting that is read and checked but does not take effect yet."""
    meta = _Meta(Kind.VALUE, help, kind, key=key, list_rule=list_rule, derived=derived, not_yet=not_yet)
    return cast(T, _field(default, meta))


def required(kind: ValueType[Any], help: str, *, key: str | None = None) -> Any:
    """Declare a setting that must be given (only inside records such as ``[[usb.rule]]``)."""
    return _field(dataclasses.MISSING, _Meta(Kind.VALUE, help, kind, key=key, required=True))


def table(record: type[T], help: str, *, key: str | None = None) -> T:
    """Declare a nested table whose settings are the fields of ``record``."""
    md = {_META: _Meta(Kind.TABLE, help, record=record, key=key)}
    return cast(T, dataclasses.field(default_factory=cast(Callable[[], T], record), metadata=md))


def records(
    record: type, help: str, *, key: str | None = None, list_rule: ListRule = ListRule.APPEND
) -> Any:
    """Declare an array of tables (``[[usb.rule]]``) whose elements have the fields of ``record``."""
    return _field((), _Meta(Kind.RECORDS, help, record=record, key=key, list_rule=list_rule))


@functools.cache
def settings_of(record: type) -> tuple[Setting, ...]:
    """The settings declared by a schema dataclass, in declaration order."""
    out = []
    for f in dataclasses.fields(record):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(
            Setting(
                key=meta.key or f.name,
                attr=f.name,
                kind=meta.kind,
                help=meta.help,
                type=meta.type,
                record=meta.record,
                default=default,
                required=meta.required,
                list_rule=meta.list_rule,
                derived=meta.derived,
                not_yet=meta.not_yet,
            )
        )
    return tuple(out)


@functools.cache
def settings_by_key(record: type) -> dict[str, Setting]:
    return {s.key: s for s in settings_of(record)}


class Shape(enum.Enum):
    SINGLE = "single"  # one table: ``[host]``
    NAMED = "named"  # one table per name: ``[server.<name>]``


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One configuration file: its name, the top-level table it holds, and that table's schema."""

    name: str
    table: str
    shape: Shape
    record: type
    help: str
    #: Which programs read the file; shown in the reference.
    used_by: str = ""
    #: The daemons that read it ("wrsrvd", "wrsessd", "wrclient"): their start-up checks (and
    #: ``wradm check --instance/--launcher/--client``) judge only the files they read.
    readers: frozenset[str] = frozenset()
    #: For files whose feature does not exist yet: what is missing (see ``Setting.not_yet``).
    not_yet: str = ""

    @property
    def dropin_dir(self) -> str:
        return f"{self.name}.d"

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".toml")
