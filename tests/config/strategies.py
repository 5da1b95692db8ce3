"""Hypothesis strategies for configuration documents and trees, driven by the schema itself.

``documents(spec, valid=True)`` makes a TOML document for one configuration file whose every value
is valid for its key (and whose values across keys agree: distinct ports, policies that exist,
certificates with their keys, ...); with ``valid=False`` it mixes in unknown keys, wrong types and
hostile values (huge numbers, NaN, control characters, Unicode digits, long strings, deep nesting).
``trees()`` makes whole file trees: several layers, drop-ins with odd names, masks, symlinks that
stay in or try to leave the root, directories and FIFOs where files belong, and text that is not
TOML or not UTF-8. A new setting in ``wayray/config/model/`` is covered without touching this file.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import strategies as st

from wayray.config import types as t
from wayray.config.model import FILES, PolicyConfig, ServerConfig, UsbRule
from wayray.config.pooltypes import PoolDirectory
from wayray.config.schema import FileSpec, Kind, Setting, Shape, settings_of

Draw = Callable[[st.SearchStrategy[Any]], Any]

_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,11}", fullmatch=True)
_SHORT_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
#: Characters TOML must escape or that break lines for some tools: they belong in every text value.
_AWKWARD = "\x7f\x1f\x01\t\n\r\\\"'\u0085\u2028\u2029\u202e\u00a0 #=[]{}.,"
_TEXT = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=12),
    st.text(alphabet=st.sampled_from(_AWKWARD + "ab"), max_size=12),
)
_PATH = st.from_regex(r"/[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,2}", fullmatch=True)


# --- hostile raw values ----------------------------------------------------------------------------

_WEIRD_TEXT = st.one_of(
    _SHORT_TEXT,
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], max_codepoint=0x9F), max_size=20),
    st.sampled_from(
        ["²", "٣", "1²%", "٣%", "0x", "-0", "+7", "1e400", "9" * 400, "1" * 40 + "s", "\u2028", "\x7f"]
    ),
    st.builds(lambda c, n: c * n, st.sampled_from("1 x\\\"'%\n."), st.integers(100, 3000)),
)
_HOSTILE_SCALAR = st.one_of(
    st.integers(-(2**80), 2**80),
    st.sampled_from([0, -1, 2**63, 2**70, 10**40]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    _WEIRD_TEXT,
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
HOSTILE = st.recursive(
    _HOSTILE_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_SHORT_TEXT, inner, max_size=3),
    max_leaves=8,
)


# --- valid raw values, per value type --------------------------------------------------------------


@functools.singledispatch
def valid_raw(vt: t.ValueType[Any]) -> st.SearchStrategy[Any]:
    """Raw TOML values ``vt.parse`` accepts (one function per value type, registered below)."""
    raise TypeError(f"no strategy for {type(vt).__name__}: add one to tests/config/strategies.py")


@valid_raw.register
def _(vt: t.Bool) -> st.SearchStrategy[Any]:
    return st.booleans()


@valid_raw.register
def _(vt: t.Integer) -> st.SearchStrategy[Any]:
    low = vt.minimum if vt.minimum is not None else -(2**31)
    return st.integers(low, vt.maximum if vt.maximum is not None else low + 10**6)


@valid_raw.register
def _(vt: t.Number) -> st.SearchStrategy[Any]:
    return st.floats(vt.minimum, vt.maximum, allow_nan=False)


@valid_raw.register
def _(vt: t.Choice) -> st.SearchStrategy[Any]:
    return st.sampled_from(vt.values)


def _seconds(text: str) -> float:
    span = t.Duration().parse(text)
    assert span is not None
    return span.total_seconds()


@valid_raw.register
def _(vt: t.Duration) -> st.SearchStrategy[Any]:
    units = st.sampled_from(["min", "h", "d", "w", "minutes", "hours"])
    spans = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 400), units)
    spans = spans | st.builds(lambda h, m: f"{h}h {m}min", st.integers(1, 48), st.integers(0, 59))
    if vt.minimum:  # e.g. `history`, at least an hour
        spans = spans.filter(lambda text: _seconds(text) >= vt.minimum)
    return spans | st.just("never") if vt.allow_never else spans


@valid_raw.register
def _(vt: t.Size) -> st.SearchStrategy[Any]:
    sized = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 4096), st.sampled_from(["K", "M", "G", "T"]))
    return sized | st.integers(1, 2**40) | st.just("infinity")


@valid_raw.register
def _(vt: t.Percent) -> st.SearchStrategy[Any]:
    return st.builds(lambda n: f"{n}%", st.integers(1, 6400)) | st.just("infinity")


@valid_raw.register
def _(vt: t.Bitrate) -> st.SearchStrategy[Any]:
    rates = st.builds(lambda n, u: f"{n}{u}", st.integers(10, 999), st.sampled_from(["k", "M", "G"]))
    return rates | st.integers(10_000, 10**9)


@valid_raw.register
def _(vt: t.IPAddress) -> st.SearchStrategy[Any]:
    return st.ip_addresses().map(str)


@valid_raw.register
def _(vt: t.ServerAddress) -> st.SearchStrategy[Any]:
    label = r"[a-z]([a-z0-9-]{0,9}[a-z0-9])?"
    host = st.from_regex(rf"{label}(\.{label}){{0,2}}", fullmatch=True)
    return st.one_of(
        host,
        st.builds(lambda h, p: f"{h}:{p}", host, st.integers(1, 65535)),
        st.builds(lambda a, p: f"[{a}]:{p}", st.ip_addresses(v=6).map(str), st.integers(1, 65535)),
    )


@valid_raw.register
def _(vt: t.AbsPath) -> st.SearchStrategy[Any]:
    return _PATH | st.just("") if vt.optional else _PATH


@valid_raw.register
def _(vt: t.Command) -> st.SearchStrategy[Any]:
    word = _TEXT.filter(lambda w: w != "")
    argv = st.lists(word, min_size=1, max_size=4)
    return argv | argv.map(lambda a: " ".join(map(_shell_quote, a))) | st.just("")


@valid_raw.register
def _(vt: t.UserName) -> st.SearchStrategy[Any]:
    return _USER


@valid_raw.register
def _(vt: t.Principal) -> st.SearchStrategy[Any]:
    return _USER | _USER.map(lambda u: "@" + u)


@valid_raw.register
def _(vt: t.UsbId) -> st.SearchStrategy[Any]:
    top = vt.maximum
    return st.one_of(st.integers(0, top), st.integers(0, top).map(lambda v: f"{v:04x}"), st.just("*"))


@valid_raw.register
def _(vt: t.Fingerprint) -> st.SearchStrategy[Any]:
    return st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@valid_raw.register
def _(vt: PoolDirectory) -> st.SearchStrategy[Any]:
    endpoint = r"([a-z][a-z0-9]{0,9}|\[2001:db8::[1-9]\]):[1-9][0-9]{0,3}"
    return st.from_regex(rf"lan|etcd://{endpoint}(,{endpoint}){{0,2}}", fullmatch=True)


@valid_raw.register
def _(vt: t.ListOf) -> st.SearchStrategy[Any]:
    return st.lists(valid_raw(vt.item), min_size=max(vt.min_items, 0), max_size=3)


@valid_raw.register
def _(vt: t.Environment) -> st.SearchStrategy[Any]:
    value = st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=12
    )
    return st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), value, max_size=3)


@valid_raw.register
def _(vt: t.String) -> st.SearchStrategy[Any]:
    if vt.pattern is not None:
        return st.from_regex(vt.pattern, fullmatch=True).filter(lambda s: len(s) <= 64)
    return _TEXT.filter(lambda s: vt.max_length is None or len(s) <= vt.max_length)


_USER = st.from_regex(r"[a-z_][a-z0-9_-]{0,15}", fullmatch=True)


def _shell_quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


# --- documents -------------------------------------------------------------------------------------


@dataclass
class Names:
    """Names a document refers to across files (so a valid configuration stays consistent)."""

    policies: list[str] = field(default_factory=lambda: ["default"])
    next_port: int = 7100


def _record(
    draw: Draw, record: type, valid: bool, names: Names, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in settings_of(record):
        if s.key in skip or not draw(st.booleans()):
            continue
        out[s.key] = _value(draw, s, valid, names)
    if not valid and draw(st.integers(0, 4)) == 0:
        out[draw(_SHORT_TEXT)] = draw(HOSTILE)
    return out


def _value(draw: Draw, s: Setting, valid: bool, names: Names) -> Any:
    if not valid and draw(st.integers(0, 5)) == 0:
        return draw(HOSTILE)
    if s.kind is Kind.TABLE:
        assert s.record is not None
        return _record(draw, s.record, valid, names, _skip(s.record, valid))
    if s.kind is Kind.RECORDS:
        assert s.record is not None
        return [_usb_rule(draw, valid, names) for _ in range(draw(st.integers(0, 3)))]
    assert s.type is not None
    return draw(valid_raw(s.type))


def _skip(record: type, valid: bool) -> frozenset[str]:
    """Keys a valid document sets with care (cross-checks) rather than at random."""
    if not valid:
        return frozenset()
    from wayray.config.model import (
        BadgeReaderSettings,
        ClientTLSSettings,
        HostConfig,
        OutputSettings,
        PeerSettings,
        TLSSettings,
        WebSettings,
    )

    return {
        ServerConfig: frozenset({"port", "policy", "enabled", "listen"}),
        TLSSettings: frozenset({"cert", "key"}),
        # Members that share a directory need the pool and its token key (set together below).
        PeerSettings: frozenset(
            {"fingerprints", "ca", "token_key_file", "directory", "etcd_ca", "etcd_cert", "etcd_key"}
        ),
        WebSettings: frozenset({"port", "cert", "key"}),
        OutputSettings: frozenset({"idle_fps"}),
        HostConfig: frozenset({"runtime_dir", "state_dir", "admin_socket", "launcher_socket"}),
        ClientTLSSettings: frozenset({"cert", "key"}),
        BadgeReaderSettings: frozenset({"product", "socket", "removal_sequence"}),
        UsbRule: frozenset({"product", "serial", "subclass", "protocol"}),
    }.get(record, frozenset())


def _usb_rule(draw: Draw, valid: bool, names: Names) -> dict[str, Any]:
    rule = _record(draw, UsbRule, valid, names, _skip(UsbRule, valid))
    if valid:
        rule["action"] = draw(st.sampled_from(["allow", "deny"]))
        if "vendor" in rule and rule["vendor"] != "*" and draw(st.booleans()):
            rule["product"] = draw(valid_raw(t.UsbId(16)))
        if "class" in rule and rule["class"] != "*" and draw(st.booleans()):
            rule["subclass"] = draw(valid_raw(t.UsbId(8)))
    return rule


def _sharing_peers(draw: Draw, peers: dict[str, Any]) -> dict[str, Any]:
    """A pool member's peers that share the directory: trust and the token key, and sometimes the
    directory in etcd with its mutual TLS."""
    peers = {**peers, "fingerprints": [draw(valid_raw(t.Fingerprint()))], "token_key_file": draw(_PATH)}
    if draw(st.booleans()):
        peers |= {"directory": draw(valid_raw(PoolDirectory())), "etcd_ca": draw(_PATH),
                  "etcd_cert": draw(_PATH), "etcd_key": draw(_PATH)}  # fmt: skip
    return peers


@st.composite
def documents(draw: Draw, spec: FileSpec, valid: bool = True, names: Names | None = None) -> dict[str, Any]:
    """One document for ``spec`` (a dict tomli_w can write)."""
    names = names or Names()
    if spec.shape is Shape.SINGLE:
        body = _record(draw, spec.record, valid, names, _skip(spec.record, valid))
        if valid:
            _consistent_single(draw, spec, body)
        return {spec.table: body}
    tables: dict[str, Any] = {}
    for name in draw(st.lists(_NAME, max_size=3, unique_by=str.lower)):
        body = _record(draw, spec.record, valid, names, _skip(spec.record, valid))
        if valid and spec.record is ServerConfig:
            body["port"] = names.next_port
            names.next_port += 1
            body["policy"] = draw(st.sampled_from(names.policies))
            if draw(st.booleans()):
                body["tls"] = {"cert": draw(_PATH), "key": draw(_PATH)}
            if body.get("pool") and draw(st.booleans()):
                body["peers"] = _sharing_peers(draw, body.get("peers", {}))
            tls, admission = body.get("tls", {}), body.get("admission", {})
            if (
                body.get("sessions") == "command"
                and not admission.get("access_key_file")
                and not tls.get("client_ca")
            ):
                # No login: viewers must present a key or a certificate, on loopback too (a
                # cross-check: every local user reaches loopback).
                if draw(st.booleans()):
                    body["admission"] = {**admission, "access_key_file": draw(_PATH)}
                else:
                    body["tls"] = {**tls, "client_ca": draw(_PATH)}
            web = body.get("web")
            if isinstance(web, dict):  # a port of its own (a cross-check), a site certificate with its key
                web["port"] = 20000 + names.next_port
                if draw(st.booleans()):
                    web.update(cert=draw(_PATH), key=draw(_PATH))
                admission = body.get("admission", {})
                if body.get("sessions") == "command" and not admission.get("access_key_file"):
                    # browsers present no client certificate: an access key it is (a cross-check)
                    body["admission"] = {**admission, "access_key_file": draw(_PATH)}
            out = body.setdefault("output", {})
            if isinstance(out, dict) and draw(st.booleans()):
                out["idle_fps"] = draw(st.integers(0, int(out.get("fps", 60))))
        if valid and spec.record is PolicyConfig:
            names.policies.append(name)
        tables[name] = body
    return {spec.table: tables}


def _consistent_single(draw: Draw, spec: FileSpec, body: dict[str, Any]) -> None:
    if spec.table == "client":
        if draw(st.booleans()):
            body["tls"] = {**body.get("tls", {}), "cert": draw(_PATH), "key": draw(_PATH)}
        badge = body.setdefault("badge", {})
        if "vendor" in badge and badge["vendor"] != "*" and draw(st.booleans()):
            badge["product"] = draw(valid_raw(t.UsbId(16)))
        if "file" not in badge and draw(st.booleans()):
            badge["socket"] = draw(_PATH)
        if draw(st.booleans()):
            badge["removal_sequence"] = draw(st.from_regex(r"[A-Z0-9-]{1,12}", fullmatch=True))
    if spec.table == "host" and draw(st.booleans()):
        body["runtime_dir"] = "/run/" + draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
        body["state_dir"] = "/var/lib/" + draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))


@st.composite
def valid_configuration(draw: Draw) -> dict[str, str]:
    """``{file name: TOML text}`` for every file, together a valid configuration."""
    names = Names()
    order = sorted(FILES, key=lambda f: f.name != "policies.toml")  # policies first: servers use them
    out = {}
    for spec in order:
        if draw(st.booleans()) or spec.name == "servers.toml":
            out[spec.name] = tomli_w.dumps(draw(documents(spec, True, names)))
    return out


# --- hostile text and trees ------------------------------------------------------------------------

_TOML_BITS = st.sampled_from(
    ["[", "]", "[[", "]]", "{", "}", "=", ".", ",", '"', "'", '"""', "'''", "#", "\n", " ", "\\", "\\u",
     "\r", "\t", "\x00", "\x7f", "0x", "1979-05-27T07:32:00Z", "inf", "nan", "true", "server", "main",
     "port", "7100", "a.b.c", "[server.main]", "[[usb.rule]]"]
)  # fmt: skip


@st.composite
def mutated(draw: Draw, text: str) -> str:
    """``text`` with a few random edits: inserted TOML punctuation, deletions, duplicated lines."""
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text)))
        edit = draw(st.integers(0, 3))
        if edit == 0:
            text = text[:pos] + draw(_TOML_BITS) + text[pos:]
        elif edit == 1:
            text = text[:pos] + text[pos + draw(st.integers(1, 8)) :]
        elif edit == 2:
            text = text[:pos] + draw(_WEIRD_TEXT) + text[pos:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[: i + 1] + lines[i:])
    return text


@st.composite
def file_content(draw: Draw, spec: FileSpec) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return b""  # masks
    if kind == 1:
        return draw(st.binary(max_size=64))
    if kind == 2:
        return "".join(draw(st.lists(_TOML_BITS, max_size=40))).encode()
    doc = tomli_w.dumps(draw(documents(spec, valid=kind > 6)))
    if kind in (3, 4, 5):
        doc = draw(mutated(doc))
    data = doc.encode("utf-8", "surrogatepass")
    if kind == 4:
        data += draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xef\xbb\xbf"]))
    return data


_LAYERS = ("usr/lib/wayray", "run/wayray", "etc/wayray")
_ODD_NAME = st.one_of(
    st.from_regex(r"[0-9]{2}-[a-z]{1,6}\.toml", fullmatch=True),
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"),
        min_size=1,
        max_size=10,
    ).map(lambda s: s + ".toml"),
    st.sampled_from(["README", ".hidden.toml", "x.conf", "a\nb.toml", "\u202e.toml"]),
)


@dataclass(frozen=True)
class Entry:
    """One thing to put in a tree: a file, a symlink, a directory or a FIFO."""

    path: str
    kind: str  # "file", "link", "dir", "fifo"
    data: bytes = b""
    target: str = ""


@st.composite
def trees(draw: Draw) -> list[Entry]:
    entries: list[Entry] = []
    for _ in range(draw(st.integers(1, 6))):
        spec = draw(st.sampled_from(FILES))
        layer = draw(st.sampled_from(_LAYERS))
        where = draw(st.integers(0, 2))
        if where == 0:
            path = f"{layer}/{spec.name}"
        elif where == 1:
            path = f"{layer}/{spec.dropin_dir}/{draw(_ODD_NAME)}"
        else:
            path = f"{layer}/{draw(_ODD_NAME)}"
        kind = draw(st.sampled_from(["file"] * 6 + ["link", "dir", "fifo"]))
        if kind == "file":
            entries.append(Entry(path, "file", draw(file_content(spec))))
        elif kind == "link":
            target = draw(
                st.sampled_from(
                    [
                        "/dev/null",
                        "/etc/shadow",
                        "/etc/wayray/servers.toml",
                        "../../../../../etc/passwd",
                        "loop",
                        "/",
                        "/etc",
                        "servers.toml",
                        "/proc/self/mem",
                    ]
                )  # fmt: skip
            )
            entries.append(
                Entry(path, "link", target="./" + path.rsplit("/", 1)[-1] if target == "loop" else target)
            )
        else:
            entries.append(Entry(path, kind))
    return entries


def build(root: Path, entries: list[Entry]) -> None:
    for e in entries:
        path = root / e.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                continue
            if e.kind == "file":
                path.write_bytes(e.data)
            elif e.kind == "link":
                os.symlink(e.target, path)
            elif e.kind == "dir":
                path.mkdir()
            else:
                os.mkfifo(path)
        except (FileExistsError, NotADirectoryError):
            continue  # an earlier entry put a file where this one needs a directory
