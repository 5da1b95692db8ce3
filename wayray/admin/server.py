"""Drain a running server instance for maintenance, or take it back.

    wradm server drain      it keeps and serves its sessions (their badges still find them), takes
                            no new session, and announces "drain" to its pool: new badges are placed
                            on other members (without a pool they are refused: SERVER_BUSY)
    wradm server undrain    it takes new sessions again

The state is kept in the instance's state directory: a restart does not undrain it. Exit status 1
when the instance is not running or may not be asked."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask
from wayray.common.errors import EXIT_OK
from wayray.server import admin_protocol as ap

NAME = "server"
HELP = "drain a running server instance (no new sessions) or undrain it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("drain", "undrain"), help="what to do")
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    answer = ask(args, ap.Drain(draining=args.action == "drain"), ap.Drained)
    if args.json:
        print(json.dumps(answer.to_json()))
    elif not args.quiet:
        print(
            "drained: it keeps its sessions and takes no new ones"
            if answer.draining
            else "undrained: it takes new sessions again"
        )
    return EXIT_OK
