"""Command line of ``wrclient``, the WayRay thin client."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path, PurePosixPath

import wayray
from wayray.audio.receive import AudioReceiver
from wayray.client.backend import BackendOptions, DisplayBackend
from wayray.client.backends import open_backend
from wayray.client.control import ControlServer
from wayray.client.discovery import (
    DISCOVERY_WAIT,
    POOL_IDLE_TIMEOUT,
    POOL_PING_INTERVAL,
    AnyOf,
    check_pool_trust,
    discovery,
)
from wayray.client.identity import (
    default_known_hosts,
    own_standalone_server,
    read_access_key,
    read_token_file,
    terminal_key,
    terminal_token,
)
from wayray.client.keyboard import Keyboard, KeymapChoice
from wayray.client.kiosk import Kiosk, KioskOptions
from wayray.client.peripherals import add_audio_arguments, audio_offer, audio_parts, usb_devices
from wayray.client.runner import ScriptRunner, snapshot
from wayray.client.script import Script
from wayray.client.script import load as load_script
from wayray.client.tokens import TokenSource, TokenSourceSettings, open_token_source
from wayray.client.viewer import Ending, Viewer, ViewerOptions
from wayray.common.errors import EXIT_FAILURE, EXIT_OK, UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.sizes import size_argument
from wayray.common.version import add_version_option
from wayray.config import ClientConfig, ConfigError, load_report
from wayray.config.model.common import POOL_PATTERN, POOL_RULE
from wayray.transport import (
    ClientCertificate,
    ClientSettings,
    KnownHosts,
    OwnServerKey,
    PinnedFingerprint,
    ServerCA,
    ServerTrust,
)
from wayray.usb.kiosk import KioskUsb
from wayray.wire import Capability, TokenKind, WireConfig

log = logging.getLogger("wayray.client")

DEFAULT_PORT = 7100

EPILOG = """\
server address: HOST, HOST:PORT or [IPv6]:PORT (port 7100 unless given); without one, `servers` in
client.toml: the first, and the others in turn when the one before does not answer.

token: --token T presents T (a "software" token: the session follows whoever presents it);
--token-file F reads it from a file; without either, this terminal's own identity is used (a random
token kept in $XDG_STATE_HOME/wayray/terminal-token), so the machine finds its session again.

pinning: the server's certificate is its identity. --fingerprint sha256:... accepts only that
identity (wrsrvd prints it at start-up); otherwise trust on first use, like ssh: the first identity
seen for an address is recorded in the known-hosts file ($XDG_CONFIG_HOME/wayray/known_hosts, or
--known-hosts FILE) and a different one later is refused. With a CA (--ca FILE, or tls.ca in
client.toml) the server's certificate must instead be issued by that CA and name the host or address
given (no known-hosts file); pinned fingerprints or an explicit --known-hosts must then hold as well.
--client-cert/--client-key present a certificate to servers that require mutual TLS.

access key: servers that do not ask for a login (wrsrvd --standalone, admission.access_key_file)
ask for their access key before anything starts: --access-key-file F (or access_key_file in
client.toml, or the WAYRAY_ACCESS_KEY environment variable) gives it. It travels inside TLS, after
the server's identity was checked. Given none, wrclient presents the key of your own standalone
server ($XDG_STATE_HOME/wayray/standalone/access.key, where `wrsrvd --standalone` keeps it) to that
server only: on a loopback address, with the identity kept next to the key. So you connect to your
own `wrsrvd --standalone` with nothing more; other users of the machine need the key from you.

snapshots and scripts (for tests and operators' synthetic checks):
  wrclient srv --token T --headless --snapshot out.png
      writes the picture as a PNG once the first complete frame arrived and exits 0; 1 with the
      reason when none came within --timeout seconds.
  wrclient srv --token T --headless --script check.txt [--snapshot final.png]
      plays the script (one command per line: type TEXT, key ctrl+shift+t, move X Y,
      click X Y [left|right|middle], scroll N [horizontal], wait MS, settle [MS], snapshot PATH
      [cursor], copy TEXT, expect-clipboard TEXT, resize WxH, tap X Y, swipe X1 Y1 X2 Y2 [N],
      touch down|move ID X Y, touch up ID, touch cancel; # comments), then writes the snapshot if
      asked, and exits 0, or 1 naming the script line that failed.

kiosk mode (--kiosk, or kiosk = true in client.toml): full screen, nothing to close; badges drive
the connection, and the session's sound plays through this machine's sound server (play_audio in
client.toml; --no-audio: none). The token source is, first that applies: --token / --token-file
(a fixed token), --badge-file F (a badge-reader program writes the badge in F; deleting or
emptying F takes it out), --badge-socket S (it sends "insert ID" / "remove" lines to S),
badge.file / badge.socket / the USB reader badge.vendor/product of client.toml, else this kiosk's
own identity. No badge: the "Present
your badge" screen. See wrclient(1) and /usr/share/doc/wayray/kiosk.md.
  wrclient srv --kiosk --badge-socket /run/wayray-kiosk/badge.sock
  wrclient srv --kiosk --headless --badge-socket S --state-file state.json --control-socket C
      (a headless kiosk for tests: the state file says what it shows; the control socket takes
      script commands, one per line, played against the session shown, and "state")

exit status: 0 ok, 1 failure (connection, refusal, script), 2 usage.
"""


#: ``--size``: what a screen may ask for.
_SIZE = size_argument(example="1280x720", sides=(16, 16384), range_in_usage=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrclient",
        description="WayRay thin client: shows a remote session and forwards keyboard and pointer.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_server_options(p)
    _add_screen_options(p)
    _add_kiosk_options(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="snapshots and scripts: seconds to wait for a frame, a settled screen, ... (30)",
    )
    p.add_argument(
        "--reconnect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reconnect (with backoff) when the connection drops (default: on)",
    )
    p.add_argument("--stats", type=Path, metavar="FILE", help="write counters (frames, bytes, ...) as JSON")
    add_audio_arguments(p)
    p.add_argument("--root", type=Path, metavar="DIR", help="read client.toml (and usb.toml) under DIR")
    p.add_argument(
        "--usb",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer this machine's USB devices to the session, as its usb.toml allows "
        "(default: client.toml's usb, off)",
    )
    p.add_argument(
        "--usb-list-port",
        type=int,
        metavar="PORT",
        help="diagnostics, with --usb: answer `usbip list -r 127.0.0.1 --tcp-port PORT` with the devices "
        "this machine's usb.toml allows (on the loopback only; `usbip attach` is refused)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging (-vv: QUIC too)")
    add_version_option(p)
    return p


def _add_server_options(p: argparse.ArgumentParser) -> None:
    """Which server, what to present to it, and how each side proves who it is."""
    p.add_argument("server", nargs="?", metavar="SERVER", help="HOST[:PORT] of the wrsrvd to use")
    p.add_argument(
        "--pool",
        metavar="NAME",
        help="find the servers of pool NAME over mDNS (default: client.toml's pool, when no SERVER "
        "is given); they are trusted only through the pool's fingerprints or CA "
        "(/usr/share/doc/wayray/pools.md)",
    )
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", metavar="T", help="present this token (default: the terminal's own)")
    tok.add_argument("--token-file", type=Path, metavar="F", help="read the token from this file")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument(
        "--fingerprint",
        "--server-fingerprint",
        action="append",
        metavar="SHA256",
        help="trust only this server identity (repeatable: any of them, such as a pool's members)",
    )
    trust.add_argument("--known-hosts", type=Path, metavar="FILE", help="trust-on-first-use file")
    p.add_argument(
        "--ca",
        "--server-ca",
        type=Path,
        metavar="FILE",
        help="the server's certificate must be issued by this CA (PEM) for the host given "
        "(default: client.toml's tls.ca)",
    )
    p.add_argument(
        "--access-key-file",
        type=Path,
        metavar="F",
        help="the access key of servers that require one, in F (mode 0600; default: client.toml's "
        "access_key_file, else $WAYRAY_ACCESS_KEY, else your own standalone server's, for it only)",
    )
    p.add_argument("--client-cert", type=Path, metavar="F", help="client certificate (PEM), mutual TLS")
    p.add_argument("--client-key", type=Path, metavar="F", help="its private key (PEM)")


def _add_screen_options(p: argparse.ArgumentParser) -> None:
    """The local side: window or memory, snapshots and scripts, keyboard, size."""
    p.add_argument("--headless", action="store_true", help="no window: the framebuffer stays in memory")
    p.add_argument("--snapshot", type=Path, metavar="PATH", help="write the picture as a PNG, then exit")
    p.add_argument("--cursor", action="store_true", help="draw the pointer into --snapshot")
    p.add_argument(
        "--settle",
        type=int,
        metavar="MS",
        help="before --snapshot, wait until the screen has not changed for MS milliseconds",
    )
    p.add_argument("--script", type=Path, metavar="FILE", help="play this script, then exit")
    p.add_argument(
        "--keep-open",
        action="store_true",
        help="after --script or --snapshot, stay connected instead of exiting (demos)",
    )
    p.add_argument("--keymap-layout", metavar="L[,V]", help="keyboard layout and variant (us; e.g. de)")
    p.add_argument("--keymap-file", type=Path, metavar="F", help="an XKB keymap file instead")
    p.add_argument("--size", type=_SIZE, metavar="WxH", help="screen size to ask for (headless: 1280x720)")
    p.add_argument("--scale", type=float, default=1.0, metavar="S", help="screen scale (1)")
    p.add_argument("--fullscreen", action="store_true", help="cover the whole screen (kiosks under cage)")


def _add_kiosk_options(p: argparse.ArgumentParser) -> None:
    kiosk = p.add_argument_group("kiosk mode")
    kiosk.add_argument(
        "--kiosk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="kiosk mode: badges attach and detach sessions (default: client.toml's kiosk)",
    )
    kiosk.add_argument("--badge-file", type=Path, metavar="F", help="kiosk: the badge in F, watched")
    kiosk.add_argument("--badge-socket", type=Path, metavar="S", help="kiosk: badge events on socket S")
    kiosk.add_argument("--state-file", type=Path, metavar="F", help="kiosk: write what it shows to F (JSON)")
    kiosk.add_argument(
        "--control-socket", type=Path, metavar="S", help="kiosk with --headless: script commands on socket S"
    )


def parse_address(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise UsageError(f"{text!r}: no host")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise UsageError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port) if port else DEFAULT_PORT


@cli_entry("wrclient")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = _client_config(args.root)
    (host, port), fallbacks, pool = _servers(args, cfg)
    kiosk = cfg.kiosk if args.kiosk is None else args.kiosk
    _check_mode(args, kiosk)
    token, kind = _token(args, kiosk)
    access_key = _access_key(args.access_key_file or _configured(cfg.access_key_file))
    # Given no key: the user's own standalone server's, for that server on loopback only.
    own_server = own_standalone_server() if not access_key else None
    own_key = _terminal_key(token if kind is TokenKind.TERMINAL and token != "-" else None)
    client = _client_settings(
        args, cfg, own_server, connect_timeout=10.0 if kiosk else min(args.timeout, 10.0)
    )
    offer = client.wire.capabilities
    # A kiosk plays the session's sound unless client.toml says play_audio = false (or --no-audio).
    kiosk_plays = kiosk and not args.no_audio and (cfg.play_audio or args.play_audio is not None)
    offer = audio_offer(args, offer, kiosk_plays=bool(kiosk_plays))
    client = dataclasses.replace(client, wire=dataclasses.replace(client.wire, capabilities=offer))
    check_pool_trust(pool, client)
    if pool:
        # A pool has other members to go to: a member that stopped answering is given up sooner.
        wire = replace(client.wire, idle_timeout=POOL_IDLE_TIMEOUT, ping_interval=POOL_PING_INTERVAL)
        client = replace(client, wire=wire)
    _check_local_options(args)
    script = load_script(args.script) if args.script else None
    keyboard = _keyboard(args, script)
    options = _backend_options(args, kiosk, keyboard, title=f"WayRay — {host or f'pool {pool}'}")
    setup("wrclient", verbose=args.verbose)
    if args.verbose < 2:
        logging.getLogger("quic").setLevel(logging.WARNING)
    usb = usb_devices(args, cfg)
    if usb is not None:
        client = replace(client, wire=WireConfig(capabilities=client.wire.capabilities | {Capability.USB}))
    if kiosk:
        source = open_token_source(_badge_settings(args, cfg, token))
        backend = open_backend(options)
        kiosk_options = KioskOptions(
            host=host,
            port=port,
            client=client,
            client_version=wayray.__version__,
            state_file=args.state_file,
            fallbacks=fallbacks,
            access_key=access_key,
            terminal_key=own_key,
            pool=pool,
            play_audio=kiosk_plays,
            audio_sink=args.play_audio or None,
        )
        return asyncio.run(_run_kiosk(args, kiosk_options, backend, source, keyboard, usb))
    backend = open_backend(options)
    viewer_options = ViewerOptions(
        host=host,
        port=port,
        client=client,
        token=token,
        token_kind=kind,
        reconnect=args.reconnect,
        client_version=wayray.__version__,
        fallbacks=fallbacks,
        access_key=access_key,
        terminal_key=own_key,
        pool=pool,
    )
    return asyncio.run(_run(args, viewer_options, backend, script, keyboard, usb))


def _servers(
    args: argparse.Namespace, cfg: ClientConfig
) -> tuple[tuple[str, int], tuple[tuple[str, int], ...], str]:
    """The server to dial (("", 0): none, the pool's members are found over mDNS), the ones to try
    in turn when it does not answer (client.toml's further ``servers``; none when the command line
    names the server), and the pool to discover ("": none)."""
    if args.pool is not None and not re.fullmatch(POOL_PATTERN, args.pool):
        raise UsageError(f"--pool {args.pool!r}: {POOL_RULE}")
    pool = args.pool if args.pool is not None else "" if args.server else cfg.pool
    server = args.server or (cfg.servers[0] if cfg.servers and not pool else None)
    if server is None and not pool:
        raise UsageError(
            "no server given", hint="wrclient HOST[:PORT] or --pool NAME, or list servers in client.toml"
        )
    first = parse_address(server) if server else ("", 0)
    fallbacks = () if args.server else tuple(parse_address(s) for s in cfg.servers[0 if pool else 1 :])
    return first, fallbacks, pool


def _token(args: argparse.Namespace, kiosk: bool) -> tuple[str, TokenKind]:
    """The token to present and its kind: --token, --token-file, else the terminal's own (a kiosk's
    token source decides later: "-")."""
    if args.token is not None:
        token, kind = args.token, TokenKind.SOFTWARE
    elif args.token_file is not None:
        token, kind = read_token_file(args.token_file), TokenKind.SOFTWARE
    elif kiosk:
        token, kind = "-", TokenKind.TERMINAL  # the kiosk's token source decides
    else:
        token, kind = terminal_token(), TokenKind.TERMINAL
    if not token or len(token.encode()) > 1024:
        raise UsageError("a token is 1 to 1024 bytes")
    return token, kind


def _configured(path: PurePosixPath | None) -> Path | None:
    """A path setting of client.toml as a local path (None: not set)."""
    return Path(str(path)) if path else None


def _client_settings(
    args: argparse.Namespace, cfg: ClientConfig, own_server: OwnServerKey | None, *, connect_timeout: float
) -> ClientSettings:
    """How the server's identity is checked (a pin, client.toml's pins, a CA, or trust on first use)
    and the client certificate presented, from the command line, else client.toml."""
    ca_path = args.ca or _configured(cfg.tls.ca)
    server_ca = ServerCA.load(ca_path) if ca_path is not None else None
    trust: ServerTrust | None
    if args.fingerprint and len(args.fingerprint) == 1:
        trust = PinnedFingerprint(args.fingerprint[0])
    elif args.fingerprint:
        trust = AnyOf(tuple(PinnedFingerprint(f) for f in args.fingerprint))
    elif cfg.fingerprints and not args.known_hosts:
        trust = AnyOf(tuple(PinnedFingerprint(f) for f in cfg.fingerprints))
    elif server_ca is not None and not args.known_hosts:
        trust = None  # the CA alone decides: no trust on first use beside it
    else:
        trust = KnownHosts(args.known_hosts or default_known_hosts())
    cert_path = args.client_cert or _configured(cfg.tls.cert)
    key_path = args.client_key or _configured(cfg.tls.key)
    if (cert_path is None) != (key_path is None):
        raise UsageError("--client-cert and --client-key go together")
    return ClientSettings(
        trust=trust,
        server_ca=server_ca,
        client_certificate=ClientCertificate(cert_path, key_path) if cert_path and key_path else None,
        connect_timeout=connect_timeout,
        own_server=own_server,
    )


def _check_local_options(args: argparse.Namespace) -> None:
    """The values of the local options that argparse cannot check alone."""
    if not 0.5 <= args.scale <= 4:
        raise UsageError("--scale is 0.5 to 4")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if args.keymap_layout and args.keymap_file:
        raise UsageError("--keymap-layout and --keymap-file exclude each other")
    if args.settle is not None and args.settle <= 0:
        raise UsageError("--settle is a positive number of milliseconds")


def _keymap_chosen(args: argparse.Namespace) -> bool:
    return bool(args.keymap_layout or args.keymap_file)


def _keyboard(args: argparse.Namespace, script: Script | None) -> Keyboard | None:
    """The keymap wrclient types with itself: headless, with a keymap chosen, or to play a script."""
    if args.headless or _keymap_chosen(args) or script is not None:
        return Keyboard.load(KeymapChoice.parse(args.keymap_layout, args.keymap_file))
    return None


def _backend_options(
    args: argparse.Namespace, kiosk: bool, keyboard: Keyboard | None, *, title: str
) -> BackendOptions:
    # The headless backend types with the chosen keymap (US by default); a window uses the keyboard
    # the local compositor gives it unless a keymap was chosen explicitly.
    own_keymap = args.headless or _keymap_chosen(args)
    return BackendOptions(
        headless=args.headless,
        size=args.size,
        scale_120=round(args.scale * 120),
        fullscreen=args.fullscreen or kiosk,
        kiosk=kiosk,
        keymap=keyboard.text if keyboard is not None and own_keymap else None,
        title=title,
    )


def _badge_settings(args: argparse.Namespace, cfg: ClientConfig, token: str) -> TokenSourceSettings:
    """Where a kiosk's badges come from: a fixed token (--token, --token-file), --badge-file,
    --badge-socket, else client.toml's badge table."""
    return TokenSourceSettings.from_config(
        cfg.badge,
        token=args.token if args.token is not None else (token if args.token_file else None),
        token_file=args.badge_file,
        token_socket=args.badge_socket,
    )


def _access_key(path: Path | None) -> str:
    """The access key from ``path``, else from $WAYRAY_ACCESS_KEY, else none ("")."""
    if path is not None:
        return read_access_key(path)
    key = os.environ.get("WAYRAY_ACCESS_KEY", "").strip()
    if len(key) > 256 or any(c.isspace() for c in key):
        raise UsageError("WAYRAY_ACCESS_KEY must be one word of at most 256 characters")
    return key


def _terminal_key(token: str | None) -> str:
    """This machine's key for its identities (``identity.terminal_key``), from its terminal token (made
    on first use). A machine where it cannot be kept (a read-only home) goes without one: the server
    then never takes it for a kiosk it knows (re-authentication asks for the password)."""
    try:
        return terminal_key(token if token is not None else terminal_token())
    except WayRayError as err:
        log.warning("no terminal identity: %s", err.message)
        return ""


def _check_mode(args: argparse.Namespace, kiosk: bool) -> None:
    """Options that make sense in one mode only."""
    if kiosk:
        given = [
            name
            for name, value in (
                ("--snapshot", args.snapshot),
                ("--script", args.script),
                ("--keep-open", args.keep_open),
                ("--settle", args.settle),
                ("--stats", args.stats),
                ("--no-reconnect", not args.reconnect),
            )
            if value
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)}: not in kiosk mode (a kiosk runs until it is stopped)",
                hint="drive a headless kiosk through --control-socket, or leave kiosk mode (--no-kiosk)",
            )
        sound = [
            name
            for name, value in (
                ("--audio-wav", args.audio_wav),
                ("--microphone", args.microphone),
                ("--mic-wav", args.mic_wav),
            )
            if value is not None
        ]
        if sound:
            raise UsageError(
                f"{', '.join(sound)}: not in kiosk mode (a kiosk plays the session's sound; its "
                "microphone is not sent yet)",
                hint="leave kiosk mode (--no-kiosk) to write the sound to a file or send a microphone",
            )
        if args.control_socket is not None and not args.headless:
            raise UsageError(
                "--control-socket needs --headless (a kiosk with a screen takes no remote input)"
            )
        return
    given = [
        name
        for name, value in (
            ("--badge-file", args.badge_file),
            ("--badge-socket", args.badge_socket),
            ("--state-file", args.state_file),
            ("--control-socket", args.control_socket),
        )
        if value is not None
    ]
    if given:
        raise UsageError(f"{', '.join(given)}: only in kiosk mode", hint="add --kiosk")


async def _run_kiosk(
    args: argparse.Namespace,
    options: KioskOptions,
    backend: DisplayBackend,
    source: TokenSource,
    keyboard: Keyboard | None,
    usb: KioskUsb | None,
) -> int:
    browser = await discovery(options.pool, options.client)
    if browser is not None:
        options = replace(options, discover=browser.addresses, unanswered=browser.unanswered)
    kiosk = Kiosk(options, backend, source, usb)
    loop = asyncio.get_running_loop()
    if usb is not None:
        usb.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, kiosk.stop)
    control = None
    if args.control_socket is not None:
        assert keyboard is not None
        control = ControlServer(args.control_socket, kiosk, keyboard, timeout=args.timeout)
        await control.start()
    try:
        await kiosk.run()
    finally:
        if usb is not None:
            usb.stop()
        if control is not None:
            await control.close()
        await backend.close()
        if browser is not None:
            await browser.close()
    if kiosk.display_lost:
        print("wrclient: error: the display went away", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    return EXIT_OK


def _client_config(root: Path | None) -> ClientConfig:
    result = load_report(root)
    errors = [d for d in result.errors if d.key.startswith("client") or "client.toml" in str(d.origin)]
    if errors:
        raise ConfigError(errors)
    return result.config.client


async def _run(
    args: argparse.Namespace,
    options: ViewerOptions,
    backend: DisplayBackend,
    script: Script | None,
    keyboard: Keyboard | None,
    usb: KioskUsb | None = None,
) -> int:
    audio, microphone = audio_parts(args)
    browser = await discovery(options.pool, options.client)
    if browser is not None:
        options = replace(options, discover=browser.addresses, unanswered=browser.unanswered)
        # A first look around, so that the first connection does not find an empty pool.
        await browser.wait_for_members(DISCOVERY_WAIT)
    viewer = Viewer(options, backend, usb=usb, audio=audio, microphone=microphone)
    if usb is not None:
        usb.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, viewer.stop, f"interrupted ({signal.Signals(sig).name})")
    task = loop.create_task(viewer.run(), name="viewer")
    code = EXIT_OK
    try:
        if script is not None or args.snapshot is not None:
            code = await _scripted(args, viewer, script, keyboard)
        if args.keep_open or (script is None and args.snapshot is None):
            ending = await task
            if ending in (Ending.STOPPED, Ending.SESSION_ENDED, Ending.SESSION_MOVED):
                if ending is not Ending.STOPPED:
                    print(f"wrclient: {viewer.ending_detail or ending}", flush=True)
            else:
                print(f"wrclient: error: {viewer.ending_detail}", file=sys.stderr, flush=True)
                code = EXIT_FAILURE
    finally:
        if not task.done():
            viewer.stop("done")
        await task
        if usb is not None:
            usb.stop()
        await backend.close()
        if audio is not None:
            audio.close()
            if audio.player is not None:
                await audio.player.wait_closed()
        if browser is not None:
            await browser.close()
        _write_stats(args, viewer, audio)
    return code


def _write_stats(args: argparse.Namespace, viewer: Viewer, audio: AudioReceiver | None) -> None:
    if args.stats is not None:
        data = viewer.stats.to_json() | {"session_id": viewer.session_id, "ending": viewer.ending}
        if audio is not None:
            data["audio"] = audio.to_json()
        args.stats.write_text(json.dumps(data, indent=1) + "\n")


async def _scripted(
    args: argparse.Namespace, viewer: Viewer, script: Script | None, keyboard: Keyboard | None
) -> int:
    timeout = args.timeout
    if not await viewer.wait_complete(timeout):
        if viewer.ending is not None:
            raise WayRayError(f"no complete frame arrived: {viewer.ending_detail}")
        last = f" (last close: {viewer.stats.last_close})" if viewer.stats.last_close else ""
        raise WayRayError(f"no complete frame arrived within {timeout:g} s{last}")
    if script is not None:
        assert keyboard is not None
        await ScriptRunner(script, viewer, keyboard, timeout=timeout).run()
    if args.snapshot is not None:
        if args.settle and not await viewer.wait_settled(args.settle / 1000, timeout):
            raise WayRayError(f"the screen did not settle ({args.settle} ms unchanged) within {timeout:g} s")
        snapshot(viewer, args.snapshot, include_cursor=args.cursor)
        print(f"wrclient: snapshot written to {args.snapshot}", flush=True)
    return EXIT_OK
