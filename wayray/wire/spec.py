"""Print the tables docs/protocol.md must contain, straight from the code's one message table.

``python -m wayray.wire.spec`` prints them (with empty "meaning" columns to fill in by hand) for
whoever adds a message; tests/wire/test_spec.py checks the document against the code.
"""

from __future__ import annotations

import enum

from wayray.wire import messages as m
from wayray.wire.layout import StructOf, size_text
from wayray.wire.protocol import MAX_BODY, MESSAGES, WIRE_ENUMS, WIRE_STRUCTS, EnumOf, MessageSpec


def message_heading(spec: MessageSpec) -> str:
    return f"### {spec.channel.name.lower()} {spec.number}: {spec.name}"


def enum_heading(cls: type[enum.IntEnum], bits: int) -> str:
    return f"### enum {cls.__name__} (u{bits})"


def _enum_bits(cls: type[enum.IntEnum]) -> int:
    for spec in MESSAGES:
        for f in spec.layout.fields:
            if isinstance(f.type, EnumOf) and f.type.cls is cls:
                return int(f.type.name.split("(u")[1].rstrip(")"))
    for struct in WIRE_STRUCTS:
        for f in struct.fields:
            if isinstance(f.type, EnumOf) and f.type.cls is cls:
                return int(f.type.name.split("(u")[1].rstrip(")"))
    return 16 if cls.__name__ == "ErrorCode" else 8


def _fields_table(layout: StructOf) -> list[str]:
    lines = ["| field | type | meaning |", "|---|---|---|"]
    lines += [f"| `{f.name}` | `{f.type.name}` |  |" for f in layout.fields]
    return lines


def render() -> str:
    out: list[str] = []
    out += [
        "| channel | number | message | direction | capability | latest wins |",
        "|---|---|---|---|---|---|",
    ]
    for spec in MESSAGES:
        cap = f"`{spec.capability}`" if spec.capability else "—"
        out.append(
            f"| {spec.channel.name.lower()} | {spec.number} | {spec.name} | {spec.direction.value} | {cap} "
            f"| {'yes' if spec.coalesce else 'no'} |"
        )
    out += ["", "| channel | sender | max body |", "|---|---|---|"]
    for (ch, role), n in MAX_BODY.items():
        out.append(f"| {ch.name.lower()} | {role} | {size_text(n)} |")
    for spec in MESSAGES:
        out += ["", message_heading(spec), "", *_fields_table(spec.layout)]
    for struct in WIRE_STRUCTS:
        out += ["", f"### struct {struct.name}", "", *_fields_table(struct)]
    for cls in WIRE_ENUMS:
        out += ["", enum_heading(cls, _enum_bits(cls)), "", "| value | name | meaning |", "|---|---|---|"]
        out += [f"| {int(v)} | `{v.name}` |  |" for v in cls]
    out += ["", "| capability | meaning |", "|---|---|"]
    out += [f"| `{c.value}` |  |" for c in m.Capability]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
