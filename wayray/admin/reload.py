"""Make a running server instance read its configuration again and wait for its answer (what
`systemctl reload wrsrvd@NAME` and SMF's refresh run).

The instance checks the files first. With errors it refuses them and keeps running with the
configuration it has: this prints the errors (file:line:col) and exits 1, so `systemctl reload`
fails and `systemctl status` shows why. Settings that need a restart (port, addresses, TLS, the
access key file, how sessions start, directories) keep their running values; this says which
(`wradm apply` restarts the instance for those). Exit status 0 when the instance took the configuration."""

from __future__ import annotations

import argparse
import json
import sys

from wayray.admin.live import add_instance_arguments, admin_socket, ask
from wayray.common.errors import EXIT_FAILURE, EXIT_OK, WayRayError
from wayray.common.schema import Message
from wayray.server import admin_protocol as ap

NAME = "reload"
HELP = "make a running server instance take its configuration again (it refuses one with errors)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    what, _ = admin_socket(args)
    answer = ask(args, ap.Reload(), Message)
    if not isinstance(answer, ap.Reloaded | ap.ReloadRefused):
        raise WayRayError(f"{what} answered reload with {answer.type}")
    if args.json:
        print(json.dumps(answer.to_json()))
    if isinstance(answer, ap.ReloadRefused):
        if not args.json:
            for line in answer.diagnostics or answer.errors:
                if not args.quiet or ": error: " in line or ": note: " in line:
                    print(line, file=sys.stderr)
        errors = len(answer.errors)
        print(
            f"wradm: {what} refused the configuration ({errors} error{'s' * (errors != 1)}) and keeps "
            "running with the one it has",
            file=sys.stderr,
        )
        print(
            "wradm: hint: fix the files (`wradm check` lists every problem), then reload again",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    needs_restart = answer.needs_restart
    if needs_restart:
        print(
            f"wradm: warning: {what}: changed, but in effect only after a restart: "
            f"{', '.join(needs_restart)} (`wradm apply` restarts it; or systemctl restart {what})",
            file=sys.stderr,
        )
    if not args.quiet and not args.json:
        print(f"{what}: configuration reloaded")
    return EXIT_OK
