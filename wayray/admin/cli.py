"""Command line of ``wradm``, the operator's tool.

Each subcommand lives in its own module (``wayray/admin/<name>.py``) exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; adding one is adding it to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

from wayray.admin import apply, check, pool, reload, render, server, session, sessions, show, status, usb
from wayray.common import log
from wayray.common.errors import cli_entry
from wayray.common.version import add_version_option
from wayray.config.diagnostics import ConfigError, summary

COMMANDS: tuple[ModuleType, ...] = (
    check,
    show,
    render,
    apply,
    reload,
    status,
    sessions,
    session,
    server,
    pool,
    usb,
)

EPILOG = """\
exit status: 0 success, 1 configuration errors or a failed action, 2 usage errors.
Configuration: /usr/lib/wayray < /run/wayray < /etc/wayray, each FILE.toml with FILE.toml.d/*.toml
drop-ins; see wayray-servers.toml(5) and the other wayray-*.toml(5) manual pages, and
/usr/share/doc/wayray/configuration.md. Manual: wradm(8)."""


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted both before and after the subcommand (``wradm --root D check`` or
    ``wradm check --root D``); after the subcommand they must not reset what came before."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        default=default,
        help="operate on the tree below DIR (DIR/etc/wayray, DIR/usr/lib/wayray, ...) instead of /",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0, help="say more"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print only errors",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wradm",
        description="WayRay administration: check, show, render and apply the configuration; reload a "
        "running server; look at running servers and their sessions (status, sessions, session "
        "kill|detach|screenshot); drain a server (server drain|undrain) and list its pool (pool).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, suppress=False)
    add_version_option(parser)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=(command.__doc__ or command.HELP).strip(),
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


@cli_entry("wradm")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.setup("wradm", verbose=args.verbose, quiet=args.quiet)
    try:
        code: int = args.run(args)
    except ConfigError as err:
        for diag in err.diagnostics:
            print(diag.format(), file=sys.stderr)
        print(f"wradm: {summary(err.diagnostics)}", file=sys.stderr)
        return err.exit_code
    return code


if __name__ == "__main__":
    raise SystemExit(main())
