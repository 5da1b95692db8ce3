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


def _rows_by_key(generated: str) -> dict[str, str]:
    return {line.split("|")[1].strip(): line for line in generated.splitlines() if line.startswith("| `")}


def _marked_rows(record: type, rows: dict[str, str], prefix: str = "") -> list[str]:
    """Keys of ``record`` whose reference row says "Not in effect yet" (checked against the schema)."""
    out = []
    for s in settings_of(record):
        if s.kind is Kind.TABLE:
            assert s.record is not None
            out += _marked_rows(s.record, rows, f"{prefix}{s.key}.")
        elif s.kind is Kind.VALUE:
            row = rows[f"`{prefix}{s.key}`"]
            shown = "**Not in effect yet:** accepted and validated, but" in row
            assert shown == bool(s.not_yet), row
            if shown:
                out.append(f"{prefix}{s.key}")
    return out


def test_settings_of_features_that_do_not_exist_yet_say_so_in_the_reference() -> None:
    sections = generate().split("\n### ")
    marked: list[str] = []
    for spec in FILES:
        (section,) = [s for s in sections if s.startswith(f"`{spec.name}`")]
        intro = section.split("\n\n")[1]
        assert ("**Not in effect yet:**" in intro) == bool(spec.not_yet), spec.name
        if spec.not_yet:
            marked.append(spec.name)
        marked += [f"{spec.table}.{key}" for key in _marked_rows(spec.record, _rows_by_key(section))]
    # What an operator must not expect to work yet: a key leaves this list when its feature lands.
    assert sorted(marked) == []
