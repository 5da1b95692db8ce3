"""Print the effective configuration (every file merged, defaults filled in) as TOML.

With --origin, each value is annotated with the file:line:col it came from, or "default".
KEY limits the output to one table or value, e.g. `wradm show server.lab` or `wradm show usb`."""

from __future__ import annotations

import argparse

from wayray.admin.common import load, print_errors_and_count_warnings
from wayray.common.errors import EXIT_FAILURE, EXIT_OK
from wayray.config import show

NAME = "show"
HELP = "print the effective configuration (with --origin: where each value comes from)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--origin", action="store_true", help="annotate each value with its file:line:col")
    parser.add_argument("key", nargs="?", default="", metavar="KEY", help="only this table or value")


def run(args: argparse.Namespace) -> int:
    result = load(args)
    print_errors_and_count_warnings(result.diagnostics)
    print(show.render(result.config, origins=args.origin, prefix=args.key), end="")
    return EXIT_FAILURE if result.errors else EXIT_OK
