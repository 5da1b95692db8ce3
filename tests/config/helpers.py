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


def copy_examples(root: Path, *, as_shipped: bool = False) -> Path:
    """A tree whose /etc/wayray holds the shipped examples: with the one edit their comments ask
    for (``[server.main]`` enabled, as on a configured site), or ``as_shipped`` (nothing enabled)."""
    shutil.copytree(EXAMPLES, root / "etc" / "wayray")
    return root if as_shipped else enable_example(root)


def enable_example(root: Path) -> Path:
    """The operator's first edit of the shipped servers.toml: ``enabled = true`` for [server.main]."""
    path = root / "etc" / "wayray" / "servers.toml"
    head, sep, rest = path.read_text().partition("\n[server.main]\n")
    assert sep, f"{path} has no [server.main] table"
    table, nxt, tail = rest.partition("\n[")
    assert "\nenabled = false" in "\n" + table, f"{path}: [server.main] is not disabled"
    table = ("\n" + table).replace("\nenabled = false", "\nenabled = true", 1)[1:]
    path.write_text(head + sep + table + nxt + tail)
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
