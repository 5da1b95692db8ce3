"""Which files make up the configuration, in which order (UAPI.6, the scheme systemd follows).

Layers, lowest first: the built-in defaults (the schema), ``/usr/lib/wayray`` (vendor),
``/run/wayray`` (runtime), ``/etc/wayray`` (administrator). For each file name:

- the main file is taken from the highest layer that has it; it replaces lower ones entirely;
- drop-ins ``<file>.d/*.toml`` are collected from all layers; a drop-in in a higher layer replaces a
  same-named one below; they apply after the main file, sorted by file name;
- an empty file or a symlink to ``/dev/null`` masks: it hides the same-named file of lower layers
  (a masked main file still gets its drop-ins, as in systemd).

With ``root``, every path is looked up below it (``wradm --root DIR``, like ``systemctl --root``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from wayray.config.diagnostics import Diagnostic, Origin, Severity
from wayray.config.model import FILES, FILES_BY_NAME
from wayray.config.types import did_you_mean

#: Layer directories, lowest first, as the running system names them.
LAYERS: tuple[str, ...] = ("/usr/lib/wayray", "/run/wayray", "/etc/wayray")
ADMIN_DIR = LAYERS[-1]


@dataclass(frozen=True)
class Source:
    """A file that takes part in the configuration."""

    path: Path  # on disk (below the root)
    logical: str  # as the running system names it
    spec_name: str  # which configuration file it belongs to ("servers.toml")
    dropin: bool

    def origin(self, line: int = 0, col: int = 0) -> Origin:
        return Origin(str(self.path), line, col, self.logical)


def resolve_root(root: Path | str | None) -> Path:
    return Path("/") if root is None else Path(root)


def under(root: Path, logical: str) -> Path:
    return root / logical.lstrip("/")


def is_masked(path: Path) -> bool:
    """An empty file or a symlink to /dev/null (not followed: below --root it would not resolve)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path) == "/dev/null"
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def find_sources(root: Path, diags: list[Diagnostic]) -> list[Source]:
    """All files to read, in the order they apply: per configuration file, main file then drop-ins."""
    out: list[Source] = []
    for spec in FILES:
        main: Source | None = None
        for layer in LAYERS:
            logical = f"{layer}/{spec.name}"
            path = under(root, logical)
            if _exists(path):
                main = None if is_masked(path) else Source(path, logical, spec.name, False)
                if main is not None and path.is_dir():
                    diags.append(_warn(path, logical, "is a directory, not a file; ignored"))
                    main = None
        if main is not None:
            out.append(main)
        dropins: dict[str, Source | None] = {}
        for layer in LAYERS:
            logical_dir = f"{layer}/{spec.dropin_dir}"
            directory = under(root, logical_dir)
            if not directory.is_dir():
                continue
            for entry in sorted(directory.iterdir()):
                logical = f"{logical_dir}/{entry.name}"
                if not entry.name.endswith(".toml"):
                    if not entry.name.startswith("."):
                        diags.append(_warn(entry, logical, "ignored: drop-in file names must end in .toml"))
                    continue
                dropins[entry.name] = None if is_masked(entry) else Source(entry, logical, spec.name, True)
        out.extend(src for _, src in sorted(dropins.items()) if src is not None)
    diags.extend(_stray_files(root))
    return out


def _warn(path: Path, logical: str, message: str) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, Origin(str(path), logical=logical))


def _stray_files(root: Path) -> list[Diagnostic]:
    """Warn about files WayRay would not read, which are nearly always misspelt names."""
    known = [spec.name for spec in FILES]
    known_dirs = [spec.dropin_dir for spec in FILES]
    out: list[Diagnostic] = []
    for layer in LAYERS:
        directory = under(root, layer)
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            name = entry.name
            logical = f"{layer}/{name}"
            if name.endswith(".toml") and name not in FILES_BY_NAME:
                out.append(
                    _warn(
                        entry,
                        logical,
                        f"ignored: not a WayRay configuration file{did_you_mean(name, known)}",
                    )
                )
            elif name.endswith(".d") and name not in known_dirs:
                guess = did_you_mean(name, known_dirs)
                if not guess and f"{name[:-2]}.toml" in FILES_BY_NAME:
                    guess = f" (did you mean {name[:-2] + '.toml.d'!r}?)"
                out.append(_warn(entry, logical, f"ignored: not a WayRay drop-in directory{guess}"))
    return out
