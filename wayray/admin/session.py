"""Act on one session of a running server instance.

    wradm session kill ID      end it: its programs are stopped and, with logins, its PAM session is
                               closed (through the session launcher); its kiosk shows its idle screen
    wradm session detach ID    take it off the kiosk that shows it; it keeps running, and the badge
                               brings it back
    wradm session screenshot ID [-o FILE] [--cursor]
                               the session's screen as its compositor has it, as a PNG (mode 0600:
                               it is the user's screen) in FILE (default ID.png); wrsrvd logs it

IDs are those of `wradm sessions`. Exit status 1 when there is no such session or the instance is not
running."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from pathlib import Path

from wayray.admin.live import add_instance_arguments, ask
from wayray.common.errors import EXIT_OK, UsageError, WayRayError
from wayray.common.files import write_atomic
from wayray.common.schema import Message
from wayray.server import admin_protocol as ap

NAME = "session"
HELP = "kill, detach or take a screenshot of one session of a running server instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("kill", "detach", "screenshot"), help="what to do")
    parser.add_argument("session_id", metavar="ID", help="the session (see wradm sessions)")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="screenshot: where the PNG goes (default ID.png)"
    )
    parser.add_argument("--cursor", action="store_true", help="screenshot: draw the pointer into it")
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.action == "screenshot":
        return _screenshot(args)
    if args.output is not None or args.cursor:
        raise UsageError(f"-o/--output and --cursor are for screenshot, not {args.action}")
    if args.action == "kill":
        answer: Message = ask(args, ap.Kill(session_id=args.session_id), ap.Killed)
    else:
        answer = ask(args, ap.Detach(session_id=args.session_id), ap.Detached)
    if args.json:
        print(json.dumps(answer.to_json()))
    elif not args.quiet:
        print(f"session {args.session_id}: {'ended' if args.action == 'kill' else 'detached'}")
    return EXIT_OK


def _screenshot(args: argparse.Namespace) -> int:
    answer = ask(
        args, ap.Screenshot(session_id=args.session_id, include_cursor=args.cursor), ap.ScreenshotAnswer
    )
    try:
        png = base64.b64decode(answer.png_base64, validate=True)
    except (binascii.Error, ValueError):
        raise WayRayError("wrsrvd answered with a screenshot that is not base64") from None
    out: Path = args.output or Path(f"{args.session_id}.png")
    try:
        write_atomic(out, png, mode=0o600)
    except OSError as err:
        raise WayRayError(f"{out}: cannot write the screenshot: {err.strerror or err}") from None
    if args.json:
        print(json.dumps({"session_id": args.session_id, "file": str(out), "bytes": len(png)}))
    elif not args.quiet:
        print(f"session {args.session_id}: screenshot written to {out} ({len(png)} bytes)")
    return EXIT_OK
