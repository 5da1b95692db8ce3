"""``servers.toml``: one ``[server.<name>]`` table per ``wrsrvd`` instance, and its sub-tables."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath

from wayray.config.model.common import DEFAULT_PORT, DERIVED, INSTANCE_NAME, POOL_NAME
from wayray.config.model.web import WebSettings
from wayray.config.pooltypes import PoolDirectory
from wayray.config.schema import Applies, ListRule, setting, table
from wayray.config.types import (
    AbsPath,
    Bitrate,
    Bool,
    Choice,
    Command,
    Duration,
    Fingerprint,
    Integer,
    IPAddress,
    ListOf,
    Number,
    Percent,
    Size,
)


class SessionStart(enum.StrEnum):
    """How a server instance starts its sessions."""

    #: A new token gets a login screen; the session runs as the user who logs in, started by the
    #: session launcher (wrsessd) after PAM.
    LOGIN = "login"
    #: No login: every session runs ``session_command`` as the server's own user.
    COMMAND = "command"


class VideoCodec(enum.StrEnum):
    H264 = "h264"


class VideoScaling(enum.StrEnum):
    AUTO = "auto"
    NEVER = "never"
    ALWAYS = "always"


@dataclass(frozen=True)
class TLSSettings:
    cert: PurePosixPath = setting(
        DERIVED,
        AbsPath(),
        "Certificate chain (PEM, the leaf first, then intermediate CAs; an ECDSA key) the server "
        "presents. Created (self-signed) on first start if missing. Put a certificate from your CA here "
        "for viewers that check servers against it (client.toml's `tls.ca`): it must name the host "
        "names or addresses viewers dial (subjectAltName).",
        derived="`<host.state_dir>/<server>/tls/cert.pem`",
    )
    key: PurePosixPath = setting(
        DERIVED,
        AbsPath(),
        "Private key (PEM) of the certificate; readable by the server only.",
        derived="`<host.state_dir>/<server>/tls/key.pem`",
    )
    client_ca: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "CA bundle (PEM) for mutual TLS: when set, only clients with a certificate signed by it may "
        'connect. `""` (the default) accepts any client.',
    )


@dataclass(frozen=True)
class OutputSettings:
    width: int = setting(
        1920,
        Integer(320, 16384),
        "Width in pixels of a new session's output when its viewer does not say its screen size "
        "(wrclient always does: a session starts at its first viewer's size).",
    )
    height: int = setting(
        1080, Integer(200, 16384), "Height in pixels of a new session's output; as for `width`."
    )
    scale: float = setting(
        1.0,
        Number(0.5, 4.0),
        "Scale factor of a new session's output (2 for HiDPI) when its viewer does not say its "
        "screen; rounded to a whole factor from 1 to 4.",
    )
    fps: int = setting(60, Integer(1, 240), "Highest frame rate sent to a client that is watching.")
    idle_fps: int = setting(
        1,
        Integer(0, 240),
        "Frame rate while no client is attached (the session is detached): frame callbacks are "
        "throttled to this rate so applications idle. 0 stops them.",
    )
    max_pixels: int = setting(
        16_588_800,
        Integer(320 * 200, 16384 * 16384),
        "Largest output a viewer may ask for, in pixels (width x height; the default is two 3840x2160 "
        "screens). A viewer whose screen is larger gets the largest output of its shape that fits, and "
        "is told (its picture is scaled to its screen); login and unlock screens get at most 3840x2160 "
        "worth of pixels. A session's compositor holds several buffers of its output, so this bounds "
        "the memory one viewer can make the server allocate.",
    )


@dataclass(frozen=True)
class EncoderSettings:
    video: bool = setting(
        True, Bool(), "Encode regions that change every frame as video; false sends only lossless tiles."
    )
    codec: VideoCodec = setting(
        VideoCodec.H264, Choice(VideoCodec), "Video codec for those regions (H.264 is the only one)."
    )
    bitrate: int = setting(
        8_000_000,
        Bitrate(),
        "Video bit rate of a session whose whole screen is video, in bit/s: x264's average bit rate "
        "target and VBV ceiling. A smaller video region gets its share by area; content that needs "
        "less (x264's quantizer 18 is the best it spends bits on) takes less. With `adaptive`, a "
        "session lowers it on a slower link and raises it back up to this value.",
    )
    zstd_level: int = setting(
        5,
        Integer(1, 22),
        "zstd compression level of small lossless regions (up to 65536 pixels: typed characters, "
        "lines of text), where a higher level buys bytes: level 5 is a quarter smaller than 1 on "
        "rendered text. Larger and photo-like regions always use level 1: higher levels gain "
        "nothing there and cost several times the CPU.",
    )
    adaptive: bool = setting(
        True,
        Bool(),
        "Adapt to the viewer's link: a session estimates its viewer's bandwidth and delay from the "
        "frame acknowledgements and lowers the video bit rate and the frame rate so that frames "
        "never queue on a slow link (docs/encoding.md, section 10). False: always the configured "
        "rate, at the pace the viewer's acknowledgements allow.",
    )
    video_scaling: VideoScaling = setting(
        VideoScaling.AUTO,
        Choice(VideoScaling),
        "Video regions of at least 640x360 coded at half size, for a viewer that scales them back up "
        "(the `video-scaled` capability; the browser kiosk always gets full size): `auto` when "
        "encoding cannot keep up with the frame rate at full size (docs/encoding.md, section 5.1), "
        "`always`, or `never`.",
    )


@dataclass(frozen=True)
class LimitSettings:
    memory_max: int | None = setting(
        None,
        Size(),
        "Memory ceiling of the server instance itself: wrsrvd, and the sessions it starts itself with "
        '`sessions = "command"` (systemd `MemoryMax=` on `wrsrvd@NAME`; on illumos recorded as a '
        "property only, see operating.md). Login sessions run outside it: see `session_memory_max`.",
        # systemd applies it to the unit; with sessions = "command" wrsrvd's memory budget
        # (admission.memory_percent) is a share of it, which a reload takes.
        applies=frozenset({Applies.UNIT, Applies.RELOAD}),
    )
    cpu_quota: int | None = setting(
        None,
        Percent(),
        "CPU time ceiling of the server instance itself, like `memory_max` (systemd `CPUQuota=`; on "
        "illumos recorded as a property only, for a `project.cpu-cap` you set up, see operating.md). "
        "Login sessions: `session_cpu_quota`.",
        applies=Applies.UNIT,
    )
    session_memory_max: int | None = setting(
        None,
        Size(),
        'Memory ceiling of each login session of this instance (`sessions = "login"`): its '
        "compositor and every program in it, login screens included. systemd `MemoryMax=` on the "
        "session's own scope (logind's `session-N.scope`, or `wayray-session-ID.scope`); without "
        "systemd not applied (wrsessd logs so).",
    )
    session_cpu_quota: int | None = setting(
        None,
        Percent(),
        "CPU time ceiling of each login session of this instance, like `session_memory_max` "
        '(systemd `CPUQuota=` on its scope; "100%" is one CPU).',
    )


@dataclass(frozen=True)
class AdmissionSettings:
    access_key_file: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "File holding the access key: a shared secret every viewer must present (wrclient "
        "`--access-key-file`, client.toml's `access_key_file`) before any session or login screen "
        "starts for it. Made with a random key (mode 0600) if it does not exist. A token is not "
        "authentication: without this, `tls.client_ca` or a login, anyone who can reach the port gets "
        'a session. Required with `sessions = "command"` unless `tls.client_ca` is set, on loopback '
        "too: there every user of the machine reaches the port, and would get a session as the "
        'server\'s user, who owns its state (TLS key included). `""` (the default): no access key.',
        applies=Applies.RESTART,  # read once, at start
    )
    new_sessions_per_minute: int = setting(
        30,
        Integer(1, 100_000),
        "New sessions and login screens one source may start per minute (a burst of this many, then "
        "one every 60/N s). A source is an IPv4 address, an IPv6 /64, or, with `tls.client_ca`, a client "
        "certificate. Kiosks behind one NAT address share it: raise it for sites with many kiosks behind "
        "one address.",
    )
    unused_sessions_per_source: int = setting(
        16,
        Integer(1, 100_000),
        "Login screens, unlock screens and sessions nobody has typed into or clicked yet that one source "
        "may hold at once; a further one is refused (SERVER_BUSY: the viewer tries again). Sessions in "
        "use (a login, or any input) do not count. Shared behind NAT, as above.",
    )
    memory_percent: int = setting(
        50,
        Integer(1, 100),
        'Percentage of the machine\'s memory (with `sessions = "command"`, of `limits.memory_max` when '
        "set: those sessions run inside the instance's ceiling) that the sessions may "
        "take, as wrsrvd estimates it from each session's output size before starting it (its programs' "
        "memory comes on top); a session or login screen that would not fit is refused (SERVER_BUSY). "
        "One source's unused sessions may take a quarter of it.",
    )


@dataclass(frozen=True)
class PeerSettings:
    fingerprints: tuple[str, ...] = setting(
        (),
        ListOf(Fingerprint()),
        "Certificate fingerprints of the pool's members (each member's `tls.cert`; list every member, "
        "this one included, so one file serves them all). Members authenticate each other with mutual "
        "TLS on the pool port, and share the session directory only with these (or `ca`'s). Empty "
        "and no `ca`: the instance announces itself but shares no directory (a badge that reaches "
        "another member gets a session there).",
        list_rule=ListRule.REPLACE,
    )
    ca: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "CA bundle (PEM) that the pool's members' certificates chain to, instead of (or beside) "
        '`fingerprints`. `""`: none.',
    )
    token_key_file: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "The pool's token key: 32 or more random bytes (mode 0600, owned by the service user), the same "
        "file on every member, so that a badge has the same keyed digest everywhere (tokens never "
        "leave a server, only their digests; docs/pools.md §3.3). Made if missing; copy it to the "
        'other members. Required with `fingerprints` or `ca`. `""`: the instance\'s own key.',
    )
    previous_token_key_file: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "The pool's previous token key, while the key is rotated (docs/pools.md §3.3): badges whose "
        "sessions were recorded under it still find them (here and through the directory); new "
        "sessions are recorded under `token_key_file`. Take it out once the sessions of before the "
        "rotation have ended (their policy's `detached_timeout`); a session still recorded under it "
        'is then no longer found by its badge. `""`: none.',
    )
    port: int = setting(
        0,
        Integer(0, 65535),
        "UDP port of the pool port (server-to-server QUIC with mutual TLS); 0: the instance's `port` + 1.",
    )
    directory: str = setting(
        "lan",
        PoolDirectory(),
        'Where the pool\'s session directory is. "lan": its members answer it themselves over the pool '
        'port (one subnet, a handful of members). "etcd://HOST:PORT,HOST:PORT": an etcd cluster (v3, '
        "its JSON gateway on the client URLs, mutual TLS with `etcd_ca`, `etcd_cert`, `etcd_key`), for "
        "sites across subnets or with tens of members; a dead member's entries go with its lease (4 s). "
        "Every member of a pool names the same directory (docs/pools.md §11).",
    )
    etcd_ca: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "With an etcd `directory`: the CA bundle (PEM) etcd's certificates chain to (they must name the "
        'host or address in `directory`). `""`: none.',
    )
    etcd_cert: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "With an etcd `directory`: this instance's client certificate (PEM) for etcd "
        '(`--client-cert-auth`). `""`: none.',
    )
    etcd_key: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        'Its private key (PEM; mode 0600, owned by the service user). `""`: none.',
    )


@dataclass(frozen=True)
class ServerConfig:
    """One ``[server.<name>]`` table: one ``wrsrvd`` instance."""

    enabled: bool = setting(
        True,
        Bool(),
        "Start this instance at boot. false keeps the table but does not start it.",
        applies=Applies.START,
    )
    listen: tuple[str, ...] = setting(
        ("::",),
        ListOf(IPAddress(), min_items=1),
        'Addresses to listen on. "::" is every IPv6 and (dual-stack) IPv4 address.',
        list_rule=ListRule.REPLACE,
        applies=Applies.RESTART,
    )
    port: int = setting(DEFAULT_PORT, Integer(1, 65535), "UDP port for QUIC.", applies=Applies.RESTART)
    max_sessions: int = setting(64, Integer(1, 100_000), "Most sessions this instance hosts at once.")
    history: timedelta = setting(
        timedelta(days=30),
        Duration(minimum=3600),
        "How long it keeps what is left of an ended session: its record and audit events in the "
        "registry and, when it does not log to the journal, its log files (`<state>/sessions/`). "
        "Removed after that, once an hour; a live session's log is never removed.",
    )
    policy: str = setting("default", INSTANCE_NAME, "Name of the session policy (policies.toml) it applies.")
    pool: str = setting(
        "",
        POOL_NAME,
        "Server pool it joins: it announces itself over mDNS (service `_wayray._udp`, subtype "
        "`_POOL._sub`, with its fingerprint, capacity, sessions and state; docs/pools.md) so that kiosks "
        'with the same `pool` find it without a configured address. "" joins none. It must listen on an '
        "address other hosts reach (`listen`), and kiosks trust it only through their pinned "
        "`fingerprints` or `tls.ca`.",
        applies=Applies.RESTART,
    )
    weight: int = setting(
        100,
        Integer(0, 10_000),
        "Its placement weight in its `pool` (Sun Ray's desirability): a new session lands on a member "
        "with a probability proportional to `weight` x its free sessions. 0 takes no new sessions "
        "(as a drain, but not kept across a change of this key). Announced over mDNS.",
        applies=Applies.RESTART,
    )
    sessions: SessionStart = setting(
        SessionStart.LOGIN,
        Choice(SessionStart),
        'How sessions start. "login": a new token gets a login screen (wrlogin), and after a PAM login '
        'the session runs as that user, started by the session launcher (wrsessd). "command": no '
        "login; every session runs `session_command` as the server's own user (demos, single-purpose "
        "appliances), so viewers must present `admission.access_key_file`'s key or a certificate from "
        "`tls.client_ca` (an error without either, on loopback too).",
        applies=Applies.RESTART,
    )
    session_command: tuple[str, ...] = setting(
        ("foot",),
        Command(),
        'What a session runs when `sessions = "command"` (and in `wrsrvd --standalone`): the command '
        "started as the server's user inside each new session.",
    )
    tls: TLSSettings = table(
        TLSSettings, "TLS identity (QUIC always uses TLS 1.3).", applies=Applies.RESTART
    )
    output: OutputSettings = table(OutputSettings, "Output (screen) defaults for new sessions.")
    encoder: EncoderSettings = table(EncoderSettings, "Encoder preferences.")
    limits: LimitSettings = table(
        LimitSettings, "Resource limits of the instance itself and of each of its login sessions."
    )
    admission: AdmissionSettings = table(
        AdmissionSettings,
        "Who may start sessions, and how many: the front door's defences against strangers on the "
        "network (an access key, per-source limits, a memory budget).",
    )
    peers: PeerSettings = table(
        PeerSettings,
        "The other members of its `pool`: how they are trusted, the token key they share, the pool port.",
        applies=Applies.RESTART,
    )
    web: WebSettings = table(
        WebSettings,
        "The browser kiosk: the page over HTTPS and WebTransport over HTTP/3 (docs/web-kiosk.md).",
        applies=Applies.RESTART,
    )
    #: The table's name (``lab`` in ``[server.lab]``); set by the loader.
    name: str = ""
