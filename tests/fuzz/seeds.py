"""Valid messages of every protocol, made from the protocols' own tables: the fuzzers' seed corpus.

Nothing random here: the same checkout always gives the same seeds, so a CI run is reproducible.
Each seed is valid input for its target (the targets check that it round-trips).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
from collections.abc import Iterator
from typing import Any

from wayray.common import schema
from wayray.launcher import protocol as ipc
from wayray.link import protocol as link
from wayray.wire import Channel
from wayray.wire import layout as L
from wayray.wire.protocol import MESSAGES as WIRE_MESSAGES
from wayray.wire.protocol import MessageSpec, WireRole, encode_message

# --- the wire ------------------------------------------------------------------------------------


def wire_value(t: L.WireType, variant: int) -> Any:
    """A valid value of a wire type: variant 0 is the smallest, 1 the largest that stays small."""
    if isinstance(t, L.Int):
        lo = t.lo if t.minimum is None else max(t.lo, t.minimum)
        return lo if variant == 0 else min(t.hi, max(lo, 1920 if t.hi >= 1920 else t.hi))
    if isinstance(t, L.Bool):
        return variant == 1
    if isinstance(t, L.F64):
        return 0.0 if variant == 0 else -1.5
    if isinstance(t, L.Blob):
        return b"" if variant == 0 else bytes(range(16))
    if isinstance(t, L.Text):
        return "" if variant == 0 else "wayray-é"[: max(0, t.cap // 2)]
    if isinstance(t, L.EnumOf):
        members = list(t.cls)
        return members[0] if variant == 0 else members[-1]
    if isinstance(t, L.SetOf):
        return frozenset() if variant == 0 else frozenset({wire_value(t.item, 1)})
    if isinstance(t, L.ListOf):
        return () if variant == 0 else (wire_value(t.item, 1), wire_value(t.item, 0))
    if isinstance(t, L.StructOf):
        return t.cls(**{f.name: wire_value(f.type, variant) for f in t.fields})
    raise AssertionError(f"no sample value for {t!r}")


def wire_messages(spec: MessageSpec) -> list[Any]:
    """Valid instances of one wire message (those its class accepts)."""
    out = []
    for variant in (0, 1):
        try:
            msg = wire_value(spec.layout, variant)
            encode_message(msg)
        except (ValueError, TypeError):  # a class invariant the plain samples miss
            continue
        out.append(msg)
    return out


def wire_sent_by(role: WireRole) -> Iterator[tuple[MessageSpec, Any]]:
    for spec in WIRE_MESSAGES:
        if spec.direction.allows(role):
            for msg in wire_messages(spec):
                yield spec, msg


# --- the link ------------------------------------------------------------------------------------


def _link_value(f: dataclasses.Field[Any], variant: int) -> Any:
    kind = f.metadata["spec"].kind
    if isinstance(kind, link.Utf8):
        if f.name == "clipboard":
            return "both"
        return "" if variant == 0 else "s-0123456789"[: kind.max_bytes]
    if isinstance(kind, link.Int):
        return kind.low if variant == 0 else max(kind.low, min(kind.high, 120))
    if isinstance(kind, link.Bool):
        return variant == 1
    if isinstance(kind, link.Names):
        return [] if variant == 0 else ["display.h264", "clipboard"]
    if isinstance(kind, link.Code):
        return list(link.CloseCode)[variant]
    raise AssertionError(f"no sample value for {kind}")


def link_messages() -> list[tuple[link.LinkRole, link.LinkMessage]]:
    """(sender, message) for every link message, two variants each."""
    control = encode_message(wire_value(WIRE_MESSAGES[0].layout, 1))
    out: list[tuple[link.LinkRole, link.LinkMessage]] = []
    for spec in link.MESSAGES:
        for variant in (0, 1):
            channel = Channel.CONTROL if variant == 0 else Channel.DISPLAY
            msg: link.LinkMessage
            if spec.cls is link.ToViewer:
                msg = link.ToViewer(variant + 1, channel, control)
            elif spec.cls is link.ToSession:
                msg = link.ToSession(channel, control)
            elif spec.cls is link.ScreenshotResult:
                msg = link.ScreenshotResult(variant, b"\x89PNG\r\n\x1a\n" * variant)
            else:
                fields = dataclasses.fields(spec.cls)  # type: ignore[arg-type]
                msg = spec.cls(**{f.name: _link_value(f, variant) for f in fields})
            out.append((spec.sender, msg))
    return out


# --- wrsessd's IPC -------------------------------------------------------------------------------


def _ipc_value(kind: schema.Kind, variant: int) -> Any:
    if isinstance(kind, ipc.Text):
        samples = {
            ipc.USER_NAME: "alice",
            ipc.TOKEN_REF: "3f9a",
            ipc.TOKEN_KIND: "badge",
            ipc.TICKET: "T0k3n_-x",
            ipc.RHOST: "10.0.0.7",
            ipc.SESSION_ID: "abc123",
            ipc.ENV_ENTRY: "LANG=C.UTF-8",
        }
        if kind in samples:
            return samples[kind]
        return "x" if variant == 0 else "wayray é"
    if isinstance(kind, ipc.ListOf):
        return () if variant == 0 else (_ipc_value(kind.item, variant),)
    if isinstance(kind, ipc.Choice):
        members = list(kind.enum)
        return members[0] if variant == 0 else members[-1]
    if isinstance(kind, ipc.Integer):
        return kind.low if variant == 0 else kind.high
    if isinstance(kind, ipc.Number):
        return float(kind.low) if variant == 0 else 1700000000.5
    if isinstance(kind, ipc.Flag):
        return variant == 1
    if isinstance(kind, ipc.Nested):
        return _ipc_record(kind.cls, variant)
    if isinstance(kind, ipc.NestedList):
        return () if variant == 0 else (_ipc_record(kind.cls, variant),)
    raise AssertionError(f"no sample value for {kind!r}")


def _ipc_record(cls: type[schema.R], variant: int) -> schema.R:
    values = {}
    for name, spec in cls.specs():
        if spec.required or variant == 1:
            values[name] = _ipc_value(spec.kind, variant)
    return cls(**values)


def ipc_messages() -> list[ipc.Message]:
    """Every wrsessd request and response: only the required fields, and every field."""
    return [_ipc_record(cls, variant) for cls in ipc.MESSAGES.values() for variant in (0, 1)]


# --- wrsrvd's admin socket -----------------------------------------------------------------------

#: Requests as wradm sends them (wayray/server/admin.py lists them).
ADMIN_REQUESTS: list[dict[str, Any]] = [
    {"type": "status"},
    {"type": "sessions"},
    {"type": "kill", "session_id": "no-such-session"},
    {"type": "detach", "session_id": "no-such-session"},
    {"type": "screenshot", "session_id": "no-such-session", "include_cursor": True},
]


def admin_frame(obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack("=I", len(body)) + body


def enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value
