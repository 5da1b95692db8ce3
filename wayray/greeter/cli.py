"""Command line of `wrlogin` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wrlogin")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wrlogin",
        description="WayRay greeter: asks for user name and password inside a greeter session.",
    )
    parser.parse_args(argv)
    raise WayRayError("wrlogin is not implemented yet in this build")
