"""Command line of `wrlogin`, the greeter wrsessd starts in a greeter session."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from wayray.common.errors import UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.sizes import size_argument
from wayray.common.version import add_version_option
from wayray.greeter.app import Greeter
from wayray.greeter.model import LoginModel
from wayray.launcher.client import SOCKET_ENV, TICKET_ENV, LauncherClient, LauncherError, greeter_client

#: Set by wrsessd for an unlock greeter: the owner of the session to unlock (the name is fixed).
UNLOCK_USER_ENV = "WAYRAY_UNLOCK_USER"

log = logging.getLogger("wayray.greeter")

EPILOG = f"""\
environment:
  WAYLAND_DISPLAY, XDG_RUNTIME_DIR  the greeter session's compositor (set by wrsessd)
  {SOCKET_ENV}                 wrsessd's socket (default /run/wayray/wrsessd.sock)
  {TICKET_ENV}               this greeter session's one-use login ticket (required)
  {UNLOCK_USER_ENV}                unlock greeters: whose session is unlocked (name fixed)

keys: type the user name, Enter; answer each prompt, Enter; Tab moves between fields;
Esc starts over. Exit status: 0 once a session started (or was unlocked), 1 on failure, 2 usage.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrlogin",
        description="WayRay greeter: asks for user name and password inside a greeter session and "
        "relays the PAM conversation to wrsessd.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--windowed", action="store_true", help="a window instead of full screen (testing)")
    p.add_argument("--size", type=size_argument(sides=(64, 16384)), default=(1024, 768), metavar="WxH",
                   help="window size with --windowed (default 1024x768)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    add_version_option(p)
    return p


@cli_entry("wrlogin")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup("wrlogin", verbose=args.verbose)
    if not os.environ.get("WAYLAND_DISPLAY"):
        raise UsageError(
            "WAYLAND_DISPLAY is not set", hint="wrlogin runs inside a greeter session started by wrsessd"
        )
    client: LauncherClient | None
    try:
        client, ticket = greeter_client()
    except LauncherError as err:
        raise WayRayError(
            str(err), hint="wrsessd sets it for the greeter component of a greeter session"
        ) from None
    except OSError as err:
        # wrsessd is away (restarting?): show the screen anyway and connect at the first login.
        log.warning("cannot reach wrsessd at %s: %s", os.environ.get(SOCKET_ENV, "default socket"), err)
        client, ticket = None, os.environ.get(TICKET_ENV, "")
    model = LoginModel(ticket=ticket, unlock_user=os.environ.get(UNLOCK_USER_ENV) or None)
    greeter = Greeter(model, socket_path=os.environ.get(SOCKET_ENV), client=client, windowed=args.windowed,
                      size=args.size)  # fmt: skip
    return asyncio.run(greeter.run())
