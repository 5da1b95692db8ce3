"""Check a kiosk's token source by hand, without a server: ``python -m wayray.client.tokens``.

``readers`` lists the input devices with the USB ids to put in ``client.toml``; ``watch`` runs the token
source wrclient would use (or one given here) and prints what it reports, tokens redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from wayray import config
from wayray.client.tokens.choice import TokenSourceSettings, open_token_source
from wayray.client.tokens.events import BadgeInserted, redact
from wayray.client.tokens.udev_reader import ReaderMatch, device_ids, device_label, import_pyudev
from wayray.common.errors import UsageError, cli_entry
from wayray.common.log import setup

PROG = "python -m wayray.client.tokens"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check the kiosk's token source (badge reader, token file or socket) by hand.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        help="read DIR/etc/wayray (and DIR/usr/lib, DIR/run) instead of /",
        metavar="DIR",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "readers",
        help="list input devices with their USB ids; mark the one client.toml picks as badge reader",
        description="List input devices (/dev/input/event*) with their USB vendor:product ids and names. "
        "The one matching client.toml's badge.vendor/badge.product is marked.",
    )
    watch = sub.add_parser(
        "watch",
        help="show what the token source reports (tokens redacted), until Ctrl-C",
        description="Run the token source wrclient would use with client.toml (or the one given here) "
        "and print its events. Tokens are shown redacted, as in the logs.",
    )
    given = watch.add_mutually_exclusive_group()
    given.add_argument(
        "--token-file", type=Path, metavar="PATH", help="a file a badge-reader program writes"
    )
    given.add_argument("--token-socket", type=Path, metavar="PATH", help="a socket to listen on")
    given.add_argument(
        "--reader",
        metavar="VENDOR:PRODUCT",
        help="USB ids of the badge reader, e.g. 076b:5427 (overrides client.toml)",
    )
    watch.add_argument(
        "--removal-sequence", metavar="TEXT", help="what the reader types when a card goes out"
    )
    watch.add_argument("--repeat-removes", action="store_true", help="the same badge again removes it")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N events")
    return parser


@cli_entry("wayray-tokens")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup("wayray-tokens", verbose=args.verbose)
    client = config.load(args.root).client
    if args.command == "readers":
        return _readers(client.badge)
    settings = TokenSourceSettings.from_config(
        client.badge,
        token_file=args.token_file,
        token_socket=args.token_socket,
        removal_sequence=args.removal_sequence,
        repeat_removes=args.repeat_removes or None,
    )
    if args.reader:
        try:
            settings = dataclasses.replace(settings, reader=ReaderMatch.parse(args.reader))
        except ValueError as err:
            raise UsageError(f"--reader: {err}") from None
    return asyncio.run(_watch(settings, args.count))


def _readers(badge: config.BadgeReaderSettings) -> int:
    pyudev = import_pyudev()
    match = ReaderMatch(badge.vendor, badge.product) if badge.vendor is not None else None
    rows = []
    for device in pyudev.Context().list_devices(subsystem="input"):
        if not device.device_node or not device.sys_name.startswith("event"):
            continue
        vendor, product = device_ids(device)
        ids = "-" if vendor is None else f"{vendor:04x}:" + ("?" if product is None else f"{product:04x}")
        mark = "badge reader (client.toml)" if match and match.matches(vendor, product) else ""
        rows.append((device.device_node, ids, device_label(device), mark))
    if not rows:
        print("no input devices found")
    else:
        rows.sort(key=lambda row: (len(row[0]), row[0]))
        width = max(len(row[2]) for row in rows)
        print(f"{'NODE':<20} {'USB ID':<10} NAME")
        for node, ids, label, mark in rows:
            print(f"{node:<20} {ids:<10} {label:<{width}}  {mark}".rstrip())
    if match is None:
        print('\nclient.toml sets no badge reader (badge.vendor = "*"): wrclient uses no USB reader.')
    return 0


async def _watch(settings: TokenSourceSettings, count: int | None) -> int:
    source = open_token_source(settings)
    async with source:
        print(f"watching {source.description}", flush=True)
        seen = 0
        async for event in source:
            if isinstance(event, BadgeInserted):
                print(
                    f"inserted {event.kind.name.lower()} token {redact(event.token)} ({event.source})",
                    flush=True,
                )
            else:
                print(f"removed ({event.reason})", flush=True)
            seen += 1
            if count is not None and seen >= count:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
