"""What the Debian package holds besides the programs: the documentation an operator needs (with
working links between the pages), the manual pages where ``man`` finds them, a machine-readable
``copyright`` naming WayRay's licence and every bundled Python distribution's, and
``changelog.Debian.gz``."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.supervisor.nspawn import build_deb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb"),
]

DOC = "usr/share/doc/wayray"
NEEDED_DOCS = ("operating.md", "configuration.md", "kiosk.md", "running.md", "troubleshooting.md")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    deb = build_deb(out)
    root = out / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
    return root


def paragraphs(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs: field -> value (continuation lines joined with newlines)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")):
                assert key, f"continuation line without a field: {line!r}"
                fields[key] += "\n" + line.strip()
            else:
                key, _, value = line.partition(":")
                assert key and _ and key not in fields, f"bad field line {line!r}"
                fields[key] = value.strip()
        out.append(fields)
    return out


def test_the_operators_documentation_is_installed_and_its_links_resolve(tree: Path) -> None:
    installed = {p.name for p in (tree / DOC).glob("*.md")}
    assert set(NEEDED_DOCS) <= installed
    for name in installed:
        for target in re.findall(r"\]\(([a-z-]+\.md)(?:#[^)]*)?\)", (tree / DOC / name).read_text()):
            assert target in installed, f"{name} links to {target}, which is not installed"


def test_manual_pages_are_installed_where_man_finds_them(tree: Path) -> None:
    pages = sorted((REPO / "docs/man").glob("*.[158]"))
    assert pages
    for page in pages:
        installed = tree / f"usr/share/man/man{page.suffix[1:]}/{page.name}.gz"
        assert gzip.decompress(installed.read_bytes()) == page.read_bytes(), page.name
    if shutil.which("man"):
        for name in ("wradm", "wrsrvd", "wrclient", "wayray-servers.toml"):
            res = subprocess.run(
                ["man", "-M", str(tree / "usr/share/man"), "-w", name], capture_output=True, text=True
            )
            assert res.returncode == 0 and res.stdout.startswith(str(tree / "usr/share/man/man")), res


def test_the_changelog_is_installed_for_the_package_version(tree: Path) -> None:
    text = gzip.decompress((tree / DOC / "changelog.Debian.gz").read_bytes()).decode()
    assert text.splitlines()[0] == "wayray (0.1.0-1) unstable; urgency=medium"
    assert (REPO / "packaging/debian/changelog").read_text() == text
    if shutil.which("dpkg-parsechangelog"):
        res = subprocess.run(
            ["dpkg-parsechangelog", "-l", "-", "-S", "Version"], input=text, capture_output=True, text=True
        )
        assert (res.returncode, res.stdout, res.stderr) == (0, "0.1.0-1\n", "")


def check_copyright(text: str) -> list[dict[str, str]]:
    paras = paragraphs(text)
    assert paras[0]["Format"] == "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    files = [p for p in paras[1:] if "Files" in p]
    assert files[0] == {"Files": "*", "Copyright": "WayRay developers", "License": "MPL-2.0"}
    for p in files:
        assert p["Copyright"] and p["License"], p
    standalone = {p["License"].split("\n")[0] for p in paras[1:] if "Files" not in p}
    used = {i for p in files for i in re.split(r"\s+(?:or|and|with)\s+", p["License"])}
    assert used <= standalone, used - standalone
    for p in paras[1:]:
        if "Files" not in p:
            assert "\n" in p["License"] or "common-licenses" in p["License"], p  # a text, or Debian's
    return files


def test_copyright_of_the_package(tree: Path) -> None:
    check_copyright((tree / DOC / "copyright").read_text())


def test_copyright_names_every_bundled_distribution(full_tree: Path) -> None:
    files = check_copyright((full_tree / DOC / "copyright").read_text())
    site = next((full_tree / "opt/wayray/lib").glob("python3*/site-packages"))
    covered = "\n".join(p["Files"] for p in files)
    dists = [d for d in site.iterdir() if d.name.endswith((".dist-info", ".egg-info"))]
    # Every runtime dependency is bundled (and so needs its paragraph below).
    bundled = {re.sub(r"[-_.]+", "-", d.name.split("-")[0]).lower() for d in dists}
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[=<>;! ]", w)[0]).lower() for w in wanted}
    assert names <= bundled, f"runtime dependencies missing from the package: {sorted(names - bundled)}"
    for d in dists:
        if d.name.startswith("wayray-"):
            continue
        assert f"/{d.name}/*" in covered or f"/{d.name}\n" in covered + "\n", (
            f"{d.name} has no Files paragraph"
        )
    numpy = next(p for p in files if "numpy-" in p["Files"])
    assert "BSD-3-Clause" in numpy["License"]
