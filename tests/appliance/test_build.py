"""Building the Debian package as packaging/README.md says: one command from a fresh checkout
(no virtualenv, no test tooling), every missing prerequisite named with the command that installs
it, and an uncompressed build for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb"),
]

BUILD = "packaging/debian/build-deb"


def fresh_checkout(dest: Path) -> Path:
    """The checkout's files (committed or not, as git would clone them) without .venv or builds."""
    names = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        src = REPO / os.fsdecode(name)
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYRAY_", "VIRTUAL_ENV"))}
    return {**env, **extra}


def test_a_fresh_checkout_builds_with_one_command(tmp_path: Path) -> None:
    src = fresh_checkout(tmp_path / "src")
    assert not (src / ".venv").exists()
    res = subprocess.run(
        [str(src / BUILD), "--without-dependencies", "--compression", "none", str(tmp_path / "out")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    deb = Path(res.stdout.strip())
    assert deb.parent == tmp_path / "out" and deb.name.startswith("wayray_0.1.0-1_")
    fields = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Version"], capture_output=True, text=True)
    assert fields.stdout.split() == ["Package:", "wayray", "Version:", "0.1.0-1"]
    # --compression none: the data member is a plain tar (what the tests use: much faster than xz).
    members = subprocess.run(["ar", "t", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "data.tar" in members.split(), members
    assert not (src / ".venv").exists() and not (src / "build").exists()


def test_missing_prerequisites_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    # A PATH with everything of the host's but the compiler and pkg-config.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for tool in Path(d).iterdir() if Path(d).is_dir() else ():
            name = tool.name
            if name.startswith(("gcc", "pkg-config", "pkgconf")) or (bin_dir / name).exists():
                continue
            if not name.startswith("x86_64-linux-gnu-gcc"):
                (bin_dir / name).symlink_to(tool)
    out = tmp_path / "out"
    res = subprocess.run(
        [str(REPO / BUILD), str(out)],
        env=clean_env(PATH=str(bin_dir)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == "build-deb: error: missing build prerequisites: gcc pkg-config", lines
    assert lines[1] == (
        "build-deb: hint: install them with: sudo apt-get install --no-install-recommends gcc pkg-config"
        " (see packaging/README.md)"
    )
    assert not out.exists()

    res = subprocess.run(
        [str(REPO / BUILD), "--without-dependencies", str(out)],
        env=clean_env(PATH=str(bin_dir), WAYRAY_DEB_PYTHON=str(tmp_path / "no-python3.11")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == (
        "build-deb: error: missing build prerequisites: python3.11 python3.11-venv"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compression", "lzma"], "build-deb: error: --compression lzma: use xz, gzip, zstd or none"),
        (["--bogus"], "build-deb: unknown option --bogus"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    res = subprocess.run([str(REPO / BUILD), *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == message
