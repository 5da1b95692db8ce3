"""Helpers the ``wradm`` subcommands share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from wayray.config.diagnostics import Diagnostic, Severity, count
from wayray.config.layers import resolve_root
from wayray.config.loader import LoadResult, load_report


def root(args: argparse.Namespace) -> Path:
    return resolve_root(args.root)


def load(args: argparse.Namespace) -> LoadResult:
    return load_report(root(args))


def print_diagnostics(diags: Iterable[Diagnostic]) -> None:
    for diag in diags:
        print(diag.format(), file=sys.stderr)


def print_errors_and_count_warnings(diags: Iterable[Diagnostic]) -> None:
    """For commands other than ``check``: errors in full, warnings only counted (``check`` lists them),
    so ``show`` and ``render`` output is not buried under the same warnings every time."""
    diags = list(diags)
    print_diagnostics(d for d in diags if d.severity is not Severity.WARNING)
    warnings = count(diags, Severity.WARNING)
    if warnings:
        print(
            f"wradm: {warnings} warning{'' if warnings == 1 else 's'} (`wradm check` lists them)",
            file=sys.stderr,
        )


def add_target_argument(parser: argparse.ArgumentParser, *, required: bool) -> None:
    from wayray.supervisor.apply import Target, default_target

    parser.add_argument(
        "--target",
        type=Target,
        choices=list(Target),
        required=required,
        default=None if required else default_target(),
        help="init system: systemd (Linux) or smf (illumos)"
        + ("" if required else f"; default here: {default_target().value}"),
    )
