"""Command line of ``wrsessd``, the session launcher (root, normally socket-activated by systemd)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path

from wayray.common.errors import UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.notify import Notifier
from wayray.common.version import add_version_option
from wayray.launcher import activation
from wayray.launcher.daemon import Launcher
from wayray.launcher.settings import LauncherSettings, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrsessd",
        description=(
            "WayRay session launcher. Runs as root: authenticates users through PAM (relaying the whole "
            "conversation to the greeter), opens their PAM session and starts their session compositor "
            "and session components as them; starts greeter sessions as the unprivileged greeter user. "
            "Clients (wrsrvd, wrlogin, wradm) speak its IPC over a Unix socket, described in "
            "/usr/share/doc/wayray/launcher.md. Sessions keep running when wrsessd restarts; the new "
            "daemon re-adopts them."
        ),
        epilog=(
            "Settings come from the configuration (host.toml: socket, greeter account, PAM services; "
            "session.toml: what users' sessions start; see wayray-host.toml(5), wayray-session.toml(5)). "
            "Under systemd, wrsessd.socket passes the socket (socket activation) and wrsessd reports "
            "readiness with sd_notify. Without systemd it binds --socket itself (owner root, group "
            "socket_group, mode socket_mode)."
        ),
    )
    p.add_argument("--root", type=Path, metavar="DIR", help="read the configuration under DIR instead of /")
    p.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="override launcher settings from this TOML file (keys in /usr/share/doc/wayray/launcher.md §9)",
    )
    p.add_argument("--socket", type=Path, metavar="PATH", help="override the socket path")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="override the session record directory")
    p.add_argument("--check", action="store_true", help="check the settings and exit (0 when usable)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging (workers too)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    add_version_option(p)
    return p


def _configured(root: Path | None) -> LauncherSettings:
    """The settings the configuration gives; only problems of host.toml and session.toml count."""
    from wayray.config import ConfigError, load_report

    result = load_report(root)
    mine = [d for d in result.errors if d.key.split(".", 1)[0] in ("host", "session")]
    if mine:
        raise ConfigError(mine)
    return LauncherSettings.from_config(result.config)


def _settings(args: argparse.Namespace) -> LauncherSettings:
    settings = _configured(args.root)
    if args.settings:
        settings = load_settings(args.settings, settings)
    changes = {}
    if args.socket:
        changes["socket"] = args.socket.absolute()
    if args.state_dir:
        changes["state_dir"] = args.state_dir.absolute()
    if changes:
        settings = replace(settings, **changes)
    settings.check()
    return settings


async def _serve(settings: LauncherSettings, config_root: Path | None) -> int:
    log = logging.getLogger("wayray.wrsessd")
    # Taken out of the environment so session workers and the sessions they start never inherit it.
    notifier = Notifier.from_environment(unset=True)
    launcher = Launcher(settings, config_root=config_root or Path("/"))
    launcher.records.ensure()  # refuse an unsafe state directory before touching the socket
    listener = activation.activated_socket()
    bound = listener is None
    if listener is None:
        listener = activation.bind_socket(
            settings.socket, group=settings.socket_group, mode=settings.socket_mode
        )
        log.info(
            "listening on %s (group %s, mode %o)",
            settings.socket,
            settings.socket_group,
            settings.socket_mode,
        )
    else:
        log.info("listening on the socket passed by the service manager")

    def status() -> None:
        users = sum(1 for s in launcher.sessions.values() if s.info.session_class == "user")
        greeters = len(launcher.sessions) - users
        notifier.status(f"serving {users} user and {greeters} greeter session(s)")

    try:
        launcher.on_change = status
        await launcher.start(listener)
        notifier.ready()
        status()
        watchdog = notifier.start_watchdog()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: log.info("SIGHUP: nothing to reload; restart to apply")
        )
        await stop.wait()
        notifier.stopping()
        if watchdog is not None:
            watchdog.cancel()
        await launcher.close()
    finally:
        if bound:
            activation.unlink_socket(settings.socket)
    return 0


@cli_entry("wrsessd")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verbose and args.quiet:
        raise UsageError("--verbose and --quiet contradict each other")
    setup("wrsessd", verbose=args.verbose, quiet=args.quiet)
    settings = _settings(args)
    if args.check:
        print("wrsessd: settings are usable")
        return 0
    if os.geteuid() != 0:
        raise WayRayError(
            "wrsessd must run as root: it runs PAM for other users and starts sessions as them",
            hint="start it through wrsessd.socket/wrsessd.service, or with sudo",
        )
    return asyncio.run(_serve(settings, args.root))
