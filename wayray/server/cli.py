"""Command line of ``wrsrvd``, the WayRay server (the front door).

    wrsrvd --standalone [--port P] [--listen ADDR] [--access-key-file F] [--state-dir D]
           [--runtime-dir R] [--size WxH] [--max-sessions N] [--no-video] [--bitrate BPS] [--no-adapt]
           [--web-port P] [--allow-root] [-v]
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
import re
import shutil
import signal
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import wayray
from wayray.common.errors import UsageError, WayRayError, cli_entry
from wayray.common.log import setup, under_journal
from wayray.common.notify import Notifier
from wayray.common.sizes import OUTPUT_SIZE
from wayray.common.version import add_version_option
from wayray.config.diagnostics import ConfigError, Diagnostic, Severity
from wayray.config.loader import UnknownInstance
from wayray.config.model.common import POOL_PATTERN, POOL_RULE
from wayray.config.model.servers import VideoScaling

log = logging.getLogger("wayray.server")

EPILOG = """\
standalone mode serves one kind of session, whose compositor runs COMMAND as you, with the embedded
default configuration (no root, no PAM, no files in /etc). Every new token gets its own session;
presenting the same token again (from anywhere) resumes it. Ctrl-C ends the sessions and stops;
SIGTERM stops only the server: its sessions keep running and come back to the next wrsrvd.

A token is not authentication: whoever reaches the port gets a session running COMMAND as you. So
the server listens on this machine only (127.0.0.1 and ::1) unless --listen says otherwise, and it
asks every viewer for its access key before anything starts, on loopback too (every user of this
machine can reach 127.0.0.1). The key is printed at start-up and kept in the state directory
(access.key), or in --access-key-file F. With the default state directory, wrclient run by you
presents the key by itself when it connects to this server on loopback; anyone else needs to be
given the key (it gives a session running COMMAND as you: treat it like a password).

  wrsrvd --standalone -- foot
  wrclient localhost --token mysession        (you, on this machine: nothing more to give)

instance mode is what the service manager runs (wrsrvd@NAME.service, svc:/application/wayray/
wrsrvd:NAME): the [server.NAME] table of /etc/wayray/servers.toml. It checks what it reads first:
with errors it prints each as file:line:col and exits with status 78 (EX_CONFIG; systemd does not
restart it then). `wradm reload --instance NAME` (what `systemctl reload` runs) or SIGHUP reloads
what can change without a restart (policy, limits, what new sessions run); a configuration with
errors is refused, and the running one stays.
"""


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
        "Any other address (:: is every one) opens it to the network (its access key still required)",
    )
    p.add_argument(
        "--access-key-file",
        type=Path,
        metavar="F",
        help="standalone: viewers must present the key in F (made if missing). Default: "
        "<state-dir>/access.key (in the default state directory, your own wrclient presents it to this "
        "server on loopback by itself)",
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
        type=OUTPUT_SIZE,
        metavar="WxH",
        help="standalone: output of sessions whose viewer does not say its screen size (1920x1080)",
    )
    p.add_argument(
        "--web-port",
        type=int,
        metavar="P",
        help="standalone: also serve the browser kiosk (/usr/share/doc/wayray/web-kiosk.md): the page "
        "on TCP port P, WebTransport on UDP port P (0 picks a free one)",
    )
    p.add_argument("--max-sessions", type=int, metavar="N", help="standalone: most sessions at once (64)")
    p.add_argument("--no-video", action="store_true", help="standalone: send everything losslessly")
    _add_encoder_options(p)
    _add_pool_options(p)
    p.add_argument("--allow-root", action="store_true", help="standalone: run even as root")
    p.add_argument(
        "--usb-sockets",
        type=Path,
        metavar="DIR",
        help="diagnostics: serve each accepted USB device on a Unix socket in DIR (USB/IP after the "
        "import) for a user-space USB/IP driver, instead of attaching it to vhci_hcd",
    )
    p.add_argument(
        "--audio",
        choices=("off", "playback", "playback+microphone"),
        help="standalone: session audio, as policy.audio (playback; /usr/share/doc/wayray/audio.md)",
    )
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


def _add_pool_options(p: argparse.ArgumentParser) -> None:
    """Standalone: the server pool it joins (docs/pools.md)."""
    p.add_argument(
        "--pool",
        metavar="NAME",
        help="standalone: join the server pool NAME and announce this server in it over mDNS "
        "(/usr/share/doc/wayray/pools.md); listen on a LAN address (--listen) for other hosts to reach it",
    )
    p.add_argument(
        "--pool-peer",
        action="append",
        metavar="SHA256",
        help="standalone: a pool member's certificate fingerprint (repeatable, this server's too): the "
        "members share one session directory over the pool port, with mutual TLS",
    )
    p.add_argument(
        "--pool-key-file",
        type=Path,
        metavar="F",
        help="standalone: the pool's shared token key (made if missing; the same file on every member)",
    )
    p.add_argument(
        "--pool-port",
        type=int,
        metavar="P",
        help="standalone: UDP port of the pool port (QUIC port + 1; 0: any)",
    )
    p.add_argument(
        "--pool-previous-key-file",
        type=Path,
        metavar="F",
        help="standalone: the pool's previous token key, while the key is rotated (still accepted)",
    )
    p.add_argument(
        "--pool-weight",
        type=int,
        metavar="N",
        help="standalone: this member's placement weight, 0..10000 (default 100; 0: no new sessions)",
    )
    p.add_argument(
        "--pool-directory",
        metavar="URL",
        help='standalone: the session directory: "lan" (the members; default) or '
        '"etcd://HOST:PORT[,HOST:PORT...]" with --pool-etcd-tls',
    )
    p.add_argument(
        "--pool-etcd-tls",
        metavar="CA,CERT,KEY",
        help="standalone: etcd's CA bundle, this server's client certificate and its key (PEM files)",
    )


#: sysexits.h EX_CONFIG: "configuration error". systemd shows it as status=78/CONFIG, and the unit's
#: RestartPreventExitStatus= keeps it from restarting a server whose configuration is broken.
EXIT_CONFIG = 78


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
        settings = _with_usb_sockets(_standalone(args, command), args.usb_sockets)
        _logging(args.verbose)
        return asyncio.run(_serve(settings, instance=None, root=None))
    given = (
        args.port,
        args.listen,
        args.state_dir,
        args.runtime_dir,
        args.size,
        args.access_key_file,
        args.pool,
        args.pool_peer,
        args.pool_key_file,
        args.pool_port,
        args.pool_weight,
        args.pool_previous_key_file,
        args.pool_directory,
        args.pool_etcd_tls,
        args.web_port,
    )
    if command or any(v is not None for v in given):
        raise UsageError("--instance takes its settings from the configuration, not from arguments")
    _logging(args.verbose)
    try:
        loaded = load_instance(args.instance, args.root)
    except ConfigError as err:
        report(err.diagnostics)
        name = args.instance
        errors = sum(1 for d in err.diagnostics if d.severity is Severity.ERROR)
        raise WayRayError(
            f"wrsrvd@{name} not started: the configuration has {errors} error{'s' * (errors != 1)} (above)",
            hint=f"fix {'them' if errors != 1 else 'it'} (`wradm check --instance {name}` lists them "
            f"again), then start it: systemctl start wrsrvd@{name} (SMF: svcadm clear wrsrvd:{name})",
            exit_code=EXIT_CONFIG,
        ) from None
    except UnknownInstance as err:
        raise WayRayError(err.message, hint=err.hint, exit_code=EXIT_CONFIG) from None
    report(loaded.diagnostics)
    settings = _with_usb_sockets(loaded.settings, args.usb_sockets)
    return asyncio.run(_serve(settings, instance=args.instance, root=args.root, loaded=loaded))


def _with_usb_sockets(settings: object, directory: Path | None) -> object:
    if directory is None:
        return settings
    if not directory.is_dir():
        raise UsageError(f"--usb-sockets {directory}: not a directory")
    return dataclasses.replace(settings, usb_sockets=directory.resolve())  # type: ignore[type-var]


def _logging(verbose: int) -> None:
    setup("wrsrvd", verbose=verbose)
    # aioquic says "Negotiated protocol version" and "ALPN negotiated" at INFO for every connection:
    # -v shows them (and -vv QUIC's packet-level debugging), not the journal of a healthy server.
    logging.getLogger("quic").setLevel(
        logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    )


def _standalone(args: argparse.Namespace, command: list[str]) -> object:
    from wayray.config import AudioPolicy, PolicyConfig, ServerConfig
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
    server = _standalone_web(_standalone_tuning(server, args), args)
    policy = PolicyConfig(name="default")
    if args.audio is not None:
        policy = dataclasses.replace(policy, audio=AudioPolicy(args.audio))
    settings = standalone_settings(server, policy, state_dir=args.state_dir, runtime_dir=args.runtime_dir)
    if args.pool_port is not None:  # 0 (any free port) is a standalone choice only
        settings = dataclasses.replace(settings, pool_port=args.pool_port)
    return settings


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bitrate",
        type=int,
        metavar="BPS",
        help="standalone: video bit rate of a whole-screen video, bit/s (8000000; encoder.bitrate)",
    )
    p.add_argument(
        "--no-adapt",
        action="store_true",
        help="standalone: keep the configured video bit rate and frame rate whatever the viewer's link "
        "(encoder.adaptive = false)",
    )
    p.add_argument(
        "--video-scaling",
        choices=[str(m) for m in VideoScaling],
        help="standalone: big video regions at half size for a viewer that scales them up: when "
        "encoding cannot keep up (auto, the default), always or never (encoder.video_scaling)",
    )


def _standalone_tuning(server: Any, args: argparse.Namespace) -> Any:
    """The standalone options beyond addresses and sizes: sessions, video, pool."""
    if args.max_sessions is not None:
        if args.max_sessions < 1:
            raise UsageError("--max-sessions must be at least 1")
        server = dataclasses.replace(server, max_sessions=args.max_sessions)
    if args.no_video:
        server = dataclasses.replace(server, encoder=dataclasses.replace(server.encoder, video=False))
    if args.no_adapt:
        server = dataclasses.replace(server, encoder=dataclasses.replace(server.encoder, adaptive=False))
    if args.video_scaling is not None:
        encoder = dataclasses.replace(server.encoder, video_scaling=VideoScaling(args.video_scaling))
        server = dataclasses.replace(server, encoder=encoder)
    if args.bitrate is not None:
        if not 10_000 <= args.bitrate <= 10**12:
            raise UsageError(f"--bitrate {args.bitrate}: give a bit rate from 10000 to 10^12 bit/s")
        server = dataclasses.replace(
            server, encoder=dataclasses.replace(server.encoder, bitrate=args.bitrate)
        )
    if args.pool is not None:
        if not re.fullmatch(POOL_PATTERN, args.pool) or not args.pool:
            raise UsageError(f"--pool {args.pool!r}: {POOL_RULE}")
        server = dataclasses.replace(server, pool=args.pool)
    return _standalone_peers(server, args)


def _standalone_peers(server: Any, args: argparse.Namespace) -> Any:
    """--pool-peer, --pool-key-file, --pool-port, --pool-weight, --pool-directory, --pool-etcd-tls:
    the pool's members, what they share, and where their directory is."""
    from wayray.transport.identity import normalize_fingerprint

    given = [o for o, v in (("--pool-peer", args.pool_peer), ("--pool-key-file", args.pool_key_file),
                            ("--pool-port", args.pool_port), ("--pool-weight", args.pool_weight),
                            ("--pool-previous-key-file", args.pool_previous_key_file),
                            ("--pool-directory", args.pool_directory),
                            ("--pool-etcd-tls", args.pool_etcd_tls)) if v is not None]  # fmt: skip
    if not given:
        return server
    if not server.pool:
        raise UsageError(f"{', '.join(given)}: only with --pool NAME")
    if (args.pool_peer or args.pool_directory not in (None, "lan")) and args.pool_key_file is None:
        raise UsageError(f"{given[0]} needs --pool-key-file: the members must share one token key")
    if args.pool_port is not None and not 0 <= args.pool_port <= 65535:
        raise UsageError(f"--pool-port {args.pool_port}: a UDP port is 0..65535")
    if args.pool_weight is not None and not 0 <= args.pool_weight <= 10_000:
        raise UsageError(f"--pool-weight {args.pool_weight}: a weight is 0..10000")
    peers = dataclasses.replace(
        server.peers,
        fingerprints=tuple(normalize_fingerprint(f) for f in args.pool_peer or ()),
        token_key_file=PurePosixPath(os.path.abspath(args.pool_key_file)) if args.pool_key_file else None,
        previous_token_key_file=PurePosixPath(os.path.abspath(args.pool_previous_key_file))
        if args.pool_previous_key_file
        else None,
    )
    if args.pool_directory not in (None, "lan"):
        from wayray.config.pooltypes import PoolDirectory
        from wayray.config.types import Invalid

        try:
            directory = PoolDirectory().parse(args.pool_directory)
        except Invalid as err:
            raise UsageError(f"--pool-directory: {err}") from None
        files = (args.pool_etcd_tls or "").split(",")
        if len(files) != 3 or not all(files):
            raise UsageError(
                "--pool-directory etcd://… needs --pool-etcd-tls CA,CERT,KEY (etcd takes mutual TLS only)"
            )
        ca, cert, key = (PurePosixPath(os.path.abspath(f)) for f in files)
        peers = dataclasses.replace(peers, directory=directory, etcd_ca=ca, etcd_cert=cert, etcd_key=key)
    if args.pool_weight is not None:
        server = dataclasses.replace(server, weight=args.pool_weight)
    return dataclasses.replace(server, peers=peers)


def _standalone_web(server: Any, args: argparse.Namespace) -> Any:
    """--web-port: the browser kiosk (docs/web-kiosk.md) on that port."""
    if args.web_port is not None:
        if not 0 <= args.web_port <= 65535:
            raise UsageError(f"--web-port {args.web_port}: a port is 0..65535")
        web = dataclasses.replace(server.web, enabled=True, port=args.web_port)
        server = dataclasses.replace(server, web=web)
    return server


#: The configuration keys behind the settings a reload cannot change (FrontDoor.RESTART_ONLY).
_KEYS = {
    "state_dir": "host.state_dir",
    "runtime_dir": "host.runtime_dir",
    "admin_socket": "host.admin_socket",
    "tls_cert": "tls.cert",
    "tls_key": "tls.key",
    "client_ca": "tls.client_ca",
    "access_key_file": "admission.access_key_file",
    "launcher_socket": "sessions (or host.launcher_socket)",
    "web": "web",
}


@dataclasses.dataclass(frozen=True)
class LoadedInstance:
    """What ``wrsrvd --instance NAME`` runs with, and what it said about it."""

    settings: object  # FrontDoorSettings (imported late: this module starts without aioquic)
    #: Warnings and notes that concern this instance (files it reads, its own table).
    diagnostics: tuple[Diagnostic, ...]
    #: For `wradm apply`: digests of what needs a restart and of what a reload takes.
    digests: dict[str, str]


def load_instance(name: str, root: Path | None) -> LoadedInstance:
    """Read and check what instance ``name`` reads. Raises ``ConfigError`` with every diagnostic
    that concerns it (errors and warnings) when one is an error, ``UnknownInstance`` when no
    ``[server.NAME]`` is configured. Problems of files it does not read (client.toml, session.toml)
    or of other instances' tables neither stop it nor show in its log."""
    from wayray import config
    from wayray.config.checks import open_to_strangers
    from wayray.config.effect import server_digests
    from wayray.server.settings import instance_settings

    result = config.load_report(root)
    relevant = tuple(d for d in result.diagnostics if d.concerns(name))
    if any(d.severity is Severity.ERROR for d in relevant):
        raise ConfigError(relevant)
    cfg = result.config
    server = cfg.server(name)
    # The checks leave a disabled table's open door alone (nothing starts it); this one is starting.
    stranger = None if server.enabled else open_to_strangers(cfg, server)
    if stranger is not None:
        raise ConfigError((*relevant, stranger))
    policy = cfg.policy_for(server)
    settings = dataclasses.replace(instance_settings(server, policy, cfg.host), usb=cfg.usb)
    if policy.reauth_on_reattach and not settings.login:
        log.info(
            'policy %s: re-authentication on re-attach needs a login (sessions = "login"); off for %s',
            policy.name,
            name,
        )
    return LoadedInstance(settings, relevant, server_digests(cfg, server))


def report(diagnostics: Iterable[Diagnostic]) -> None:
    """Print diagnostics one per line, ``file:line:col: severity: ...`` (with their priority when
    the journal reads stderr, so `systemctl status` and `journalctl -p warning` show them right)."""
    journal = under_journal()
    priority = {"error": 3, "warning": 4, "note": 5}
    for diag in diagnostics:
        for line, level in zip(
            diag.format().split("\n"), [diag.severity, *(n.severity for n in diag.notes)], strict=False
        ):
            prefix = f"<{priority[level.value]}>" if journal else ""
            print(f"{prefix}{line}", file=sys.stderr, flush=True)


async def _serve(
    settings: object, *, instance: str | None, root: Path | None, loaded: LoadedInstance | None = None
) -> int:
    from wayray.server import admin_protocol as ap
    from wayray.server.frontdoor import FrontDoor
    from wayray.server.settings import FrontDoorSettings, Mode

    assert isinstance(settings, FrontDoorSettings)
    notifier = Notifier.from_environment(unset=True)
    loop = asyncio.get_running_loop()
    # The front door once it serves (a SIGHUP while it starts is taken then).
    started: asyncio.Future[FrontDoor] = loop.create_future()
    stop = asyncio.Event()
    end_sessions = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal end_sessions
        if sig is signal.SIGINT and settings.mode is Mode.STANDALONE:
            end_sessions = True
        log.info("got %s: stopping%s", sig.name, " and ending the sessions" if end_sessions else "")
        stop.set()

    reloading = asyncio.Lock()

    async def reload_configuration() -> ap.Reloaded | ap.ReloadRefused:
        """Read the configuration again: take it, or refuse it (the running one stays) and say why."""
        assert instance is not None
        door = await started
        async with reloading:
            notifier.reloading("reloading the configuration")
            try:
                new = await asyncio.to_thread(load_instance, instance, root)
            except (ConfigError, UnknownInstance) as err:
                problems = err.diagnostics if isinstance(err, ConfigError) else ()
                lines = [d.format() for d in problems if d.severity is Severity.ERROR] or [err.message]
                for line in "\n".join(lines).split("\n"):  # one log line each, notes included
                    log.error("configuration not reloaded (the running one stays): %s", line)
                notifier.ready(door.status_line())
                return ap.ReloadRefused(errors=tuple(lines), diagnostics=tuple(d.format() for d in problems))
            needs_restart = [_KEYS.get(n, n) for n in door.reload(new.settings)]  # type: ignore[arg-type]
            door.config_digests = new.digests
            notifier.ready(door.status_line())
            return ap.Reloaded(
                needs_restart=tuple(needs_restart), diagnostics=tuple(d.format() for d in new.diagnostics)
            )

    def on_hup() -> None:
        if instance is None:
            log.info("SIGHUP: standalone mode has no configuration files to reload")
            return
        task = loop.create_task(reload_configuration(), name="reload")
        hup_tasks.add(task)
        task.add_done_callback(hup_tasks.discard)

    hup_tasks: set[asyncio.Task[Any]] = set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    door = await FrontDoor.start(
        settings,
        notifier=notifier,
        reloader=reload_configuration if instance is not None else None,
        config_digests=loaded.digests if instance is not None and loaded is not None else None,
    )
    started.set_result(door)
    if settings.mode is Mode.STANDALONE:
        _banner(door)
    await stop.wait()
    await door.stop(end_sessions=end_sessions)
    return 0


def _banner(door: object) -> None:
    import socket

    from wayray.common.xdg import standalone_access_key
    from wayray.config.checks import is_loopback
    from wayray.server.frontdoor import FrontDoor

    assert isinstance(door, FrontDoor)
    s = door.settings
    listening = door.listening or list(s.listen)
    where = ", ".join(f"[{h}]:{door.port}" if ":" in h else f"{h}:{door.port}" for h in listening)
    fingerprint = door.identity.fingerprint
    assert door.access_key is not None  # a standalone server always has one (standalone_settings)
    key_file = s.access_key_file
    # wrclient run by this user presents the key of the default state directory to this server on
    # loopback by itself (wayray.client.identity.own_standalone_server).
    found = key_file == standalone_access_key()
    local = [h for h in listening if is_loopback(h) or h in ("::", "0.0.0.0")]
    here = f"wrclient localhost:{door.port} --fingerprint {fingerprint}"
    if all(is_loopback(h) for h in listening):
        if found:
            who = "you (your wrclient presents the key itself); other users of this machine need the key"
            connect = here
        else:
            who = f"whoever has the access key, on this machine only (you too: --access-key-file {key_file})"
            connect = f"{here} --access-key-file {key_file}"
    else:
        who = "whoever has the access key, on this machine or over the network" + (
            " (your wrclient on this machine presents it itself)" if found and local else ""
        )
        public = next((h for h in listening if not is_loopback(h) and h not in ("::", "0.0.0.0")), None)
        host = socket.gethostname() if public is None else f"[{public}]" if ":" in public else public
        elsewhere = f"wrclient {host}:{door.port} --fingerprint {fingerprint} --access-key-file FILE"
        if found and local:
            connect = f"{here}   (you, here)\n                  {elsewhere}   (FILE holds the key)"
        else:
            connect = f"{elsewhere}   (FILE holds the key)"
    # Shown here, on the terminal of whoever started the server, and never logged.
    access = (
        f"  access key      {door.access_key}\n"
        f"                  (in {key_file}; anyone who has it gets a session running "
        f"{s.session_command[0]} as you)\n"
        f"  who can connect {who}\n"
    )
    web = ""
    if door.web is not None:
        web = (
            f"  browser kiosk   https://localhost:{door.web.port}/   (the page's certificate is the "
            f"server's identity: --ignore-certificate-errors-spki-list={door.web.spki})\n"
        )
    print(
        f"wrsrvd {wayray.__version__}: standalone server ready\n"
        f"  listening on    udp {where}\n"
        f"  fingerprint     {door.identity.fingerprint}\n"
        f"{access}"
        f"  sessions run    {' '.join(s.session_command)}\n"
        f"  state           {s.state_dir}\n"
        f"  admin socket    {s.admin_socket}\n"
        f"  connect with    {connect}\n"
        f"{web}"
        f"  Ctrl-C ends the sessions and stops the server",
        flush=True,
    )
