"""Validate the whole configuration and print every problem (not just the first), as
path:line:col: error: key: message. Exit status 1 when there are errors.

Without options every file counts (servers', the session launcher's and kiosks'). Each program
judges only what it reads, and so can this.

--instance NAME: what wrsrvd@NAME reads (servers.toml for its own table and what all share,
policies.toml, usb.toml, host.toml); NAME must be configured. This is the check wrsrvd makes
itself when it starts and when it reloads.

--launcher: what wrsessd reads (host.toml, session.toml).

--client: what wrclient reads on a kiosk (client.toml).

--quiet prints errors only (no warnings, no summary)."""

from __future__ import annotations

import argparse
import sys

from wayray.admin.common import load, print_diagnostics
from wayray.common.errors import EXIT_FAILURE, EXIT_OK
from wayray.config.diagnostics import Severity, summary
from wayray.config.loader import UnknownInstance

NAME = "check"
HELP = "validate the configuration and print every problem"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--instance", metavar="NAME", help="only what server instance NAME reads")
    who.add_argument("--launcher", action="store_true", help="only what the session launcher reads")
    who.add_argument("--client", action="store_true", help="only what wrclient reads (on a kiosk)")


def run(args: argparse.Namespace) -> int:
    result = load(args)
    config = result.config
    instance = args.instance
    if instance is not None:
        shown = [d for d in result.diagnostics if d.concerns(instance)]
    elif args.launcher or args.client:
        program = "wrsessd" if args.launcher else "wrclient"
        shown = [d for d in result.diagnostics if d.concerns_reader(program)]
    else:
        shown = list(result.diagnostics)
    print_diagnostics(d for d in shown if not args.quiet or d.severity is Severity.ERROR)
    errors = [d for d in shown if d.severity is Severity.ERROR]
    missing = instance is not None and instance not in config.servers
    if missing:
        try:
            config.server(instance)
        except UnknownInstance as err:
            print(f"wradm: error: {err.message}", file=sys.stderr)
            print(f"wradm: hint: {err.hint}", file=sys.stderr)
    if errors or missing:
        if not args.quiet or not errors:
            print(
                f"wradm: {summary(shown)}" if errors else "wradm: configuration has no such instance",
                file=sys.stderr,
            )
        return EXIT_FAILURE
    if not args.quiet:
        servers = (
            ", ".join(f"{s.name}{'' if s.enabled else ' (disabled)'}" for s in config.servers.values())
            or "none"
        )
        print(
            f"configuration OK ({summary(shown)}): servers: {servers}; "
            f"policies: {', '.join(config.policies)}; USB rules: {len(config.usb.rules)}; "
            f"files read: {len(config.sources)}"
        )
    return EXIT_OK
