"""Command line of ``wrsrvd``, the WayRay server (the front door).

    wrsrvd --standalone [--port P] [--listen ADDR] [--access-key-file F] [--state-dir D]
           [--runtime-dir R] [--size WxH] [--max-sessions N] [--no-video] [--allow-root] [-v]
           -- COMMAND [ARGS...]
    wrsrvd --instance NAME [--root DIR] [-v]
    wrsrvd compositor ...      one session compositor by hand (see `wrsrvd compositor --help`)
    wrsrvd session ...         a session's compositor process, as wrsrvd starts it

Exit status: 0 after a clean stop, 1 when it cannot start or run, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import sys
from pathlib import Path, PurePosixPath

import wayray
from wayray.common.errors import UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.notify import Notifier
from wayray.common.version import add_version_option

log = logging.getLogger("wayray.server")

EPILOG = """\
standalone mode serves one kind of session, whose compositor runs COMMAND as you, with the embedded
default configuration (no root, no PAM, no files in /etc). Every new token gets its own session;
presenting the same token again (from anywhere) resumes it. Ctrl-C ends the sessions and stops;
SIGTERM stops only the server: its sessions keep running and come back to the next wrsrvd.

A token is not authentication: whoever reaches the port gets a session running COMMAND as you. So
the server listens on this machine only (127.0.0.1 and ::1) unless --listen says otherwise, and on
any other address it asks viewers for its access key (printed at start-up, kept in the state
directory, or --access-key-file F) before anything starts.

  wrsrvd --standalone -- foot
  wrclient localhost --token mysession

instance mode is what the service manager runs (wrsrvd@NAME.service, svc:/application/wayray/
wrsrvd:NAME): the [server.NAME] table of /etc/wayray/servers.toml. SIGHUP reloads what can change
without a restart (policy, limits, what new sessions run).
"""


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrsrvd",
        description="WayRay server: the front door that owns the network side (QUIC) and the session "
        "registry, and runs a compositor process per session.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--standalone", action="store_true", help="serve sessions running COMMAND (see below)")
    mode.add_argument("--instance", metavar="NAME", help="run the configured server instance NAME")
    p.add_argument("--root", type=Path, metavar="DIR", help="instance: read the configuration under DIR")
    p.add_argument("--port", type=int, metavar="P", help="standalone: UDP port (7100; 0 picks a free one)")
    p.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="standalone: address to listen on (127.0.0.1 and ::1: this machine only); repeatable. "
        "Any other address (:: is every one) needs the access key",
    )
    p.add_argument(
        "--access-key-file",
        type=Path,
        metavar="F",
        help="standalone: viewers must present the key in F (made if missing). Default: none on "
        "loopback, <state-dir>/access.key on any other address",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        metavar="D",
        help="standalone: registry, keys, TLS identity ($XDG_STATE_HOME/wayray/standalone)",
    )
    p.add_argument(
        "--runtime-dir",
        type=Path,
        metavar="R",
        help="standalone: link and admin sockets ($XDG_RUNTIME_DIR/wayray/standalone)",
    )
    p.add_argument(
        "--size",
        type=_size,
        metavar="WxH",
        help="standalone: output of sessions whose viewer does not say its screen size (1920x1080)",
    )
    p.add_argument("--max-sessions", type=int, metavar="N", help="standalone: most sessions at once (64)")
    p.add_argument("--no-video", action="store_true", help="standalone: send everything losslessly")
    p.add_argument("--allow-root", action="store_true", help="standalone: run even as root")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="debug logging (QUIC's own lines too; -vv: all of QUIC's)",
    )
    add_version_option(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    return p


@cli_entry("wrsrvd")
def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["compositor"]:
        from wayray.compositor import cli as compositor_cli

        return compositor_cli.main(args_list[1:])
    if args_list[:1] == ["session"]:
        from wayray.session import cli as session_cli

        return session_cli.main(args_list[1:])
    args = parser().parse_args(args_list)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if args.standalone:
        settings = _standalone(args, command)
    else:
        given = (args.port, args.listen, args.state_dir, args.runtime_dir, args.size, args.access_key_file)
        if command or any(v is not None for v in given):
            raise UsageError("--instance takes its settings from the configuration, not from arguments")
        settings = _instance(args.instance, args.root)
    setup("wrsrvd", verbose=args.verbose)
    # aioquic says "Negotiated protocol version" and "ALPN negotiated" at INFO for every connection:
    # -v shows them (and -vv QUIC's packet-level debugging), not the journal of a healthy server.
    logging.getLogger("quic").setLevel(
        logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    )
    return asyncio.run(_serve(settings, instance=args.instance, root=args.root))


def _standalone(args: argparse.Namespace, command: list[str]) -> object:
    from wayray.config import PolicyConfig, ServerConfig
    from wayray.server.settings import standalone_settings

    if not command:
        raise UsageError("no COMMAND given", hint="wrsrvd --standalone -- foot")
    if shutil.which(command[0]) is None:
        raise UsageError(f"{command[0]}: command not found")
    if os.geteuid() == 0 and not args.allow_root:
        raise UsageError(
            "refusing to run standalone sessions as root",
            hint="run it as an ordinary user, or pass --allow-root if you really mean it",
        )
    # This machine only unless told otherwise: a token is not authentication (see the epilog).
    server = ServerConfig(name="standalone", session_command=tuple(command), listen=("127.0.0.1", "::1"))
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port {args.port}: a UDP port is 0..65535")
        server = dataclasses.replace(server, port=args.port)
    if args.listen:
        server = dataclasses.replace(server, listen=tuple(args.listen))
    if args.access_key_file is not None:
        admission = dataclasses.replace(
            server.admission, access_key_file=PurePosixPath(os.path.abspath(args.access_key_file))
        )
        server = dataclasses.replace(server, admission=admission)
    if args.size:
        w, h = args.size
        if not (320 <= w <= 16384 and 200 <= h <= 16384):
            raise UsageError(f"--size {w}x{h}: sessions are 320x200 to 16384x16384")
        server = dataclasses.replace(server, output=dataclasses.replace(server.output, width=w, height=h))
    if args.max_sessions is not None:
        if args.max_sessions < 1:
            raise UsageError("--max-sessions must be at least 1")
        server = dataclasses.replace(server, max_sessions=args.max_sessions)
    if args.no_video:
        server = dataclasses.replace(server, encoder=dataclasses.replace(server.encoder, video=False))
    return standalone_settings(
        server, PolicyConfig(name="default"), state_dir=args.state_dir, runtime_dir=args.runtime_dir
    )


def _instance(name: str, root: Path | None) -> object:
    from wayray import config
    from wayray.server.settings import instance_settings

    cfg = config.load(root, instance=name)
    server = cfg.server(name)
    policy = cfg.policy_for(server)
    settings = instance_settings(server, policy, cfg.host)
    if policy.reauth_on_reattach and not settings.login:
        log.info(
            'policy %s: re-authentication on re-attach needs a login (sessions = "login"); off for %s',
            policy.name,
            name,
        )
    return settings


async def _serve(settings: object, *, instance: str | None, root: Path | None) -> int:
    from wayray.server.frontdoor import FrontDoor
    from wayray.server.settings import FrontDoorSettings, Mode

    assert isinstance(settings, FrontDoorSettings)
    notifier = Notifier.from_environment(unset=True)
    door = FrontDoor(settings, notifier=notifier)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    end_sessions = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal end_sessions
        if sig is signal.SIGINT and settings.mode is Mode.STANDALONE:
            end_sessions = True
        log.info("got %s: stopping%s", sig.name, " and ending the sessions" if end_sessions else "")
        stop.set()

    def on_hup() -> None:
        if instance is None:
            log.info("SIGHUP: standalone mode has no configuration files to reload")
            return
        notifier.reloading("reloading the configuration")
        try:
            door.reload(_instance(instance, root))  # type: ignore[arg-type]
        except WayRayError as err:
            log.error("configuration not reloaded: %s", err.message)
        notifier.ready(door.status_line())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await door.start()
    except BaseException:
        await door.stop()
        raise
    if settings.mode is Mode.STANDALONE:
        _banner(door)
    await stop.wait()
    await door.stop(end_sessions=end_sessions)
    return 0


def _banner(door: object) -> None:
    from wayray.server.frontdoor import FrontDoor

    assert isinstance(door, FrontDoor) and door.identity is not None
    s = door.settings
    listening = door.listening or list(s.listen)
    where = ", ".join(f"[{h}]:{door.port}" if ":" in h else f"{h}:{door.port}" for h in listening)
    host = listening[0] if listening[0] not in ("::", "0.0.0.0") else "localhost"
    host = "localhost" if host in ("127.0.0.1", "::1") else host
    host = f"[{host}]" if ":" in host else host
    connect = f"wrclient {host}:{door.port} --fingerprint {door.identity.fingerprint}"
    if door.access_key is not None:
        # Shown here, on the terminal of whoever started the server, and never logged.
        access = (
            f"  access key      {door.access_key}\n"
            f"                  (in {s.access_key_file}; anyone who has it gets a session running "
            f"{s.session_command[0]} as you)\n"
        )
        connect += " --access-key-file FILE   (FILE holds the key)"
    else:
        access = "  access          this machine only: anyone on it who can connect gets a session\n"
    print(
        f"wrsrvd {wayray.__version__}: standalone server ready\n"
        f"  listening on    udp {where}\n"
        f"  fingerprint     {door.identity.fingerprint}\n"
        f"{access}"
        f"  sessions run    {' '.join(s.session_command)}\n"
        f"  state           {s.state_dir}\n"
        f"  admin socket    {s.admin_socket}\n"
        f"  connect with    {connect}\n"
        f"  Ctrl-C ends the sessions and stops the server",
        flush=True,
    )
