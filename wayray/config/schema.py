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


class Applies(enum.StrEnum):
    """What it takes for a changed value to be in effect (``wradm apply`` does exactly that)."""

    #: wrsrvd takes it when reloaded (``systemctl reload wrsrvd@NAME``): nothing is interrupted.
    #: Output, encoder and command settings and per-session limits apply to sessions started
    #: afterwards; admission limits at once.
    RELOAD = "reload"
    #: wrsrvd must be restarted: kiosks reconnect (about a second; sessions keep running).
    RESTART = "restart"
    #: It is written into the generated unit; systemd applies it to the running instance at
    #: ``daemon-reload`` (resource limits). SMF: recorded only.
    UNIT = "daemon-reload"
    #: Whether the instance runs at all: it is started or stopped.
    START = "start/stop"
    #: The session launcher (wrsessd and its socket) must be restarted.
    LAUNCHER = "wrsessd restart"
    #: Read for every new session: nothing to do.
    NEXT_SESSION = "next session"
    #: Read by wrclient when it starts, on the kiosk: restart wrclient there.
    CLIENT = "wrclient restart"


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
    #: What a change of it needs to be in effect; empty: what its file needs (``FileSpec.applies``).
    applies: frozenset[Applies] = frozenset()


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
    applies: frozenset[Applies] = frozenset()


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
    applies: Applies | frozenset[Applies] = frozenset(),
) -> T:
    """Declare a setting with a default. ``key`` defaults to the attribute name. ``not_yet`` says
    what is missing for a setting that is read and checked but does not take effect yet.
    ``applies`` says what a change needs to take effect when it differs from what its file says."""
    meta = _Meta(
        Kind.VALUE,
        help,
        kind,
        key=key,
        list_rule=list_rule,
        derived=derived,
        not_yet=not_yet,
        applies=frozenset({applies}) if isinstance(applies, Applies) else applies,
    )
    return cast(T, _field(default, meta))


def required(kind: ValueType[Any], help: str, *, key: str | None = None) -> Any:
    """Declare a setting that must be given (only inside records such as ``[[usb.rule]]``)."""
    return _field(dataclasses.MISSING, _Meta(Kind.VALUE, help, kind, key=key, required=True))


def table(record: type[T], help: str, *, key: str | None = None, applies: Applies | None = None) -> T:
    """Declare a nested table whose settings are the fields of ``record``; ``applies`` (if given)
    is what a change of any of them needs, unless a setting says otherwise."""
    md = {_META: _Meta(Kind.TABLE, help, record=record, key=key, applies=_set(applies))}
    return cast(T, dataclasses.field(default_factory=cast(Callable[[], T], record), metadata=md))


def records(
    record: type, help: str, *, key: str | None = None, list_rule: ListRule = ListRule.APPEND
) -> Any:
    """Declare an array of tables (``[[usb.rule]]``) whose elements have the fields of ``record``."""
    return _field((), _Meta(Kind.RECORDS, help, record=record, key=key, list_rule=list_rule))


def _set(applies: Applies | None) -> frozenset[Applies]:
    return frozenset() if applies is None else frozenset({applies})


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
                applies=meta.applies,
            )
        )
    return tuple(out)


@functools.cache
def settings_by_key(record: type) -> dict[str, Setting]:
    return {s.key: s for s in settings_of(record)}


@dataclasses.dataclass(frozen=True)
class Applied:
    """A value setting with its place in the tree and what a change of it needs."""

    key: str  # dotted, below its file's table: "tls.cert"
    attrs: tuple[str, ...]  # the attributes leading to it from the record: ("tls", "cert")
    setting: Setting
    applies: frozenset[Applies]

    def value(self, obj: Any) -> Any:
        for attr in self.attrs:
            obj = getattr(obj, attr)
        return obj


def applied_settings(
    record: type, default: frozenset[Applies], prefix: str = "", attrs: tuple[str, ...] = ()
) -> list[Applied]:
    """Every value setting of ``record``, nested tables included (an array of tables counts as one
    value), with what a change of it needs."""
    out = []
    for s in settings_of(record):
        applies = s.applies or default
        if s.kind is Kind.TABLE:
            assert s.record is not None
            out += applied_settings(s.record, applies, f"{prefix}{s.key}.", (*attrs, s.attr))
        else:
            out.append(Applied(f"{prefix}{s.key}", (*attrs, s.attr), s, applies))
    return out


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
    #: What a change of its settings needs, unless a setting (or its table) says otherwise.
    applies: Applies = Applies.RELOAD

    @property
    def dropin_dir(self) -> str:
        return f"{self.name}.d"

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".toml")
