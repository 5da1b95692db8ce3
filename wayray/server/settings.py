"""What one wrsrvd runs with, made from the configuration model (or its embedded defaults).

Two modes: *instance* (``wrsrvd --instance NAME``, a ``[server.NAME]`` table, directories from
host.toml, run by systemd or SMF) and *standalone* (``wrsrvd --standalone -- COMMAND``, the embedded
defaults, directories in the user's own XDG directories, no root, no PAM). An instance with
``sessions = "login"`` (the default) has the session launcher (wrsessd) start its sessions behind a
login screen (``launcher_socket`` is set); with ``sessions = "command"`` it starts them itself, like
standalone mode, running ``session_command`` as the server's user.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, replace
from pathlib import Path

from wayray.common.errors import UsageError, WayRayError
from wayray.common.xdg import ACCESS_KEY_FILE, DERIVED_CERT, DERIVED_KEY, standalone_state_dir
from wayray.config import (
    AudioPolicy,
    ClipboardDirection,
    HostConfig,
    PolicyConfig,
    ServerConfig,
    SessionStart,
    UsbConfig,
)
from wayray.config.checks import is_loopback
from wayray.server.admission import Limits, memory_budget
from wayray.server.policy import SessionPolicy
from wayray.wire import IMPLEMENTED_CAPABILITIES, Capability, WireConfig


class Mode(enum.StrEnum):
    STANDALONE = "standalone"
    INSTANCE = "instance"


@dataclass(frozen=True)
class WebSettings:
    """The browser kiosk (``[server.NAME.web]``, docs/web-kiosk.md); port 0: a free one."""

    enabled: bool = False
    port: int = 7443
    #: A site certificate and its key; None: the server's identity for the page, and a rotating
    #: short-lived certificate for WebTransport.
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class FrontDoorSettings:
    mode: Mode
    #: The instance name ("standalone" in standalone mode), for logs and the ServerHello.
    name: str
    listen: tuple[str, ...]
    port: int
    #: Registry, token key, TLS identity (unless configured elsewhere), session logs.
    state_dir: Path
    #: The link socket (and, in standalone mode, the admin socket).
    runtime_dir: Path
    admin_socket: Path
    #: XDG_RUNTIME_DIR of the sessions (their Wayland sockets).
    session_runtime_dir: Path
    tls_cert: Path
    tls_key: Path
    client_ca: Path | None
    max_sessions: int
    session_command: tuple[str, ...]
    output_size: tuple[int, int]
    output_scale: int
    fps: int
    idle_fps: int
    video: bool
    policy: SessionPolicy
    clipboard: ClipboardDirection
    #: The server offers USB (docs/usb.md) on top of what every peer has: kiosks that forward devices
    #: ask for it, and the rules (``usb``) judge what they offer.
    wire: WireConfig = WireConfig(capabilities=IMPLEMENTED_CAPABILITIES | {Capability.USB})
    #: policy.audio: what a session starts with (a sound server or none) and what attaches offer.
    audio: AudioPolicy = AudioPolicy.PLAYBACK
    #: policy.audio_bitrate, kbit/s.
    audio_bitrate: int = 96
    #: Sessions get an X display served by Xwayland (policy.x11).
    x11: bool = True
    #: Seconds a restored session may take to come back on the link after wrsrvd starts, and a
    #: viewer waits for a session that is starting or reconnecting.
    relink_grace: float = 30.0
    #: Seconds a new session's compositor may take to start and register.
    start_timeout: float = 30.0
    #: Login mode: the session launcher's socket; sessions start behind a greeter, through wrsessd.
    #: None: wrsrvd starts ``session_command`` itself (standalone, ``sessions = "command"``).
    launcher_socket: Path | None = None
    #: Login mode: memory (bytes) and CPU (percent) ceilings of each session's scope, set by wrsessd.
    session_memory_max: int | None = None
    session_cpu_quota: int | None = None
    #: Viewers must present the access key in this file (made if missing) before anything starts for
    #: them (``wayray.server.access``); None: no access key.
    access_key_file: Path | None = None
    #: Largest output a viewer gets, in pixels (login and unlock screens: GREETER_MAX_PIXELS at most).
    max_pixels: int = 16_588_800
    #: Per-source and memory limits on new sessions (``wayray.server.admission``).
    admission: Limits = Limits()
    #: usb.toml: which devices kiosks may forward (instance mode; standalone: none).
    usb: UsbConfig = UsbConfig()
    #: Diagnostics (``wrsrvd --usb-sockets DIR``): each accepted USB device is served on a Unix socket
    #: in DIR, for a user-space USB/IP driver, instead of being attached to vhci_hcd.
    usb_sockets: Path | None = None
    #: The attach helper's socket (``<runtime_dir>/usb-attach.sock``, wrusbattach.socket): accepted USB
    #: devices are handed to vhci_hcd through it. None: no USB device is attached (standalone mode).
    usb_attach_socket: Path | None = None
    #: The server pool it joins and advertises over mDNS (docs/pools.md); "": none.
    pool: str = ""
    #: The pool's members' certificate fingerprints and CA: with either, the members share the
    #: session directory over the pool port (mutual TLS); with neither, it only announces itself.
    pool_fingerprints: tuple[str, ...] = ()
    pool_ca: Path | None = None
    #: The pool's shared token key (used instead of the instance's own ``token.key``).
    pool_key_file: Path | None = None
    #: The pool's previous token key, during a rotation (still accepted; docs/pools.md §3.3).
    pool_previous_key_file: Path | None = None
    #: UDP port of the pool port; None: the QUIC port + 1; 0: any free one.
    pool_port: int | None = None
    #: Where the pool's directory is: "lan" (its members) or "etcd://HOST:PORT,…", with etcd's CA and
    #: this instance's client certificate and key.
    pool_directory: str = "lan"
    pool_etcd_ca: Path | None = None
    pool_etcd_cert: Path | None = None
    pool_etcd_key: Path | None = None
    #: Its placement weight (docs/pools.md §5).
    pool_weight: int = 100

    @property
    def shares_directory(self) -> bool:
        return bool(self.pool) and (
            bool(self.pool_fingerprints) or self.pool_ca is not None or self.pool_directory != "lan"
        )

    #: The browser kiosk (served when ``enabled``).
    web: WebSettings = WebSettings()
    #: encoder.bitrate, encoder.zstd_level, encoder.adaptive, encoder.video_scaling (``video`` above
    #: is encoder.video).
    video_bitrate: int = 8_000_000
    zstd_level: int = 5
    adaptive: bool = True
    video_scaling: str = "auto"
    #: ``history``: seconds an ended session's record and log files are kept (wayray.server.housekeeping).
    history_s: float = 30 * 86400.0

    @property
    def login(self) -> bool:
        return self.launcher_socket is not None

    @property
    def link_socket(self) -> Path:
        return self.runtime_dir / "link.sock"

    @property
    def registry_path(self) -> Path:
        return self.state_dir / "registry.sqlite"

    @property
    def token_key(self) -> Path:
        """The token key: the pool's shared one when it has one, else the instance's own."""
        if self.pool_key_file is not None and self.shares_directory:
            return self.pool_key_file
        return self.state_dir / "token.key"

    @property
    def previous_token_keys(self) -> tuple[Path, ...]:
        """Keys the token key replaced, still accepted: the pool's previous key, and the instance's
        own key when the pool's is used and the instance had one (its sessions from before it joined
        the pool)."""
        keys = []
        if self.token_key != self.state_dir / "token.key":
            if self.pool_previous_key_file is not None:
                keys.append(self.pool_previous_key_file)
            own = self.state_dir / "token.key"
            if own.exists():
                keys.append(own)
        return tuple(keys)

    @property
    def session_log_dir(self) -> Path:
        return self.state_dir / "sessions"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "wrsrvd.lock"


def session_policy(policy: PolicyConfig, *, login: bool = False) -> SessionPolicy:
    """The registry's policy from the configuration's. Re-authentication needs a login (PAM through
    the launcher): without one (standalone, ``sessions = "command"``) it is off, and wrsrvd says so at
    start-up when it was asked. Token kinds: see :class:`wayray.config.SessionTokenKind`."""
    return SessionPolicy(
        detached_timeout_s=_seconds(policy.detached_timeout),
        untouched_timeout_s=_seconds(policy.untouched_timeout),
        idle_timeout_s=_seconds(policy.idle_logout),
        reauth_on_reattach=policy.reauth_on_reattach and login,
        max_sessions_per_user=policy.max_sessions_per_user or None,
        accepted_token_kinds=frozenset(policy.tokens),
    )


def _seconds(delta: object) -> float | None:
    from datetime import timedelta

    return delta.total_seconds() if isinstance(delta, timedelta) else None


def _integer_scale(scale: float) -> int:
    return max(1, min(4, round(scale)))


def instance_settings(server: ServerConfig, policy: PolicyConfig, host: HostConfig) -> FrontDoorSettings:
    state = Path(str(host.state_dir)) / server.name
    runtime = Path(str(host.runtime_dir)) / server.name
    login = server.sessions is SessionStart.LOGIN
    open_to = [a for a in server.listen if not is_loopback(a)]
    if not login and open_to and server.admission.access_key_file is None and server.tls.client_ca is None:
        raise WayRayError(
            f'server.{server.name}: sessions = "command" on {open_to[0]} would give a session running '
            f"{' '.join(server.session_command)} as this server's user to anyone who can reach UDP port "
            f"{server.port}: a token is not authentication",
            hint="set admission.access_key_file (viewers present its key) or tls.client_ca (viewers "
            "present a certificate) in servers.toml",
        )
    return _build(
        Mode.INSTANCE,
        server,
        policy,
        state_dir=state,
        runtime_dir=runtime,
        admin_socket=Path(str(host.admin_socket_for(server.name))),
        session_runtime_dir=runtime / "sessions",
        launcher_socket=Path(str(host.launcher_socket)) if login else None,
        usb_attach_socket=Path(str(host.runtime_dir)) / "usb-attach.sock",
    )


def standalone_settings(
    server: ServerConfig,
    policy: PolicyConfig,
    *,
    state_dir: Path | None,
    runtime_dir: Path | None,
    environ: dict[str, str] | None = None,
) -> FrontDoorSettings:
    env = dict(os.environ) if environ is None else environ
    state = state_dir or default_state_dir(env)
    runtime = runtime_dir or default_runtime_dir(env)
    user_runtime = env.get("XDG_RUNTIME_DIR")
    sessions_runtime = Path(user_runtime) if user_runtime and Path(user_runtime).is_dir() else runtime
    settings = _build(
        Mode.STANDALONE,
        server,
        policy,
        state_dir=state,
        runtime_dir=runtime,
        admin_socket=runtime / "admin.sock",
        session_runtime_dir=sessions_runtime,
    )
    if settings.access_key_file is None:
        # Always, loopback too: whoever reaches the port gets a shell as this user, and on loopback
        # that is every user of this machine (UDP says nothing about who sent a datagram). wrclient
        # run by this user finds the key in the default state directory (wayray.common.xdg).
        settings = replace(settings, access_key_file=state / ACCESS_KEY_FILE)
    return settings


def default_state_dir(env: dict[str, str]) -> Path:
    return standalone_state_dir(env)


def default_runtime_dir(env: dict[str, str]) -> Path:
    """``$XDG_RUNTIME_DIR/wayray/standalone``. Without XDG_RUNTIME_DIR (sudo, su, cron, ssh without
    pam_systemd) there is no safe default: a predictable name in /tmp can be made first by another
    local user, who would then own the link socket the sessions register on (their secrets, their
    input). So the user is asked for a directory instead."""
    base = env.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base) and os.path.isdir(base):
        return Path(base) / "wayray" / "standalone"
    why = "is not set" if not base else f"is {base!r}, not a directory"
    raise UsageError(
        f"no runtime directory for the link and admin sockets: XDG_RUNTIME_DIR {why} "
        "(sudo, su and cron do not set it)",
        hint="start wrsrvd from a login session (which sets XDG_RUNTIME_DIR), or give a directory only "
        "you can write with --runtime-dir DIR (for example --runtime-dir ~/.local/state/wayray/run)",
    )


def _build(
    mode: Mode,
    server: ServerConfig,
    policy: PolicyConfig,
    *,
    state_dir: Path,
    runtime_dir: Path,
    admin_socket: Path,
    session_runtime_dir: Path,
    launcher_socket: Path | None = None,
    usb_attach_socket: Path | None = None,
) -> FrontDoorSettings:
    tls = server.tls
    derived = str(tls.cert).startswith("<")  # the embedded defaults have no host to derive from
    cert = state_dir / DERIVED_CERT if derived or mode is Mode.STANDALONE else Path(str(tls.cert))
    key = state_dir / DERIVED_KEY if derived or mode is Mode.STANDALONE else Path(str(tls.key))
    return FrontDoorSettings(
        mode=mode,
        name=server.name or "standalone",
        listen=tuple(server.listen),
        port=server.port,
        state_dir=state_dir,
        runtime_dir=runtime_dir,
        admin_socket=admin_socket,
        session_runtime_dir=session_runtime_dir,
        tls_cert=cert,
        tls_key=key,
        client_ca=Path(str(tls.client_ca)) if tls.client_ca else None,
        max_sessions=server.max_sessions,
        history_s=server.history.total_seconds(),
        session_command=tuple(server.session_command),
        output_size=(server.output.width, server.output.height),
        output_scale=_integer_scale(server.output.scale),
        fps=server.output.fps,
        idle_fps=server.output.idle_fps,
        video=server.encoder.video,
        policy=session_policy(policy, login=launcher_socket is not None),
        clipboard=policy.clipboard,
        audio=policy.audio,
        audio_bitrate=policy.audio_bitrate,
        x11=policy.x11,
        launcher_socket=launcher_socket,
        usb_attach_socket=usb_attach_socket,
        session_memory_max=server.limits.session_memory_max,
        session_cpu_quota=server.limits.session_cpu_quota,
        access_key_file=_path(server.admission.access_key_file),
        max_pixels=server.output.max_pixels,
        pool=server.pool,
        pool_fingerprints=tuple(server.peers.fingerprints),
        pool_ca=_path(server.peers.ca),
        pool_key_file=_path(server.peers.token_key_file),
        pool_previous_key_file=_path(server.peers.previous_token_key_file),
        pool_port=server.peers.port or None,
        pool_directory=server.peers.directory,
        pool_etcd_ca=_path(server.peers.etcd_ca),
        pool_etcd_cert=_path(server.peers.etcd_cert),
        pool_etcd_key=_path(server.peers.etcd_key),
        pool_weight=server.weight,
        web=WebSettings(server.web.enabled, server.web.port, _path(server.web.cert), _path(server.web.key)),
        video_bitrate=server.encoder.bitrate,
        zstd_level=server.encoder.zstd_level,
        adaptive=server.encoder.adaptive,
        video_scaling=str(server.encoder.video_scaling),
        admission=Limits(
            new_per_minute=server.admission.new_sessions_per_minute,
            unused_per_source=server.admission.unused_sessions_per_source,
            # The instance's ceiling holds the sessions it starts itself; login sessions run in
            # scopes of their own, outside it, so the machine's memory is their base.
            memory_budget=memory_budget(
                server.admission.memory_percent,
                None if launcher_socket is not None else server.limits.memory_max,
            ),
        ),
    )


def _path(value: object) -> Path | None:
    return Path(str(value)) if value else None
