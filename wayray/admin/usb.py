"""List the USB devices kiosks offered to a running server instance: the kiosk and where the device is
plugged in, its ids and what it says it is, the session and user it was judged for, whether it is
attached, and the rule that decided (or what keeps it from being attached). Exit status 1 when the
instance is not running or may not be asked."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask, since, table
from wayray.common.errors import EXIT_OK
from wayray.server import admin_protocol as ap

NAME = "usb"
HELP = "list the USB devices kiosks offer to a running server instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    devices = ask(args, ap.Usb(), ap.UsbAnswer).devices
    if args.json:
        print(json.dumps([d.to_json() for d in devices], indent=1))
        return EXIT_OK
    if not devices:
        if not args.quiet:
            print("no USB devices offered")
        return EXIT_OK
    rows = [
        [
            _shown(d.kiosk),
            _shown(d.busid),
            _shown(d.device),
            _shown(d.product or "-"),
            _shown(d.session or "-"),
            _shown(d.user or "(none)"),
            _shown(d.state) + (f" (vhci port {d.port})" if d.port is not None else ""),
            since(d.since),
            _shown(d.reason),
        ]
        for d in devices
    ]
    print(table(rows, ["KIOSK", "BUS", "DEVICE", "PRODUCT", "SESSION", "USER", "STATE", "SINCE", "WHY"]))
    return EXIT_OK


def _shown(text: str) -> str:
    """What a kiosk or a device said, fit for a terminal: no control characters (no escapes, no
    line breaks), at most 80 characters."""
    return "".join(c if c.isprintable() else "?" for c in text)[:80]
