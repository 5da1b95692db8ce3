"""Writing generated files: atomic, owned, stale files removed, others' files never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.config.helpers import snapshot
from wayray.common.errors import WayRayError
from wayray.supervisor.tree import OWNED_LIST, File, Symlink, TreeConflict, execute, plan, read_owned


def test_writes_records_and_removes_what_it_no_longer_produces(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = plan(out, {"a.conf": File(b"a\n"), "d/b.conf": File(b"b\n"), "w/x.service": Symlink("/t")})
    assert (p.create, p.change, p.remove) == (["a.conf", "d/b.conf", "w/x.service"], [], [])
    execute(p)
    assert (out / "d/b.conf").read_bytes() == b"b\n"
    assert os.readlink(out / "w/x.service") == "/t"
    assert read_owned(out) == ["a.conf", "d/b.conf", "w/x.service"]
    (out / "mine.txt").write_text("not written by wradm")

    p = plan(out, {"a.conf": File(b"A\n")})
    assert (p.create, p.change, p.remove) == ([], ["a.conf"], ["d/b.conf", "w/x.service"])
    assert "-a\n+A\n" in p.diff()
    execute(p)
    assert sorted(snapshot(out)) == [OWNED_LIST, "a.conf", "mine.txt"]  # emptied directories pruned
    assert not [n for n in os.listdir(out) if ".wradm" in n and n != OWNED_LIST]  # no temporary files left


def test_an_unchanged_tree_is_not_touched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    execute(plan(out, {"a.conf": File(b"a\n")}))
    before = os.stat(out / "a.conf").st_ino
    p = plan(out, {"a.conf": File(b"a\n")})
    assert not p.changed and p.unchanged == ["a.conf"]
    execute(p)
    assert os.stat(out / "a.conf").st_ino == before


def test_files_it_did_not_write_are_conflicts_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.conf").write_text("the admin's own\n")
    before = snapshot(out)
    p = plan(out, {"a.conf": File(b"generated\n"), "b.conf": File(b"b\n")})
    assert p.conflicts == ["a.conf"]
    with pytest.raises(TreeConflict, match="not overwriting files wradm did not write"):
        execute(p)
    assert snapshot(out) == before
    execute(plan(out, {"a.conf": File(b"generated\n")}, force=True))
    assert (out / "a.conf").read_text() == "generated\n"


def test_a_failure_while_staging_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    execute(plan(out, {"a.conf": File(b"a\n")}))
    (out / "blocked").write_text("a file where a directory is needed")
    before = snapshot(out)
    p = plan(out, {"a.conf": File(b"new a\n"), "blocked/b.conf": File(b"b\n")})
    with pytest.raises(WayRayError, match="nothing was changed"):
        execute(p)
    assert snapshot(out) == before
