"""Command line of `wrsrvd` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
import sys

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wrsrvd")
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["compositor"]:
        from wayray.compositor import cli as compositor_cli

        return compositor_cli.main(args[1:])
    parser = argparse.ArgumentParser(
        prog="wrsrvd",
        description="WayRay server: the front door that owns the network side and the session registry.",
        epilog="Subcommands available now: `wrsrvd compositor --help` runs one session compositor by hand.",
    )
    parser.parse_args(args)
    raise WayRayError("wrsrvd is not implemented yet in this build")
