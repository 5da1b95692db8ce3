"""docs/encoding.md is the spec the wire engineer and the protocol doc rely on: keep it true to the code."""

from __future__ import annotations

import dataclasses

from tests.conftest import REPO
from wayray.codec import EncoderSettings
from wayray.wire.display import RegionEncoding

DOC = (REPO / "docs" / "encoding.md").read_text(encoding="utf-8")


def _table_after(heading: str) -> list[list[str]]:
    section = DOC.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]  # without the header row


def test_region_kinds_table_matches_the_enum() -> None:
    rows = _table_after("## 3. Region kinds")
    documented = {r[0].strip("`"): int(r[1]) for r in rows}
    assert documented == {e.name: e.value for e in RegionEncoding}


def test_settings_table_lists_every_setting_with_its_default() -> None:
    rows = _table_after("## 8. Settings")
    documented = {r[0].strip("`"): r[1] for r in rows}
    defaults = {f.name: str(getattr(EncoderSettings(), f.name)) for f in dataclasses.fields(EncoderSettings)}
    assert documented == defaults
