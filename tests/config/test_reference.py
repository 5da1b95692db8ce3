"""The schema is the single source: the reference in docs/configuration.md is generated from it."""

from __future__ import annotations

from tests.conftest import REPO
from wayray.config.model import FILES
from wayray.config.reference import generate, splice
from wayray.config.schema import Kind, settings_of

DOC = REPO / "docs" / "configuration.md"


def test_the_committed_reference_is_what_the_schema_generates() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert splice(text, generate()) == text, (
        "docs/configuration.md is out of date: run `.venv/bin/python -m wayray.config.reference "
        "--write docs/configuration.md`"
    )


def _documented_keys(spec_table: str, record: type, prefix: str = "") -> list[str]:
    """Every setting as the reference shows it: `key`, `table.key`, or `[[file.key]]` for records."""
    out = []
    for s in settings_of(record):
        assert s.help.strip(), f"{prefix}{s.key} has no help text"
        if s.kind is Kind.VALUE:
            out.append(f"`{prefix}{s.key}`")
        elif s.kind is Kind.TABLE:
            assert s.record is not None
            out += _documented_keys(spec_table, s.record, f"{prefix}{s.key}.")
        else:
            assert s.record is not None
            out.append(f"`[[{spec_table}.{s.key}]]`")
            out += _documented_keys(spec_table, s.record)
    return out


def test_every_setting_is_documented_in_the_reference() -> None:
    generated = generate()
    for spec in FILES:
        for shown in _documented_keys(spec.table, spec.record):
            assert shown in generated, f"{spec.name}: {shown} missing from the reference"
