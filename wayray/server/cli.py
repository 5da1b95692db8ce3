"""Command line of `wrsrvd` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wrsrvd")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wrsrvd",
        description="WayRay server: the front door that owns the network side and the session registry.",
    )
    parser.parse_args(argv)
    raise WayRayError("wrsrvd is not implemented yet in this build")
