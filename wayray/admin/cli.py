"""Command line of `wradm` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wradm")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wradm",
        description="WayRay administration: check, show, render and apply configuration; list sessions.",
    )
    parser.parse_args(argv)
    raise WayRayError("wradm is not implemented yet in this build")
