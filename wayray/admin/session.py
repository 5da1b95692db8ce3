"""Act on one session of a running server instance.

    wradm session kill ID      end it: its programs are stopped and, with logins, its PAM session is
                               closed (through the session launcher); its kiosk shows its idle screen
    wradm session detach ID    take it off the kiosk that shows it; it keeps running, and the badge
                               brings it back

IDs are those of `wradm sessions`. Exit status 1 when there is no such session or the instance is not
running."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask
from wayray.common.errors import EXIT_OK
from wayray.common.schema import Message
from wayray.server import admin_protocol as ap

NAME = "session"
HELP = "kill or detach one session of a running server instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("kill", "detach"), help="what to do")
    parser.add_argument("session_id", metavar="ID", help="the session (see wradm sessions)")
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.action == "kill":
        answer: Message = ask(args, ap.Kill(session_id=args.session_id), ap.Killed)
    else:
        answer = ask(args, ap.Detach(session_id=args.session_id), ap.Detached)
    if args.json:
        print(json.dumps(answer.to_json()))
    elif not args.quiet:
        print(f"session {args.session_id}: {'ended' if args.action == 'kill' else 'detached'}")
    return EXIT_OK
