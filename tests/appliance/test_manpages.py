"""Manual pages for every command and every configuration file: generated from the argparse parsers
and the configuration schema (docs/man is exactly what packaging/manpages.py writes), rendered by
groff and man without a warning, and found by ``man`` where the package installs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO
from wayray.config.model import FILES

MAN = REPO / "docs" / "man"
GENERATOR = REPO / "packaging" / "manpages.py"
PAGES = sorted(MAN.glob("*.[158]"))


def test_the_committed_pages_are_what_the_code_generates() -> None:
    res = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", str(MAN)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr


def test_every_command_and_every_configuration_file_has_a_page() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    names = {p.name.rsplit(".", 1)[0] for p in PAGES}
    assert set(scripts) <= names
    assert {f"wayray-{spec.name}" for spec in FILES} <= names
    assert {p.suffix for p in PAGES} == {".1", ".5", ".8"}


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_groff_renders_the_page_without_a_warning(page: Path) -> None:
    res = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60
    )
    assert (res.returncode, res.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("man") is None, reason="needs man-db")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_man_shows_the_page_without_a_warning(page: Path) -> None:
    res = subprocess.run(
        ["man", "-l", "--warnings=w", str(page)],
        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (res.returncode, res.stderr) == (0, "")
    name = page.name.rsplit(".", 1)[0]
    assert "NAME" in res.stdout and name in res.stdout and "SEE ALSO" in res.stdout
