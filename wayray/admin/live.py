"""What the live-state subcommands (``sessions``, ``session``, ``status``) share: finding a running
wrsrvd instance's admin socket and talking to it (``wayray.server.admin``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TypeVar

from wayray.admin.common import load
from wayray.common.errors import UsageError, WayRayError
from wayray.common.schema import Message
from wayray.server.admin import AdminClient, AdminError

A = TypeVar("A", bound=Message)


def add_instance_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--instance",
        metavar="NAME",
        help="the server instance (default: the only enabled one); its admin socket comes from host.toml",
    )
    where.add_argument("--admin-socket", type=Path, metavar="PATH", help="talk to the wrsrvd listening here")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def admin_socket(args: argparse.Namespace) -> tuple[str, Path]:
    """(what to call it, its admin socket) for ``--instance`` / ``--admin-socket`` / the only server."""
    if args.admin_socket is not None:
        return str(args.admin_socket), args.admin_socket
    config = load(args).config
    name = args.instance
    if name is None:
        # The instance that runs: a disabled one (such as the shipped example) does not count.
        names = sorted(s.name for s in config.enabled_servers())
        if len(names) != 1:
            disabled = sorted(set(config.servers) - set(names))
            raise UsageError(
                (
                    "no server instance is enabled"
                    + (f" (disabled: {', '.join(disabled)})" if disabled else "")
                    if not names
                    else f"several server instances are enabled ({', '.join(names)}): say which"
                ),
                hint="--instance NAME, or --admin-socket PATH",
            )
        name = names[0]
    config.server(name)  # UnknownInstance with the configured names
    return f"wrsrvd@{name}", Path(str(config.host.admin_socket_for(name)))


def ask(args: argparse.Namespace, request: Message, expect: type[A]) -> A:
    """One admin request and its answer; errors an operator can act on (not running, not allowed,
    refused)."""
    what, path = admin_socket(args)
    try:
        with AdminClient(path, timeout=60) as client:
            return client.ask(request, expect)
    except (FileNotFoundError, ConnectionRefusedError):
        raise WayRayError(
            f"{what} is not running (nothing listens on {path})",
            hint="start it: systemctl start wrsrvd@NAME (svcadm enable wrsrvd:NAME on illumos)",
        ) from None
    except PermissionError:
        raise WayRayError(
            f"permission denied: {path}",
            hint="the admin socket is for root and wrsrvd's own user (wayray): use sudo",
        ) from None
    except AdminError as err:
        raise WayRayError(f"{what}: {err}") from None
    except OSError as err:
        raise WayRayError(f"cannot talk to {what} at {path}: {err.strerror or err}") from None


def since(at: float | None, now: float | None = None) -> str:
    """A moment for people: local time and how long ago."""
    if at is None:
        return "-"
    now = time.time() if now is None else now
    age = max(0.0, now - at)
    if age < 60:
        ago = f"{age:.0f} s ago"
    elif age < 3600:
        ago = f"{age / 60:.0f} min ago"
    elif age < 86400:
        ago = f"{age / 3600:.1f} h ago"
    else:
        ago = f"{age / 86400:.1f} d ago"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} ({ago})"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)
