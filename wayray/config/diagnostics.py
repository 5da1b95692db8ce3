"""Diagnostics: what is wrong, where (``path:line:col``), and the exception that carries them all.

The format is GNU-style so editors and CI annotate it::

    /etc/wayray/servers.toml:7:16: error: server.lab.max_sessions: expected integer, got string "forty"

A diagnostic without a position prints ``path: severity: ...``; one without a file (a problem of the
built-in defaults or of the command line) prints ``severity: ...``.
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

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.col}"
        return self.path

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
        key = f"{self.key}: " if self.key else ""
        lines = [f"{where}{self.severity.value}: {key}{self.message}"]
        lines.extend(note.format() for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def concerns(self, instance: str) -> bool:
        return not self.scope or instance in self.scope


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
