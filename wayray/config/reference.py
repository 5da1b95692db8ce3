"""The configuration reference in ``docs/configuration.md``, generated from the schema.

The generated part sits between two marker lines; everything else in the document is written by
hand. ``python -m wayray.config.reference --write docs/configuration.md`` refreshes it, and a test
fails when the committed document differs from what the schema says.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from wayray.config.model import DERIVED, FILES
from wayray.config.schema import Applies, FileSpec, Kind, Setting, Shape, settings_of
from wayray.config.show import toml_value

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m wayray.config.reference --write docs/configuration.md -->"
END = "<!-- END GENERATED REFERENCE -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def not_yet_note(missing: str) -> str:
    """How the reference marks a setting (or file) that is read and checked but not in effect yet."""
    return f"**Not in effect yet:** accepted and validated, but {missing}."


def _default(s: Setting) -> str:
    if s.required:
        return "*(required)*"
    if s.derived:
        return s.derived
    if s.default == DERIVED:
        return ""
    assert s.type is not None
    return f"`{toml_value(s.type.to_toml(s.default))}`"


def takes_effect(applies: frozenset[Applies]) -> str:
    """How the reference names what a change needs ("reload", "restart, daemon-reload", ...)."""
    return ", ".join(a.value for a in Applies if a in applies)


def _rows(record: type, prefix: str, applies: frozenset[Applies]) -> Iterator[str]:
    for s in settings_of(record):
        if s.kind is Kind.TABLE:
            assert s.record is not None
            yield from _rows(s.record, f"{prefix}{s.key}.", s.applies or applies)
        elif s.kind is Kind.RECORDS:
            continue
        else:
            assert s.type is not None
            help_text = s.help
            if s.not_yet:
                help_text += " " + not_yet_note(s.not_yet)
            if s.list_rule is not None:
                help_text += f" *Across files: {s.list_rule.value}.*"
            effect = takes_effect(s.applies or applies)
            yield (
                f"| `{prefix}{s.key}` | {_cell(s.type.name)} | {_cell(_default(s))} | {effect} "
                f"| {_cell(help_text)} |"
            )


def _table(record: type, applies: frozenset[Applies], prefix: str = "") -> list[str]:
    return [
        "| Key | Type | Default | A change takes effect on | Meaning |",
        "|---|---|---|---|---|",
        *_rows(record, prefix, applies),
    ]


def _file_section(spec: FileSpec) -> list[str]:
    header = f"[{spec.table}.<name>]" if spec.shape is Shape.NAMED else f"[{spec.table}]"
    out = [
        f"### `{spec.name}`",
        "",
        f"{spec.help} Read by: {spec.used_by}. Drop-ins: `{spec.dropin_dir}/*.toml`."
        + (f" {not_yet_note(spec.not_yet)}" if spec.not_yet else ""),
        "",
        f"Table `{header}`:",
        "",
        *_table(spec.record, frozenset({spec.applies})),
    ]
    for s in settings_of(spec.record):
        if s.kind is Kind.RECORDS:
            assert s.record is not None
            out += [
                "",
                f"Array of tables `[[{spec.table}.{s.key}]]`: {s.help}"
                + (f" *Across files: {s.list_rule.value}.*" if s.list_rule else ""),
                "",
                *_table(s.record, s.applies or frozenset({spec.applies})),
            ]
    return out


def generate() -> str:
    lines = [BEGIN, ""]
    for spec in FILES:
        lines += _file_section(spec) + [""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(document: str, generated: str) -> str:
    """Replace the generated part of ``document`` (between the markers) with ``generated``."""
    try:
        start = document.index(BEGIN)
        end = document.index(END, start) + len(END) + 1
    except ValueError:
        raise ValueError(
            f"the document has no generated-reference markers ({BEGIN!r} ... {END!r})"
        ) from None
    return document[:start] + generated + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, metavar="DOC", help="refresh the reference inside DOC")
    args = parser.parse_args(argv)
    generated = generate()
    if args.write is None:
        sys.stdout.write(generated)
        return 0
    doc = args.write.read_text(encoding="utf-8")
    args.write.write_text(splice(doc, generated), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
