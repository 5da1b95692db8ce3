"""units/ and smf/ in the repository are exactly what `wradm render` makes of etc/wayray."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, snapshot, wradm
from tests.conftest import REPO


def _comparable(tree: dict[str, tuple[str, bytes | str, int]]) -> dict[str, tuple[str, bytes | str, bool]]:
    # git records only the executable bit of a file, so compare that rather than the whole mode.
    return {
        rel: (kind, data, bool(mode & 0o100)) for rel, (kind, data, mode) in tree.items() if kind != "dir"
    }


@pytest.mark.parametrize(("target", "directory"), [("systemd", "units"), ("smf", "smf")])
def test_committed_rendering_matches_the_examples(target: str, directory: str, tmp_path: Path) -> None:
    out = tmp_path / directory
    res = wradm(
        "--root",
        copy_examples(tmp_path / "root", as_shipped=True),
        "render",
        "--target",
        target,
        "--out",
        out,
    )
    assert res.returncode == 0, res.stderr
    assert _comparable(snapshot(out)) == _comparable(snapshot(REPO / directory)), (
        f"{directory}/ is out of date: run "
        f"`.venv/bin/wradm --root . render --target {target} --out {directory}`"
    )
