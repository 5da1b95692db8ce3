"""List the sessions of a running server instance: id, user, state, the kiosk that shows it, and
since when it is in that state. A session whose compositor answers nothing (hung, stopped) shows
"NOT-RESPONDING" after its state, and since when. Tokens are never shown (not even the server knows
them: it keeps keyed digests). Exit status 1 when the instance is not running or may not be asked."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask, since, table
from wayray.common.errors import EXIT_OK
from wayray.server import admin_protocol as ap

NAME = "sessions"
HELP = "list the sessions of a running server instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    sessions = ask(args, ap.Sessions(), ap.SessionsAnswer).sessions
    if args.json:
        print(json.dumps([s.to_json() for s in sessions], indent=1))
        return EXIT_OK
    if not sessions:
        if not args.quiet:
            print("no sessions")
        return EXIT_OK
    rows = [
        [
            s.id,
            s.user or "(login screen)",
            s.state if s.responding is not False else f"{s.state},NOT-RESPONDING",
            s.kiosk or "-",
            since(s.since if s.responding is not False else s.not_responding_since),
        ]
        for s in sessions
    ]
    print(table(rows, ["ID", "USER", "STATE", "KIOSK", "SINCE"]))
    return EXIT_OK
