"""The README's demo: what `./tools/demo` runs.

It grows with the project: today it validates and renders the shipped example configuration; once the
display pipeline lands it starts a standalone server, a session running foot, and a client.
"""

from __future__ import annotations

import argparse

from wayray.common.errors import WayRayError, cli_entry


@cli_entry("wayray-demo")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/demo", description=__doc__)
    parser.parse_args(argv)
    raise WayRayError("the demo is not wired up yet in this build")


if __name__ == "__main__":
    raise SystemExit(main())
