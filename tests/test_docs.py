"""The documentation names real files: every source, test or tool path a page quotes exists, so a
page that says which test guards a boundary (docs/threat-model.md) cannot point at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = sorted([*REPO.glob("docs/*.md"), REPO / "README.md", REPO / "packaging" / "README.md"])
QUOTED = re.compile(r"`((?:tests|wayray|bench|packaging|tools|etc|units|smf)/[A-Za-z0-9_./-]*[A-Za-z0-9_*])")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_quoted_path_exists(page: Path) -> None:
    quoted = set(QUOTED.findall(page.read_text(encoding="utf-8")))
    missing = sorted(p for p in quoted if "*" not in p and not (REPO / p).exists())
    assert not missing, f"{page.relative_to(REPO)} names paths that do not exist: {missing}"


def test_the_threat_model_is_listed() -> None:
    assert "threat-model.md" in (REPO / "docs" / "README.md").read_text(encoding="utf-8")
