"""Command line of `wrclient` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wrclient")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wrclient",
        description="WayRay thin client: shows a remote session and forwards keyboard and pointer.",
    )
    parser.parse_args(argv)
    raise WayRayError("wrclient is not implemented yet in this build")
