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
from dataclasses import dataclass, field
from pathlib import Path

from wayray.config.diagnostics import Diagnostic, Origin, Severity
from wayray.config.files import MAX_DIR_ENTRIES, chase, list_dir
from wayray.config.model import FILES, FILES_BY_NAME
from wayray.config.types import did_you_mean

#: Layer directories, lowest first, as the running system names them.
LAYERS: tuple[str, ...] = ("/usr/lib/wayray", "/run/wayray", "/etc/wayray")
ADMIN_DIR = LAYERS[-1]


@dataclass(frozen=True)
class Source:
    """A file that takes part in the configuration."""

    path: Path  # on disk (below the root), as messages show it
    logical: str  # as the running system names it
    spec_name: str  # which configuration file it belongs to ("servers.toml")
    dropin: bool
    #: What ``path`` resolves to, inside the root (symlinks followed as ``systemctl --root`` does).
    real: Path | None = field(default=None, compare=False)

    def origin(self, line: int = 0, col: int = 0) -> Origin:
        return Origin(str(self.path), line, col, self.logical, self.spec_name)

    def at(self, pos: tuple[int, int] | None) -> Origin:
        """Where ``pos`` (line, column, as a PositionIndex gives it) is in this file; the file alone
        when the position is not known."""
        return self.origin(*pos) if pos else self.origin()

    @property
    def resolved(self) -> Path:
        return self.real if self.real is not None else self.path


def resolve_root(root: Path | str | None) -> Path:
    return Path("/") if root is None else Path(root)


def under(root: Path, logical: str) -> Path:
    return root / logical.lstrip("/")


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _masks(path: Path) -> bool:
    """An empty file or a symlink to /dev/null (not followed: below --root it would not resolve)."""
    st = _lstat(path)
    if st is None:
        return False
    if stat.S_ISLNK(st.st_mode):
        try:
            return os.readlink(path) == "/dev/null"
        except OSError:
            return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def is_masked(path: Path) -> bool:
    return _masks(path)


class _Finder:
    def __init__(self, root: Path, diags: list[Diagnostic]) -> None:
        self.root = root
        self.diags = diags

    def resolve(self, logical: str, spec: str = "") -> Path | None:
        """``logical`` below the root with symlinks followed inside it; None (and an error) on a loop."""
        try:
            return chase(self.root, logical)
        except OSError as err:
            self.diags.append(
                Diagnostic(
                    Severity.ERROR,
                    f"cannot read: {err.strerror or err} (a loop of symbolic links?)",
                    Origin(str(under(self.root, logical)), 1, 1, logical, spec),
                )
            )
            return None

    def entry(self, directory: Path, name: str, logical: str, spec: str) -> tuple[bool, Path | None]:
        """(masked?, resolved path) of a file named in a layer or drop-in directory; the path is
        None when it cannot be resolved (reported)."""
        here = directory / name
        if _masks(here):
            return True, None
        real = self.resolve(logical, spec)
        if real is not None and real != here and _masks(real):
            return True, None
        return False, real

    def listing(self, logical_dir: str, spec: str = "") -> tuple[Path, list[str]] | None:
        """(resolved directory, its names) or None when it is not there; problems are reported."""
        shown = under(self.root, logical_dir)
        real = self.resolve(logical_dir, spec)
        if real is None:
            return None
        try:
            st = os.stat(real)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        try:
            names, more = list_dir(real)
        except OSError as err:
            self.diags.append(
                Diagnostic(
                    Severity.ERROR,
                    f"cannot list the {'drop-in ' if spec else ''}directory: {err.strerror or err}; "
                    "the files in it were not read (make it readable, e.g. chmod 755)",
                    Origin(str(shown), logical=logical_dir, file=spec),
                )
            )
            return None
        if more:
            # In a drop-in directory files may have been left unread: an error. A layer directory
            # (/run/wayray also holds the daemons' sockets) only loses stray-file warnings.
            self.diags.append(
                Diagnostic(
                    Severity.ERROR if spec else Severity.WARNING,
                    f"more than {MAX_DIR_ENTRIES} entries; only the first {MAX_DIR_ENTRIES} were "
                    "looked at (a drop-in directory holds a few files: remove what does not belong)"
                    if spec
                    else f"more than {MAX_DIR_ENTRIES} entries; only the first {MAX_DIR_ENTRIES} were "
                    "looked at for misspelt file names",
                    Origin(str(shown), logical=logical_dir, file=spec),
                )
            )
        return real, names


def find_sources(root: Path, diags: list[Diagnostic]) -> list[Source]:
    """All files to read, in the order they apply: per configuration file, main file then drop-ins."""
    finder = _Finder(root, diags)
    out: list[Source] = []
    for spec in FILES:
        main: Source | None = None
        for layer in LAYERS:
            logical = f"{layer}/{spec.name}"
            path = under(root, logical)
            parent = finder.resolve(layer)
            if parent is None or _lstat(parent / spec.name) is None:
                continue
            masked, real = finder.entry(parent, spec.name, logical, spec.name)
            main = None if masked or real is None else Source(path, logical, spec.name, False, real)
            if main is not None and real is not None and real.is_dir():
                diags.append(_warn(path, logical, "is a directory, not a file; ignored", spec.name))
                main = None
        if main is not None:
            out.append(main)
        dropins: dict[str, Source | None] = {}
        for layer in LAYERS:
            logical_dir = f"{layer}/{spec.dropin_dir}"
            listed = finder.listing(logical_dir, spec.name)
            if listed is None:
                continue
            real_dir, names = listed
            shown_dir = under(root, logical_dir)
            for name in names:
                logical = f"{logical_dir}/{name}"
                if not name.endswith(".toml"):
                    if not name.startswith("."):
                        diags.append(
                            _warn(
                                shown_dir / name,
                                logical,
                                "ignored: drop-in file names must end in .toml",
                                spec.name,
                            )
                        )
                    continue
                masked, real = finder.entry(real_dir, name, logical, spec.name)
                dropins[name] = (
                    None
                    if masked or real is None
                    else Source(shown_dir / name, logical, spec.name, True, real)
                )
        out.extend(src for _, src in sorted(dropins.items()) if src is not None)
    diags.extend(_stray_files(finder))
    return out


def _warn(path: Path, logical: str, message: str, spec: str = "") -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, Origin(str(path), logical=logical, file=spec))


def _stray_files(finder: _Finder) -> list[Diagnostic]:
    """Warn about files WayRay would not read, which are nearly always misspelt names."""
    known = [spec.name for spec in FILES]
    known_dirs = [spec.dropin_dir for spec in FILES]
    out: list[Diagnostic] = []
    for layer in LAYERS:
        listed = finder.listing(layer)
        if listed is None:
            continue
        _, names = listed
        directory = under(finder.root, layer)
        for name in names:
            entry = directory / name
            logical = f"{layer}/{name}"
            if name.endswith(".toml") and name not in FILES_BY_NAME:
                guess = did_you_mean(name, known)
                out.append(
                    _warn(
                        entry,
                        logical,
                        f"ignored: not a WayRay configuration file{guess}",
                        _guessed(name, known),
                    )
                )
            elif name.endswith(".d") and name not in known_dirs:
                guess = did_you_mean(name, known_dirs)
                if not guess and f"{name[:-2]}.toml" in FILES_BY_NAME:
                    guess = f" (did you mean {name[:-2] + '.toml.d'!r}?)"
                out.append(
                    _warn(
                        entry,
                        logical,
                        f"ignored: not a WayRay drop-in directory{guess}",
                        _guessed(name.removesuffix(".d"), known),
                    )
                )
    return out


def _guessed(name: str, known: list[str]) -> str:
    """The configuration file a stray name most likely meant ("" when none is close)."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close and f"{name}.toml" in known:
        return f"{name}.toml"
    return close[0] if close else ""
