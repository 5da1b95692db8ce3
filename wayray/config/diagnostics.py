"""Diagnostics: what is wrong, where (``path:line:col``), and the exception that carries them all.

The format is GNU-style so editors and CI annotate it::

    /etc/wayray/servers.toml:7:16: error: server.lab.max_sessions: expected integer, got string "forty"

A diagnostic without a position (a directory, a stray file) prints ``path: severity: ...``; one
without a file (a problem of the built-in defaults or of the command line) prints ``severity: ...``.

Everything a diagnostic prints comes out on one line: control characters in file names, keys and
values (a newline in a drop-in's name, in a quoted table name) are shown escaped (``\\u000a``), so no
configuration can forge lines of ``wradm check``'s output or of a journal.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wayray.common.errors import EXIT_FAILURE, WayRayError


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, order=True)
class Origin:
    """Where a value (or table) was written.

    ``path`` is the file as it is on disk (under ``--root`` when one is given) and is what messages
    show; ``logical`` is the same file as the running system sees it (``/etc/wayray/servers.toml``),
    which is what rendered units name in ``SourcePath=``. ``line``/``col`` are 1-based; 0 means the
    position is not known (the whole file).
    """

    path: str
    line: int = 0
    col: int = 0
    logical: str = ""
    #: Which configuration file (``servers.toml``) the path belongs to, "" when none: decides which
    #: programs a diagnostic concerns (see ``model.FileSpec.readers``).
    file: str = field(default="", compare=False)

    def __str__(self) -> str:
        path = printable(self.path)
        if self.line:
            return f"{path}:{self.line}:{self.col}"
        return path

    @property
    def system_path(self) -> str:
        return self.logical or self.path


#: Origin of values that come from the schema's built-in defaults.
BUILTIN = Origin("<built-in default>")


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    origin: Origin | None = None
    key: str = ""
    #: Server instances this diagnostic concerns; empty = it concerns everything (a shared file,
    #: a syntax error). ``wradm check --instance NAME`` only fails on diagnostics that concern NAME.
    scope: frozenset[str] = field(default_factory=frozenset)
    #: Follow-up lines pointing at related places ("the other server using port 7100 is here").
    notes: tuple[Diagnostic, ...] = ()

    def format(self) -> str:
        where = f"{self.origin}: " if self.origin is not None else ""
        key = f"{printable(self.key)}: " if self.key else ""
        lines = [f"{where}{self.severity.value}: {key}{printable(self.message)}"]
        lines.extend(note.format() for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    @property
    def file(self) -> str:
        """The configuration file (``servers.toml``) it is about; "" when it is about no one file."""
        return self.origin.file if self.origin is not None else ""

    def concerns(self, instance: str) -> bool:
        """Whether server instance ``instance`` cares: a file wrsrvd reads, and not only about
        another instance's table."""
        return self.concerns_servers() and (not self.scope or instance in self.scope)

    def concerns_servers(self) -> bool:
        """Whether it is about a file server instances read (or about no one file)."""
        return self.concerns_reader("wrsrvd")

    def concerns_reader(self, program: str) -> bool:
        """Whether ``program`` ("wrsrvd", "wrsessd", "wrclient") reads the file it is about."""
        from wayray.config.model import READS

        return not self.file or self.file in READS[program]


def printable(text: str) -> str:
    """``text`` with every character that is not printable (newlines, other control characters,
    line separators, bidirectional overrides) written as ``\\uXXXX``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def count(diags: Iterable[Diagnostic], severity: Severity) -> int:
    return sum(1 for d in diags if d.severity is severity)


def summary(diags: Sequence[Diagnostic]) -> str:
    """``2 errors, 1 warning`` (or ``no problems``)."""
    parts = []
    for sev in (Severity.ERROR, Severity.WARNING):
        n = count(diags, sev)
        if n:
            parts.append(f"{n} {sev.value}{'' if n == 1 else 's'}")
    return ", ".join(parts) or "no problems"


class ConfigError(WayRayError):
    """The configuration has errors. ``diagnostics`` holds every one of them (and the warnings)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity is Severity.ERROR]
        first = errors[0].format() if errors else "configuration is invalid"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"{first}{more}",
            hint="run `wradm check` to see every problem",
            exit_code=EXIT_FAILURE,
        )

    def format_all(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)
