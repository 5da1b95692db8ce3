"""Command line of `wrsessd` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wrsessd")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wrsessd",
        description="WayRay session launcher (root): PAM and spawning of user and greeter sessions.",
    )
    parser.parse_args(argv)
    raise WayRayError("wrsessd is not implemented yet in this build")
