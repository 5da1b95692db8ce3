"""A corpus of broken configurations: each gives exactly the expected file:line:col messages and
exit status 1, and neither render nor apply changes anything on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, snapshot, wradm

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def test_corpus_covers_what_the_issue_names() -> None:
    wanted = {"syntax_error", "wrong_type", "unknown_key", "duplicate_port", "undefined_policy"}
    assert wanted | {"bad_usb_rule", "bad_dropin", "bad_user"} <= set(CASES)


def _broken_root(case: str, root: Path) -> Path:
    shutil.copytree(CORPUS / case / "etc", root / "etc")
    return root


@pytest.mark.parametrize("case", CASES)
def test_check_prints_every_error_with_its_position(case: str, tmp_path: Path) -> None:
    root = _broken_root(case, tmp_path / "root")
    res = wradm("--root", root, "check")
    expected = (CORPUS / case / "expected.txt").read_text().replace("{root}", str(root))
    assert res.stderr == expected
    assert res.returncode == 1
    assert res.stdout == ""


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", ["systemd", "smf"])
def test_render_leaves_the_output_untouched(case: str, target: str, tmp_path: Path) -> None:
    good = copy_examples(tmp_path / "good")
    out = tmp_path / "out"
    assert wradm("--root", good, "render", "--target", target, "--out", out).returncode == 0
    before = snapshot(out)
    assert before, "the valid render wrote nothing"
    res = wradm(
        "--root", _broken_root(case, tmp_path / "broken"), "render", "--target", target, "--out", out
    )
    assert res.returncode == 1, res.stderr
    assert ": error: " in res.stderr
    assert snapshot(out) == before


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", ["systemd", "smf"])
def test_apply_leaves_the_tree_untouched(case: str, target: str, tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "root")
    first = wradm("--root", root, "apply", "--target", target)
    assert first.returncode == 0, first.stderr
    shutil.rmtree(root / "etc" / "wayray")
    shutil.copytree(CORPUS / case / "etc" / "wayray", root / "etc" / "wayray")
    before = snapshot(root)
    res = wradm("--root", root, "apply", "--target", target)
    assert res.returncode == 1, res.stdout + res.stderr
    assert ": error: " in res.stderr
    assert snapshot(root) == before
