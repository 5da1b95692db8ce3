"""Validate the whole configuration and print every problem (not just the first), as
path:line:col: error: key: message. Exit status 1 when there are errors.

With --instance NAME (what wrsrvd@NAME.service runs before it starts), only problems that concern
that instance or every instance count, and NAME must be configured."""

from __future__ import annotations

import argparse
import sys

from wayray.admin.common import load, print_diagnostics
from wayray.common.errors import EXIT_FAILURE, EXIT_OK
from wayray.config.diagnostics import summary
from wayray.config.loader import UnknownInstance

NAME = "check"
HELP = "validate the configuration and print every problem"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", metavar="NAME", help="check what server instance NAME needs")


def run(args: argparse.Namespace) -> int:
    result = load(args)
    config = result.config
    instance = args.instance
    shown = [d for d in result.diagnostics if instance is None or d.concerns(instance)]
    print_diagnostics(shown)
    errors = result.errors_for(instance)
    missing = instance is not None and instance not in config.servers
    if missing:
        try:
            config.server(instance)
        except UnknownInstance as err:
            print(f"wradm: error: {err.message}", file=sys.stderr)
            print(f"wradm: hint: {err.hint}", file=sys.stderr)
    if errors or missing:
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
