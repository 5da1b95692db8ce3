"""Reading the configuration: parse every file, validate it against the schema, merge the layers,
remember where each value came from, and build the typed :class:`Config`.

Every value is validated in the file that sets it (so a bad value in a drop-in that a later drop-in
overrides is still reported), and a bad value never enters the merge (so one mistake does not cause
a cascade of follow-up errors). All problems are collected; nothing stops at the first.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wayray.common.errors import WayRayError
from wayray.config.diagnostics import ConfigError, Diagnostic, Origin, Severity
from wayray.config.files import (
    MAX_FILE_BYTES,
    MAX_TOTAL_BYTES,
    NotRegular,
    TooLarge,
    describe_size,
    read_regular,
)
from wayray.config.layers import Source, find_sources, resolve_root
from wayray.config.model import (
    DERIVED,
    FILES,
    FILES_BY_NAME,
    FILES_BY_TABLE,
    INSTANCE_NAME,
    NAME_RULE,
    ClientConfig,
    HostConfig,
    PolicyConfig,
    ServerConfig,
    SessionConfig,
    UsbConfig,
)
from wayray.config.positions import PositionIndex, index_positions, position_of_offset, syntax_error_position
from wayray.config.prescan import check_limits
from wayray.config.schema import FileSpec, Kind, ListRule, Setting, Shape, settings_by_key, settings_of
from wayray.config.types import Environment, Invalid, ListOf, describe, did_you_mean

# --- the merged tree (values with their origins) ---------------------------------------------------


@dataclass
class _Leaf:
    value: Any
    origin: Origin
    #: Per-element origins of arrays, per-variable origins of environment tables.
    parts: dict[str | int, Origin] = field(default_factory=dict)


@dataclass
class _Records:
    origin: Origin
    items: list[_Table] = field(default_factory=list)


@dataclass
class _Table:
    origin: Origin | None
    entries: dict[str, _Leaf | _Table | _Records] = field(default_factory=dict)
    valid: bool = True


# --- the result ------------------------------------------------------------------------------------


class UnknownInstance(WayRayError):
    """``Config.server(name)`` for a name no ``[server.<name>]`` table defines."""


@dataclass(frozen=True)
class Config:
    """The effective configuration. Obtain it with :func:`wayray.config.load`."""

    servers: Mapping[str, ServerConfig]
    policies: Mapping[str, PolicyConfig]
    usb: UsbConfig
    session: SessionConfig
    host: HostConfig
    client: ClientConfig
    #: Where each value came from, by dotted key ("server.lab.port", "usb.rule[0].action").
    origins: Mapping[str, Origin]
    #: The files that were read, in the order they applied.
    sources: tuple[Source, ...]
    root: Path

    def server(self, name: str) -> ServerConfig:
        """The server instance ``name``; :class:`UnknownInstance` (with what to do) if there is none."""
        try:
            return self.servers[name]
        except KeyError:
            known = ", ".join(sorted(self.servers)) or "none"
            raise UnknownInstance(
                f"no server instance {name!r} is configured (configured: {known})"
                f"{did_you_mean(name, sorted(self.servers))}",
                hint=f"add a [server.{name}] table to /etc/wayray/servers.toml, then run `wradm apply`",
            ) from None

    def policy_for(self, server: ServerConfig) -> PolicyConfig:
        """The policy a server applies (checked to exist when the configuration is valid)."""
        return self.policies.get(server.policy, self.policies["default"])

    def enabled_servers(self) -> list[ServerConfig]:
        return [s for s in self.servers.values() if s.enabled]

    def origin(self, key: str) -> Origin | None:
        """Where the value of ``key`` was set; ``None`` when it is a built-in default."""
        return self.origins.get(key)

    def where(self, key: str) -> Origin | None:
        """The origin of ``key`` or of its nearest enclosing table that was written somewhere."""
        probe = key
        while probe:
            if probe in self.origins:
                return self.origins[probe]
            probe = _parent_key(probe)
        return None


@dataclass(frozen=True)
class LoadResult:
    config: Config
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    def errors_for(self, instance: str | None) -> tuple[Diagnostic, ...]:
        """Errors that matter to one server instance (all errors when ``instance`` is None)."""
        return tuple(d for d in self.errors if instance is None or d.concerns(instance))

    def raise_for_errors(self, instance: str | None = None) -> Config:
        if self.errors_for(instance):
            relevant = [d for d in self.diagnostics if instance is None or d.concerns(instance)]
            raise ConfigError(relevant)
        return self.config


def _parent_key(key: str) -> str:
    if key.endswith("]"):
        return key[: key.rindex("[")]
    return key.rpartition(".")[0]


# --- public entry points ---------------------------------------------------------------------------


def load_report(root: Path | str | None = None) -> LoadResult:
    """Read and validate everything; never raises for configuration problems.

    The returned config is the best effort (invalid values left at their defaults); the diagnostics
    say what was wrong. ``wradm check`` prints them; the systemd generator uses the config anyway.
    """
    loader = _Loader(resolve_root(root))
    return loader.run()


def load(root: Path | str | None = None, *, instance: str | None = None) -> Config:
    """The effective configuration, or :class:`ConfigError` carrying every diagnostic.

    With ``instance``, only errors that concern that server instance (or everything, such as a
    shared file) count, and the instance must exist (:class:`UnknownInstance` otherwise).
    """
    result = load_report(root)
    config = result.raise_for_errors(instance)
    if instance is not None:
        config.server(instance)
    return config


def load_user_session(
    system: SessionConfig, user_toml: bytes | str | None, user_path: str = "~/.config/wayray/session.toml"
) -> tuple[SessionConfig, tuple[Diagnostic, ...]]:
    """A user's session settings: the system defaults overridden key by key by their own file.

    ``user_toml`` is the content of the user's ``session.toml`` (None when they have none). Read it
    *as the user* (after dropping privileges), never as root: a symlink to a file the user cannot
    read must not leak into error messages. Problems in the user's file never fail: bad keys are
    ignored and reported in the returned diagnostics, which the caller shows to the user.
    """
    if user_toml is None:
        return system, ()
    loader = _Loader(Path("/"))
    spec = FILES_BY_NAME["session.toml"]
    source = Source(Path(user_path), user_path, spec.name, False)
    top = _Table(None)
    loader.read_text(spec, source, user_toml, top)
    table = top.entries.get(spec.table)
    values: dict[str, Any] = {}
    if isinstance(table, _Table):
        for s in settings_of(SessionConfig):
            leaf = table.entries.get(s.key)
            if not isinstance(leaf, _Leaf):
                continue
            if isinstance(s.type, Environment):
                values[s.attr] = MappingProxyType({**system.environment, **leaf.value})
            else:
                values[s.attr] = leaf.value
    return replace(system, **values), tuple(loader.diags)


# --- the loader ------------------------------------------------------------------------------------

_FRIENDLIER = [
    (re.compile(r"^Invalid value$"), 'invalid value (text must be quoted: key = "text")'),
    (re.compile(r"^Cannot overwrite a value$"), "this key is already set above in the same table"),
    (re.compile(r"^Cannot declare \((.*)\) twice$"), "this table is already declared above"),
    (
        re.compile(r"^Expected newline or end of document after a statement$"),
        "expected the end of the line after the value (one key = value per line)",
    ),
]


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.diags: list[Diagnostic] = []
        self.tops: dict[str, _Table] = {spec.name: _Table(None) for spec in FILES}

    # --- diagnostics -----------------------------------------------------------------------------
    def error(
        self, origin: Origin | None, key: str, message: str, scope: frozenset[str] = frozenset()
    ) -> None:
        self.diags.append(Diagnostic(Severity.ERROR, message, origin, key, scope))

    def not_in_effect(self, origin: Origin, key: str, missing: str, scope: frozenset[str]) -> None:
        """A value was set whose feature does not exist yet: say so where it was set, so nobody
        believes it did something (a warning: the configuration is still valid)."""
        self.diags.append(
            Diagnostic(Severity.WARNING, f"set, but not in effect yet: {missing}", origin, key, scope)
        )

    # --- reading ---------------------------------------------------------------------------------
    def run(self) -> LoadResult:
        sources = find_sources(self.root, self.diags)
        budget = MAX_TOTAL_BYTES
        for src in sources:
            spec = FILES_BY_NAME[src.spec_name]
            data = self.read_file(src, min(MAX_FILE_BYTES, budget))
            if data is None:
                continue
            budget -= len(data)
            self.read_text(spec, src, data, self.tops[spec.name])
        config = self.build(tuple(sources))
        from wayray.config.checks import cross_checks  # late: checks imports this module's types

        self.diags.extend(cross_checks(config, self.diags))
        self.diags.sort(key=_diag_order)
        return LoadResult(config, tuple(self.diags))

    def read_file(self, src: Source, limit: int) -> bytes | None:
        """The bytes of one file, or None after reporting why it cannot be used."""
        try:
            return read_regular(src.resolved, limit)
        except NotRegular as err:
            self.error(
                src.origin(1, 1),
                "",
                f"is {err.kind}, not a regular file; not read (configuration files are regular files, "
                "or symbolic links to one)",
            )
        except TooLarge as err:
            good = err.head.decode("utf-8", "replace")
            if limit < MAX_FILE_BYTES:
                why = (
                    f"the configuration files together are larger than {describe_size(MAX_TOTAL_BYTES)}; "
                    "this one was not read (remove files that do not belong in the configuration)"
                )
            else:
                why = (
                    f"the file goes on past {describe_size(MAX_FILE_BYTES)} (here); not read (a "
                    f"configuration file has at most {describe_size(MAX_FILE_BYTES)}: the right file?)"
                )
            self.error(src.origin(*position_of_offset(good, len(good))), "", why)
        except OSError as err:
            hint = ""
            if src.resolved != src.path or src.path.is_symlink():
                hint = " (a symbolic link to a file that cannot be read"
                hint += f" below {self.root})" if self.root != Path("/") else ")"
            self.error(src.origin(1, 1), "", f"cannot read: {err.strerror or err}{hint}")
        return None

    def read_text(self, spec: FileSpec, src: Source, data: bytes | str, top: _Table) -> None:
        if isinstance(data, bytes):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as err:
                good = data[: err.start].decode("utf-8", "replace")
                self.error(
                    src.origin(*position_of_offset(good, len(good))),
                    "",
                    "not valid UTF-8 text (here); configuration files are UTF-8: save it as UTF-8",
                )
                return
        else:
            text = data
        limit = check_limits(text)
        if limit is not None:
            message, (line, col) = limit
            self.error(src.origin(line, col), "", f"invalid TOML for WayRay: {message}")
            return
        try:
            doc = tomllib.loads(text)
        except (ValueError, RecursionError) as err:
            if not isinstance(err, tomllib.TOMLDecodeError):
                # Not a syntax error tomllib knows: a number it cannot convert, a nesting it cannot
                # follow. The limits above keep WayRay's own files from these; say what it was anyway.
                self.error(src.origin(1, 1), "", f"invalid TOML: {type(err).__name__}: {err}")
                return
            msg, (line, col) = syntax_error_position(err, text)
            if msg.startswith("Cannot declare"):
                col = 1  # tomllib points after the header; the header itself is the problem
            for pattern, friendlier in _FRIENDLIER:
                if pattern.match(msg):
                    msg = friendlier
                    break
            self.error(src.origin(line, col), "", f"invalid TOML: {msg}")
            return
        self.merge_document(spec, src, doc, index_positions(text), top)

    # --- merging ---------------------------------------------------------------------------------
    def merge_document(
        self, spec: FileSpec, src: Source, doc: dict[str, Any], index: PositionIndex, top: _Table
    ) -> None:
        for key, raw in doc.items():
            kpos = src.at(index.key((key,)))
            if key != spec.table:
                other = FILES_BY_TABLE.get(key)
                if other is not None:
                    self.error(kpos, key, f"[{key}] tables belong in {other.name}, not in {spec.name}")
                else:
                    self.error(
                        kpos,
                        key,
                        f"unknown table {key!r}{did_you_mean(key, [spec.table])}; "
                        f"{spec.name} holds [{spec.table}{'.<name>' if spec.shape is Shape.NAMED else ''}]",
                    )
                continue
            if not isinstance(raw, dict):
                self.error(src.at(index.value((key,))), key, f"expected a table, got {describe(raw)}")
                continue
            if spec.not_yet and raw:
                self.not_in_effect(kpos, key, spec.not_yet, frozenset())
            if spec.shape is Shape.SINGLE:
                table = top.entries.setdefault(key, _Table(kpos))
                assert isinstance(table, _Table)
                self.merge_table(spec.record, raw, (key,), key, table, index, src, frozenset())
                continue
            named = top.entries.setdefault(key, _Table(kpos))
            assert isinstance(named, _Table)
            for name, body in raw.items():
                path = (key, name)
                dotted = f"{key}.{name}"
                scope = frozenset({name}) if spec.table == "server" else frozenset()
                if not isinstance(body, dict):
                    self.error(
                        src.at(index.value(path)),
                        dotted,
                        f"expected a table [{dotted}], got {describe(body)}",
                    )
                    continue
                try:
                    INSTANCE_NAME.parse(name)
                except Invalid:
                    self.error(src.at(index.key(path)), dotted, f"invalid name {name!r}: {NAME_RULE}", scope)
                    continue
                table = named.entries.setdefault(name, _Table(src.at(index.key(path))))
                assert isinstance(table, _Table)
                self.merge_table(spec.record, body, path, dotted, table, index, src, scope)

    def merge_table(
        self,
        record: type,
        body: dict[str, Any],
        path: tuple[str | int, ...],
        dotted: str,
        into: _Table,
        index: PositionIndex,
        src: Source,
        scope: frozenset[str],
    ) -> None:
        specs = settings_by_key(record)

        for key, raw in body.items():
            kpath = path + (key,)
            name = f"{dotted}.{key}"
            s = specs.get(key)
            if s is None:
                self.error(
                    src.at(index.key(kpath)),
                    dotted,
                    f"unknown key {key!r}{did_you_mean(key, list(specs))}",
                    scope,
                )
                continue
            if s.kind is Kind.TABLE:
                assert s.record is not None
                if not isinstance(raw, dict):
                    vpos = src.at(index.value(kpath))
                    self.error(vpos, name, f"expected a table, got {describe(raw)}", scope)
                    continue
                sub = into.entries.get(key)
                if not isinstance(sub, _Table):
                    sub = into.entries[key] = _Table(src.at(index.key(kpath)))
                self.merge_table(s.record, raw, kpath, name, sub, index, src, scope)
            elif s.kind is Kind.RECORDS:
                self.merge_records(s, raw, kpath, name, into, index, src, scope)
            else:
                self.merge_value(s, raw, kpath, name, into, index, src, scope)

    def merge_records(
        self,
        s: Setting,
        raw: Any,
        kpath: tuple[str | int, ...],
        name: str,
        into: _Table,
        index: PositionIndex,
        src: Source,
        scope: frozenset[str],
    ) -> None:
        assert s.record is not None

        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            self.error(
                src.at(index.value(kpath)),
                name,
                f"expected an array of tables ([[{name}]] sections), got {describe(raw)}",
                scope,
            )
            return
        existing = into.entries.get(s.key)
        if not isinstance(existing, _Records) or s.list_rule is ListRule.REPLACE or not raw:
            existing = into.entries[s.key] = _Records(src.at(index.key(kpath)))
        for i, body in enumerate(raw):
            rpath = kpath + (i,)
            rname = f"{name}[{len(existing.items)}]"
            table = _Table(src.at(index.key(rpath)))
            before = len(self.diags)
            self.merge_table(s.record, body, rpath, rname, table, index, src, scope)
            # A rule with a bad part is dropped whole: half a rule could match what it should not.
            table.valid = len(self.diags) == before
            for req in settings_of(s.record):
                if req.required and req.key not in table.entries:
                    table.valid = False
                    if req.key not in body:  # an invalid value was reported already
                        assert req.type is not None
                        self.error(
                            table.origin, rname, f"missing required key {req.key!r} ({req.type.name})", scope
                        )
            check = getattr(s.record, "check_record", None)
            if check is not None and table.valid:
                values = {k: e.value for k, e in table.entries.items() if isinstance(e, _Leaf)}
                for key, message in check(values):
                    entry = table.entries.get(key)
                    self.error(entry.origin if entry else table.origin, f"{rname}.{key}", message, scope)
                    table.valid = False
            existing.items.append(table)

    def merge_value(
        self,
        s: Setting,
        raw: Any,
        kpath: tuple[str | int, ...],
        name: str,
        into: _Table,
        index: PositionIndex,
        src: Source,
        scope: frozenset[str],
    ) -> None:
        assert s.type is not None

        vpos = src.at(index.value(kpath))
        try:
            value = s.type.parse(raw)
        except Invalid as err:
            self.error(vpos, name, str(err), scope)
            return
        parts: dict[str | int, Origin] = {}
        if isinstance(s.type, ListOf):
            items = []
            ok = True
            for i, element in enumerate(raw):
                try:
                    items.append(s.type.item.parse(element))
                except Invalid as err:
                    self.error(src.at(index.value(kpath + (i,))), f"{name}[{i}]", str(err), scope)
                    ok = False
            if not ok:
                return
            if len(items) < s.type.min_items and s.list_rule is not ListRule.APPEND:
                self.error(vpos, name, f"needs at least {s.type.min_items} element(s)", scope)
                return
            value = tuple(items)
            old = into.entries.get(s.key)
            if s.list_rule is ListRule.APPEND and isinstance(old, _Leaf) and value:
                base = len(old.value)
                parts = dict(old.parts)
                parts.update({base + i: src.at(index.value(kpath + (i,))) for i in range(len(value))})
                value = old.value + value
            else:
                parts = {i: src.at(index.value(kpath + (i,))) for i in range(len(value))}
        elif isinstance(s.type, Environment):
            old = into.entries.get(s.key)
            merged = dict(old.value) if isinstance(old, _Leaf) else {}
            parts = dict(old.parts) if isinstance(old, _Leaf) else {}
            merged.update(value)
            parts.update({k: src.at(index.key(kpath + (k,))) for k in value})
            value = MappingProxyType(merged)
        into.entries[s.key] = _Leaf(value, vpos, parts)
        if s.not_yet:
            self.not_in_effect(src.at(index.key(kpath)), name, s.not_yet, scope)

    # --- building --------------------------------------------------------------------------------
    def build(self, sources: tuple[Source, ...]) -> Config:
        origins: dict[str, Origin] = {}
        values: dict[str, Any] = {}
        for spec in FILES:
            top = self.tops[spec.name].entries.get(spec.table)
            table = top if isinstance(top, _Table) else _Table(None)
            if spec.shape is Shape.NAMED:
                if table.origin is not None:
                    origins[spec.table] = table.origin
                named = {}
                for name, sub in table.entries.items():
                    assert isinstance(sub, _Table)
                    named[name] = replace(
                        _build(spec.record, sub, f"{spec.table}.{name}", origins), name=name
                    )
                values[spec.table] = named
            else:
                values[spec.table] = _build(spec.record, table, spec.table, origins)
        host: HostConfig = values["host"]
        host = _resolve_host(host)
        servers = {name: _resolve_server(srv, host) for name, srv in values["server"].items()}
        policies: dict[str, PolicyConfig] = dict(values["policy"])
        policies.setdefault("default", PolicyConfig(name="default"))
        return Config(
            servers=MappingProxyType(servers),
            policies=MappingProxyType(policies),
            usb=values["usb"],
            session=values["session"],
            host=host,
            client=values["client"],
            origins=MappingProxyType(origins),
            sources=sources,
            root=self.root,
        )


def _build(record: type, table: _Table, dotted: str, origins: dict[str, Origin]) -> Any:
    if table.origin is not None:
        origins[dotted] = table.origin
    kwargs: dict[str, Any] = {}
    for s in settings_of(record):
        name = f"{dotted}.{s.key}"
        entry = table.entries.get(s.key)
        if s.kind is Kind.TABLE:
            assert s.record is not None
            sub = entry if isinstance(entry, _Table) else _Table(None)
            kwargs[s.attr] = _build(s.record, sub, name, origins)
        elif s.kind is Kind.RECORDS:
            assert s.record is not None
            items: list[Any] = []
            if isinstance(entry, _Records):
                origins[name] = entry.origin
                for item in entry.items:
                    if item.valid:
                        items.append(_build(s.record, item, f"{name}[{len(items)}]", origins))
            kwargs[s.attr] = tuple(items)
        elif isinstance(entry, _Leaf):
            kwargs[s.attr] = entry.value
            origins[name] = entry.origin
            for part, origin in entry.parts.items():
                origins[f"{name}[{part}]" if isinstance(part, int) else f"{name}.{part}"] = origin
        elif s.required:
            return None
        else:
            kwargs[s.attr] = s.default
    return record(**kwargs)


def _resolve_host(host: HostConfig) -> HostConfig:
    changes: dict[str, Any] = {}
    if host.launcher_socket == DERIVED:
        changes["launcher_socket"] = host.runtime_dir / "wrsessd.sock"
    if not host.admin_socket:
        changes["admin_socket"] = f"{host.runtime_dir}/{{instance}}/admin.sock"
    return replace(host, **changes)


def _resolve_server(server: ServerConfig, host: HostConfig) -> ServerConfig:
    tls = server.tls
    if tls.cert != DERIVED and tls.key != DERIVED:
        return server
    instance_dir = host.state_dir / server.name / "tls"
    if tls.cert == DERIVED:
        tls = replace(tls, cert=instance_dir / "cert.pem")
    if tls.key == DERIVED:
        tls = replace(tls, key=instance_dir / "key.pem")
    return replace(server, tls=tls)


def _diag_order(d: Diagnostic) -> tuple[str, int, int]:
    o = d.origin
    return (o.path, o.line, o.col) if o else ("", 0, 0)
