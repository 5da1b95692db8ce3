"""Helpers shared by the configuration, supervisor and wradm tests."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.conftest import REPO, script

EXAMPLES = REPO / "etc" / "wayray"


def wradm(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real wradm console script."""
    return subprocess.run(
        [script("wradm"), *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``{"etc/wayray/servers.toml": "...", ...}`` below ``root``; returns root."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def copy_examples(root: Path) -> Path:
    """A tree whose /etc/wayray holds the shipped examples."""
    shutil.copytree(EXAMPLES, root / "etc" / "wayray")
    return root


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Every file, symlink and directory below ``root`` with its content and mode."""
    out: dict[str, tuple[str, bytes | str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path), 0)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", b"", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
    return out
