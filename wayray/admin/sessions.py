"""List the sessions of a running server instance: id, user, state, the kiosk that shows it, and
since when it is in that state (--pool: every session of its pool, from the session directory). A
session whose compositor answers nothing (hung, stopped) shows "NOT-RESPONDING" after its state, and
since when. Tokens are never shown (not even the server knows them: it keeps keyed digests). Exit
status 1 when the instance is not running or may not be asked."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask, since, table
from wayray.common.errors import EXIT_OK
from wayray.server import admin_protocol as ap

NAME = "sessions"
HELP = "list the sessions of a running server instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool",
        action="store_true",
        help="every session of the instance's pool, from its session directory (member, session id, state)",
    )
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.pool:
        return _pool(args)
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


def _pool(args: argparse.Namespace) -> int:
    answer = ask(args, ap.Pool(sessions=True), ap.PoolAnswer)
    entries = answer.sessions or ()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=1))
        return EXIT_OK
    names = {m.id: (m.name or m.id) for m in answer.members}
    rows = [[e.token, names.get(e.member, e.member), e.session_id or "-", e.state] for e in entries]
    if not args.quiet:
        print(
            table(rows, ["TOKEN", "MEMBER", "SESSION", "STATE"])
            if rows
            else f"pool {answer.name}: no sessions"
        )
    return EXIT_OK
