"""Writing a set of generated files into a directory safely.

- Every file is written atomically: to a temporary name in the same directory, synced, then renamed.
- All new content is staged first; only when every file is staged are the renames done, so an I/O
  error while staging leaves the directory exactly as it was.
- The files written are recorded in an ownership list (``.wradm-owned``, one path per line) so a
  later run removes those it no longer produces, and never touches files it did not write: a
  file in the way that is not in the list is a conflict, reported before anything is written.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.common.files import fsync_dir, stage_file

OWNED_LIST = ".wradm-owned"


@dataclass(frozen=True)
class File:
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Symlink:
    target: str


Entry = File | Symlink
#: Relative path (with "/" separators) → what should be there.
Tree = Mapping[str, Entry]


class TreeConflict(WayRayError):
    pass


@dataclass
class Plan:
    dest: Path
    desired: dict[str, Entry]
    owned_list: str = OWNED_LIST
    create: list[str] = field(default_factory=list)
    change: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    old: dict[str, Entry | None] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.create or self.change or self.remove)

    def summary(self) -> str:
        parts = [f"{len(self.create)} new", f"{len(self.change)} changed", f"{len(self.remove)} removed"]
        return ", ".join(parts) + f", {len(self.unchanged)} unchanged"

    def diff(self, label: str = "") -> str:
        """A unified diff from what is in ``dest`` to what would be written."""
        base = label or str(self.dest)
        out: list[str] = []
        for rel in sorted(self.create + self.change + self.remove):
            old = self.old.get(rel)
            new = self.desired.get(rel)
            out.extend(_entry_diff(f"{base}/{rel}", old, new))
        return "".join(out)


def _lines(entry: Entry | None) -> list[str]:
    if entry is None:
        return []
    if isinstance(entry, Symlink):
        return [f"symlink to {entry.target}\n"]
    text = entry.content.decode("utf-8", "replace")
    return text.splitlines(keepends=True)


def _entry_diff(path: str, old: Entry | None, new: Entry | None) -> list[str]:
    a = _lines(old)
    b = _lines(new)
    out = list(
        difflib.unified_diff(
            a, b, "/dev/null" if old is None else path, "/dev/null" if new is None else path, lineterm="\n"
        )
    )
    return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out]


def read_entry(path: Path) -> Entry | None:
    try:
        if path.is_symlink():
            return Symlink(os.readlink(path))
        if path.is_file():
            return File(path.read_bytes(), path.stat().st_mode & 0o7777)
    except OSError:
        return None
    return None


def read_owned(dest: Path, owned_list: str = OWNED_LIST) -> list[str]:
    try:
        text = (dest / owned_list).read_text(encoding="utf-8")
    except OSError:
        return []
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def plan(
    dest: Path,
    desired: Tree,
    *,
    owned_list: str = OWNED_LIST,
    force: bool = False,
    owned: set[str] | None = None,
) -> Plan:
    """Compare ``desired`` with what ``dest`` holds. Reads only.

    ``owned`` overrides the ownership list (for directories another program fills, such as the
    generator's output directory).
    """
    p = Plan(dest, dict(desired), owned_list)
    if owned is None:
        owned = set(read_owned(dest, owned_list))
    for rel, entry in sorted(desired.items()):
        current = read_entry(dest / rel)
        p.old[rel] = current
        exists = current is not None or (dest / rel).exists() or (dest / rel).is_symlink()
        if not exists:
            p.create.append(rel)
        elif current == entry:
            p.unchanged.append(rel)
        elif rel in owned or force:
            p.change.append(rel)
        else:
            p.conflicts.append(rel)
    for rel in sorted(owned - set(desired)):
        current = read_entry(dest / rel)
        if current is not None:
            p.old[rel] = current
            p.remove.append(rel)
    return p


def owned_list_content(desired: Tree) -> bytes:
    lines = ["# Files written by wradm; it removes them when it no longer produces them."]
    lines += sorted(desired)
    return ("\n".join(lines) + "\n").encode()


def execute(p: Plan) -> None:
    """Carry out a plan: stage everything, then rename into place, then remove stale files."""
    if p.conflicts:
        listed = ", ".join(str(p.dest / c) for c in p.conflicts)
        raise TreeConflict(
            f"not overwriting files wradm did not write: {listed}",
            hint="move them away (or pass --force to take them over)",
        )
    writes = {rel: p.desired[rel] for rel in p.create + p.change}
    owned_path = p.dest / p.owned_list
    new_owned = owned_list_content(p.desired)
    current_owned = read_entry(owned_path)
    owned_changed = not (isinstance(current_owned, File) and current_owned.content == new_owned)
    if not writes and not p.remove and not owned_changed:
        return
    staged: list[tuple[Path, Path]] = []
    made_dirs: list[Path] = []
    try:
        for rel, entry in sorted(writes.items()):
            target = p.dest / rel
            made_dirs.extend(_makedirs(target.parent))
            staged.append((_stage(target, entry), target))
        made_dirs.extend(_makedirs(owned_path.parent))
        staged.append((_stage(owned_path, File(new_owned)), owned_path))
    except OSError as err:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for d in reversed(made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise WayRayError(f"cannot write into {p.dest}: {err}; nothing was changed") from err
    for tmp, target in staged:
        os.replace(tmp, target)
    for rel in p.remove:
        path = p.dest / rel
        path.unlink(missing_ok=True)
        _prune_empty_dirs(path.parent, p.dest)
    fsync_dir(p.dest)


def _makedirs(directory: Path) -> list[Path]:
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for m in reversed(missing):
        m.mkdir(mode=0o755)
    return list(reversed(missing))


def _stage(target: Path, entry: Entry) -> Path:
    if isinstance(entry, Symlink):
        tmp = target.parent / f".{target.name}.wradm-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(entry.target, tmp)
        return tmp
    return stage_file(target, entry.content, mode=entry.mode, suffix=".wradm")


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    d = directory
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent
