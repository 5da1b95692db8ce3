"""docs/protocol.md is the spec: its tables must say exactly what wayray/wire/protocol.py does."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from wayray.transport.connection import ALPN
from wayray.wire import PROTOCOL_MAJOR, PROTOCOL_MINOR, Capability
from wayray.wire.layout import size_text
from wayray.wire.protocol import MAX_BODY, MESSAGES, WIRE_ENUMS, WIRE_STRUCTS, StructOf
from wayray.wire.spec import enum_heading, message_heading, render

DOC = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
LINES = DOC.splitlines()


def cells(line: str) -> list[str]:
    return [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]


def table_after(index: int) -> list[list[str]]:
    """The rows of the first table starting after line ``index`` (header and separator dropped)."""
    i = index + 1
    while i < len(LINES) and not LINES[i].startswith("|"):
        assert not LINES[i].startswith("#"), f"no table under {LINES[index]!r}"
        i += 1
    rows = []
    while i < len(LINES) and LINES[i].startswith("|"):
        rows.append(cells(LINES[i]))
        i += 1
    return rows[2:]


def table_with_header(*header: str) -> list[list[str]]:
    for i, line in enumerate(LINES):
        if line.startswith("|") and cells(line) == list(header):
            return table_after(i - 1)
    raise AssertionError(f"docs/protocol.md has no table with the header {header}")


def section(heading: str) -> list[list[str]]:
    matches = [i for i, line in enumerate(LINES) if line.strip() == heading]
    assert len(matches) == 1, f"docs/protocol.md must have exactly one {heading!r}, has {len(matches)}"
    return table_after(matches[0])


def test_message_index_matches_the_code() -> None:
    documented = table_with_header("channel", "number", "message", "direction", "capability", "latest wins")
    expected = [
        [
            s.channel.name.lower(),
            str(s.number),
            s.name,
            s.direction.value,
            str(s.capability) if s.capability else "—",
            "yes" if s.coalesce else "no",
        ]
        for s in MESSAGES
    ]
    assert documented == expected


def test_frame_limits_match_the_code() -> None:
    documented = table_with_header("channel", "sender", "max body")
    assert documented == [[ch.name.lower(), str(role), size_text(n)] for (ch, role), n in MAX_BODY.items()]


def _fields(layout: StructOf) -> list[list[str]]:
    return [[f.name, f.type.name] for f in layout.fields]


@pytest.mark.parametrize("spec", MESSAGES, ids=lambda s: s.name)
def test_every_message_documents_its_fields_and_types(spec) -> None:  # type: ignore[no-untyped-def]
    rows = section(message_heading(spec))
    assert [r[:2] for r in rows] == _fields(spec.layout)


@pytest.mark.parametrize("struct", WIRE_STRUCTS, ids=lambda s: s.name)
def test_structs_are_documented(struct: StructOf) -> None:
    assert [r[:2] for r in section(f"### struct {struct.name}")] == _fields(struct)


@pytest.mark.parametrize("cls", WIRE_ENUMS, ids=lambda c: c.__name__)
def test_enums_are_documented_value_by_value(cls) -> None:  # type: ignore[no-untyped-def]
    headings = [line for line in LINES if line.startswith(f"### enum {cls.__name__} (")]
    assert len(headings) == 1, f"no single heading for enum {cls.__name__}"
    expected_heading = [h for h in render().splitlines() if h.startswith(f"### enum {cls.__name__} (")]
    assert headings == expected_heading
    rows = section(headings[0])
    assert [r[:2] for r in rows] == [[str(int(v)), v.name] for v in cls]
    assert enum_heading  # (render uses it to print the same headings)


def test_capabilities_are_documented() -> None:
    rows = table_with_header("capability", "meaning")
    assert [r[0] for r in rows] == [c.value for c in Capability]
    assert all(r[1] for r in rows), "every capability needs a meaning"


def test_every_documented_message_field_has_a_meaning_or_continues_the_previous() -> None:
    for spec in MESSAGES:
        rows = section(message_heading(spec))
        assert rows[0][2], f"{spec.name}.{rows[0][0]} has no meaning in docs/protocol.md"


def test_version_and_alpn_are_stated() -> None:
    assert f"Protocol version: **{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}**" in DOC
    assert f"**ALPN `{ALPN}`.**" in DOC


def test_no_stray_message_headings() -> None:
    documented = {line for line in LINES if re.match(r"### (control|display|input|audio|usb) \d+: ", line)}
    assert documented == {message_heading(s) for s in MESSAGES}


def test_fields_a_later_version_added_say_since_when() -> None:
    for spec in MESSAGES:
        rows = {r[0]: r[2] for r in section(message_heading(spec))}
        for f in spec.layout.fields:
            if f.since is not None:
                since = f"since {f.since[0]}.{f.since[1]}"
                assert rows[f.name].startswith(since), (
                    f"{spec.name}.{f.name}: the meaning must start {since!r}"
                )
