"""docs/link.md's message reference is what the code has."""

from __future__ import annotations

from tests.conftest import REPO
from wayray.link.protocol import reference


def test_the_reference_in_docs_link_md_matches_the_code() -> None:
    text = (REPO / "docs" / "link.md").read_text()
    start = text.index("<!-- BEGIN GENERATED: python -m wayray.link -->\n") + len(
        "<!-- BEGIN GENERATED: python -m wayray.link -->\n"
    )
    end = text.index("<!-- END GENERATED -->")
    assert text[start:end] == reference(), "regenerate it: python -m wayray.link"
