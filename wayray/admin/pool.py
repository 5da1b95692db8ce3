"""The members of a running server instance's pool as it sees them: id, name, addresses, state
(online or drain), sessions of capacity, whether it answers on the pool port, and when its
announcement was last seen (docs/pools.md). What members announce over mDNS is a hint; whether one
is a member is decided by its certificate. Exit status 1 when the instance is in no pool, is not
running or may not be asked."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask, table
from wayray.common.errors import EXIT_OK
from wayray.server import admin_protocol as ap

NAME = "pool"
HELP = "list the members of a running server instance's pool"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    answer = ask(args, ap.Pool(), ap.PoolAnswer)
    if args.json:
        print(json.dumps(answer.to_json(), indent=1))
        return EXIT_OK
    rows = [
        [
            m.id + (" (this)" if m.this else ""),
            m.name or "-",
            ", ".join(f"{a}:{m.port}" for a in m.addresses) or "-",
            m.state or "-",
            f"{m.sessions}/{m.capacity}",
            "REFUSED" if m.refused else "yes" if m.answers else "no" if m.answers is False else "-",
            "now" if m.this else f"{m.last_seen_s:g} s ago" if m.last_seen_s is not None else "-",
        ]
        for m in answer.members
    ]
    if not args.quiet:
        print(f"pool {answer.name}:")
        print(table(rows, ["MEMBER", "NAME", "ADDRESS", "STATE", "SESSIONS", "ANSWERS", "SEEN"]))
    this_refused = any(m.this and m.refused for m in answer.members)
    for m in answer.members:
        if not m.refused:
            continue
        if m.this:
            print(f"REFUSED: this member takes no badges from the pool, its pool token key is refused: "
                  f"{m.refused}")  # fmt: skip
        elif this_refused:  # the same refusal, seen from the member left out
            print(f"member {m.name or '-'} ({m.id}) refuses this member: {m.refused}")
        else:
            print(f"member {m.name or '-'} ({m.id}) is refused, not taken into the pool: {m.refused}")
    return EXIT_OK
