"""List the sessions of a running server instance: id, user, state, the kiosk that shows it, since
when it is in that state, and what it costs: the CPU time and memory its processes have used (its
own cgroup's counters in login mode; its processes' proportional set sizes otherwise) and the bytes
wrsrvd sent its viewers since it started (--pool: every session of its pool, from the session
directory). A
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
    sessions = ask(args, ap.Sessions(usage=True), ap.SessionsAnswer).sessions
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
            "-" if s.cpu_s is None else cpu_time(s.cpu_s),
            "-" if s.memory_bytes is None else size(s.memory_bytes),
            "-" if s.sent_bytes is None else size(s.sent_bytes),
        ]
        for s in sessions
    ]
    print(table(rows, ["ID", "USER", "STATE", "KIOSK", "SINCE", "CPU", "MEMORY", "SENT"]))
    return EXIT_OK


def cpu_time(seconds: float) -> str:
    """CPU time for people: ``4.2 s``, ``12:05`` (minutes), ``3:12:05`` (hours)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def size(n: int) -> str:
    """Bytes for people, in binary units: ``512 B``, ``41.3 MiB``."""
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


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
