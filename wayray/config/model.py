"""The configuration schema: every file, table and setting WayRay reads, declared once.

The frozen dataclasses below are both the schema (each field's ``setting(...)`` carries its TOML key,
type, default and help) and the typed values the daemons receive from :func:`wayray.config.load`.
``docs/configuration.md`` is generated from this module (``python -m wayray.config.reference``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from types import MappingProxyType

from wayray.config.schema import Applies, FileSpec, ListRule, Shape, records, required, setting, table
from wayray.config.types import (
    AbsPath,
    Bitrate,
    Bool,
    Choice,
    Command,
    Duration,
    Environment,
    Fingerprint,
    Integer,
    IPAddress,
    ListOf,
    Number,
    Percent,
    Principal,
    ServerAddress,
    Size,
    String,
    UsbId,
    UserName,
)

#: Server and policy names: they become systemd instance names (``wrsrvd@NAME``) and SMF instance
#: names (``svc:/application/wayray/wrsrvd:NAME``), so they keep to characters both accept verbatim.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
NAME_RULE = "names start with a letter and use letters, digits, '_' and '-' (at most 64 characters)"
INSTANCE_NAME = String(
    NAME_PATTERN, NAME_RULE, name="name (letters, digits, '_', '-'; starts with a letter)"
)
#: Pool names ("" = none) become the mDNS subtype ``_<pool>._sub._wayray._udp``.
POOL_NAME = String(
    r"|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
    "pool names are DNS labels: lowercase letters, digits and inner '-', at most 63 characters",
    name='pool name (a DNS label such as "lab"), or ""',
)

#: Placeholder for defaults computed from other settings (see ``derived=``); never seen by users.
DERIVED = PurePosixPath("<derived>")

DEFAULT_PORT = 7100


class ClipboardDirection(enum.StrEnum):
    BOTH = "both"
    TO_CLIENT = "to-client"
    TO_SERVER = "to-server"
    NONE = "none"

    @property
    def to_client(self) -> bool:
        """May text copied in the session be pasted on the client side?"""
        return self in (ClipboardDirection.BOTH, ClipboardDirection.TO_CLIENT)

    @property
    def to_server(self) -> bool:
        """May text copied on the client side be pasted into the session?"""
        return self in (ClipboardDirection.BOTH, ClipboardDirection.TO_SERVER)


class SessionTokenKind(enum.StrEnum):
    #: A badge or smart card identifies the person; the session follows it from kiosk to kiosk.
    BADGE = "badge"
    #: No badge: the kiosk itself is the token, so its session stays with that kiosk.
    TERMINAL = "terminal"


class SessionStart(enum.StrEnum):
    """How a server instance starts its sessions."""

    #: A new token gets a login screen; the session runs as the user who logs in, started by the
    #: session launcher (wrsessd) after PAM.
    LOGIN = "login"
    #: No login: every session runs ``session_command`` as the server's own user.
    COMMAND = "command"


class UsbAction(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class VideoCodec(enum.StrEnum):
    H264 = "h264"


# --- servers.toml ----------------------------------------------------------------------------------


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
        "Target video bit rate per session, in bit/s.",
        not_yet="the encoder has no bit-rate target yet: it encodes at a constant quality (x264's CRF)",
    )
    zstd_level: int = setting(
        3,
        Integer(1, 22),
        "zstd compression level of lossless tiles.",
        not_yet="the encoder picks its levels itself, a slower one for small regions such as typed "
        "text and a fast one for large or photo-like regions, and does not read this value yet",
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
    policy: str = setting("default", INSTANCE_NAME, "Name of the session policy (policies.toml) it applies.")
    pool: str = setting(
        "",
        POOL_NAME,
        'Server pool it joins and announces over mDNS; "" joins none.',
        not_yet="wrsrvd does not announce itself over mDNS yet (the pool is only recorded, and kept as a "
        "property of the SMF instance); viewers find servers through client.toml's `servers`",
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
    #: The table's name (``lab`` in ``[server.lab]``); set by the loader.
    name: str = ""


# --- policies.toml ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyConfig:
    """One ``[policy.<name>]`` table. A policy named ``default`` always exists."""

    detached_timeout: timedelta | None = setting(
        timedelta(hours=24),
        Duration(allow_never=True),
        "How long a session with no client attached is kept before it is logged out.",
    )
    untouched_timeout: timedelta | None = setting(
        timedelta(minutes=10),
        Duration(allow_never=True, minimum=1),
        "A session that never received input (no key, click or scroll since it started: typically "
        "opened by a stranger or a script) ends this long after its viewer left, instead of after "
        "`detached_timeout`; a login screen nobody typed into ends this long after it started, even "
        "while shown. A login makes a session count as used.",
    )
    idle_logout: timedelta | None = setting(
        None,
        Duration(allow_never=True, minimum=60),
        "Log out a session that had no input for this long, attached or not.",
    )
    reauth_on_reattach: bool = setting(
        True,
        Bool(),
        "Ask for the password again when a session is re-attached at another client (badge moved).",
    )
    max_sessions_per_user: int = setting(
        1, Integer(0, 1000), "Most sessions one user may have on a server; 0 = no limit."
    )
    clipboard: ClipboardDirection = setting(
        ClipboardDirection.BOTH,
        Choice(ClipboardDirection),
        "Which way the clipboard may flow between session and client.",
    )
    audio: bool = setting(
        True,
        Bool(),
        "Forward session audio to the client.",
        not_yet="audio forwarding does not exist yet: sessions have no sound on the client either way",
    )
    tokens: tuple[SessionTokenKind, ...] = setting(
        (SessionTokenKind.BADGE, SessionTokenKind.TERMINAL),
        ListOf(Choice(SessionTokenKind), min_items=1),
        'Token kinds accepted for sessions: "badge" (the session follows the badge) and "terminal" '
        "(no badge: the session belongs to the kiosk).",
        list_rule=ListRule.REPLACE,
    )
    name: str = ""


# --- usb.toml --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsbRule:
    """One ``[[usb.rule]]``: absent match keys match anything."""

    action: UsbAction = required(Choice(UsbAction), "What to do with a matching device.")
    vendor: int | None = setting(None, UsbId(16), "Vendor id (`idVendor`, as lsusb shows it).")
    product: int | None = setting(None, UsbId(16), "Product id (`idProduct`); needs `vendor`.")
    class_: int | None = setting(
        None, UsbId(8), "Device or interface class (0x03 HID, 0x08 mass storage, ...).", key="class"
    )
    subclass: int | None = setting(None, UsbId(8), "Subclass; needs `class`.")
    protocol: int | None = setting(None, UsbId(8), "Protocol; needs `subclass`.")
    users: tuple[str, ...] = setting(
        (),
        ListOf(Principal()),
        'Whom the rule applies to: user names and "@group"s. Empty: everyone.',
        list_rule=ListRule.REPLACE,
    )
    comment: str = setting("", String(), "Free text for people reading the rules and the logs.")

    @staticmethod
    def check_record(values: Mapping[str, object]) -> list[tuple[str, str]]:
        """Problems of one rule as (key, message); called by the loader with the rule's values."""
        out = []
        for key, needs in (("product", "vendor"), ("subclass", "class"), ("protocol", "subclass")):
            if values.get(key) is not None and values.get(needs) is None:
                out.append(
                    (key, f"{key!r} needs {needs!r}: a {key} id only means something with its {needs}")
                )
        return out

    @property
    def matches_everything(self) -> bool:
        ids = (self.vendor, self.product, self.class_, self.subclass, self.protocol)
        return all(v is None for v in ids) and not self.users

    def matches(self, device: UsbDevice, user: str, groups: frozenset[str] = frozenset()) -> bool:
        if self.users and user not in self.users and not any(f"@{g}" in self.users for g in groups):
            return False
        if self.vendor is not None and device.vendor != self.vendor:
            return False
        if self.product is not None and device.product != self.product:
            return False
        if self.class_ is None:
            return True
        return any(
            cls == self.class_
            and (self.subclass is None or sub == self.subclass)
            and (self.protocol is None or proto == self.protocol)
            for cls, sub, proto in device.classes
        )


@dataclass(frozen=True)
class UsbDevice:
    """What a client reports about a USB device it could forward."""

    vendor: int
    product: int
    #: (class, subclass, protocol) of the device descriptor (unless 0: "see interfaces") and of every
    #: interface. A rule's class matches if any of them matches, as in SPICE's usbredir filters.
    classes: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class UsbDecision:
    action: UsbAction
    #: Index of the rule that decided, or None when the default did.
    rule: int | None


@dataclass(frozen=True)
class UsbConfig:
    default: UsbAction = setting(
        UsbAction.DENY, Choice(UsbAction), "What happens to a device no rule matches."
    )
    rules: tuple[UsbRule, ...] = records(
        UsbRule,
        "Ordered rules; the first rule that matches a device decides. Rules from drop-ins are "
        "appended in drop-in order; `rule = []` in a drop-in clears the rules before it.",
        key="rule",
    )

    def decide(self, device: UsbDevice, user: str, groups: frozenset[str] = frozenset()) -> UsbDecision:
        """First matching rule wins; no match: the default."""
        for i, rule in enumerate(self.rules):
            if rule.matches(device, user, groups):
                return UsbDecision(rule.action, i)
        return UsbDecision(self.default, None)


# --- session.toml ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionConfig:
    """Session defaults; a user's ``~/.config/wayray/session.toml`` overrides them key by key."""

    window_manager: tuple[str, ...] = setting(
        (), Command(), 'Window manager client to start; "" uses the compositor\'s built-in one.'
    )
    panel: tuple[str, ...] = setting((), Command(), 'Panel or bar to start; "" for none.')
    launcher: tuple[str, ...] = setting((), Command(), 'Application launcher to start; "" for none.')
    notifications: tuple[str, ...] = setting((), Command(), 'Notification daemon to start; "" for none.')
    autostart: tuple[tuple[str, ...], ...] = setting(
        (),
        ListOf(Command()),
        "Further programs started with every session, in order.",
        list_rule=ListRule.APPEND,
    )
    environment: Mapping[str, str] = setting(
        MappingProxyType({}),
        Environment(),
        "Environment variables for every program of the session; merged variable by variable.",
    )


# --- host.toml -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostConfig:
    state_dir: PurePosixPath = setting(
        PurePosixPath("/var/lib/wayray"),
        AbsPath(),
        "Persistent state: one directory per server instance (session registry, TLS identity). "
        "With systemd it must be below /var/lib (the units use `StateDirectory=`).",
        applies=frozenset({Applies.RESTART, Applies.UNIT}),
    )
    runtime_dir: PurePosixPath = setting(
        PurePosixPath("/run/wayray"),
        AbsPath(),
        "Sockets and other runtime files. With systemd it must be below /run (`RuntimeDirectory=`).",
        applies=frozenset({Applies.RESTART, Applies.UNIT, Applies.LAUNCHER}),
    )
    greeter_user: str = setting(
        "wayray-greeter",
        UserName(),
        "Unprivileged user the login screen (wrlogin) runs as.",
        applies=Applies.LAUNCHER,
    )
    pam_service: str = setting(
        "wayray",
        String(
            r"[A-Za-z0-9_.-]{1,64}",
            "PAM service names use letters, digits, '.', '_' and '-'",
            name="PAM service name",
        ),
        "PAM service (`/etc/pam.d/<name>`) used to authenticate and open sessions.",
        applies=Applies.LAUNCHER,
    )
    greeter_pam_service: str = setting(
        "wayray-greeter",
        String(
            r"|[A-Za-z0-9_.-]{1,64}",
            "PAM service names use letters, digits, '.', '_' and '-'",
            name='PAM service name, or ""',
        ),
        "PAM service of the login screen's own sessions (account and session stacks only; it must not "
        'ask anything). "" runs login screens without PAM (no logind session for them).',
        applies=Applies.LAUNCHER,
    )
    launcher_socket: PurePosixPath = setting(
        DERIVED,
        AbsPath(),
        "Socket of the session launcher (wrsessd); the systemd socket unit listens on it.",
        derived="`<runtime_dir>/wrsessd.sock`",
        applies=frozenset({Applies.LAUNCHER, Applies.RESTART, Applies.UNIT}),
    )
    admin_socket: str = setting(
        "",
        String(
            r"|/.*\{instance\}.*",
            'an absolute path containing "{instance}"',
            name='absolute path containing "{instance}"',
        ),
        'Admin socket of each server instance; "{instance}" is replaced by the instance name.',
        derived="`<runtime_dir>/{instance}/admin.sock`",
        applies=Applies.RESTART,
    )

    def admin_socket_for(self, instance: str) -> PurePosixPath:
        return PurePosixPath(self.admin_socket.replace("{instance}", instance))


# --- client.toml -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadgeReaderSettings:
    vendor: int | None = setting(
        None,
        UsbId(16),
        'USB vendor id of a keyboard-wedge badge reader (found through udev); "*": no USB reader.',
    )
    product: int | None = setting(None, UsbId(16), 'USB product id of the badge reader; "*" for any.')
    removal_sequence: str = setting(
        "",
        String(max_length=256),
        "What the USB reader types when a card is taken out, for readers that can be set to say so: "
        'that line removes the badge instead of presenting one. "": the reader cannot tell.',
    )
    repeat_removes: bool = setting(
        False,
        Bool(),
        "Presenting the badge that is in again removes it (tap-in, tap-out RFID readers).",
    )
    file: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "A file a badge-reader program writes the inserted badge's ID to (deleted or emptied when the "
        "badge is taken out). Used instead of a USB reader.",
    )
    socket: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "A Unix socket wrclient listens on (mode 0600) for a badge-reader program's `insert ID` and "
        "`remove` lines. Used instead of a USB reader.",
    )


@dataclass(frozen=True)
class ClientTLSSettings:
    cert: PurePosixPath | None = setting(
        None, AbsPath(optional=True), "Client certificate (PEM) for servers that require mutual TLS."
    )
    key: PurePosixPath | None = setting(None, AbsPath(optional=True), "Private key of that certificate.")
    ca: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "CA bundle (PEM) that server certificates must chain to: a server is accepted only when its "
        "certificate is issued by one of these CAs (with intermediates the server sends), is valid now "
        "and names the host or address wrclient dialled (subjectAltName), and no known-hosts file is "
        'kept. `--ca FILE` overrides it. `""` (the default): pinned `fingerprints`, or trust on first '
        "use.",
    )


@dataclass(frozen=True)
class ClientConfig:
    """The thin client (kiosk) side: which servers to use and how to trust them."""

    servers: tuple[str, ...] = setting(
        (),
        ListOf(ServerAddress()),
        "Servers to use (port 7100 unless given) when wrclient's command line names none: the first, "
        "or else the first of the others, in order, that answers (a refusal, such as an identity "
        "that is not trusted, does not move on); reconnecting starts with the server that answered "
        "last. Empty: wrclient needs a server on its command line (discovering servers "
        "over mDNS does not exist yet).",
        list_rule=ListRule.REPLACE,
    )
    pool: str = setting(
        "",
        POOL_NAME,
        'Only use servers of this pool when discovering over mDNS; "" uses any.',
        not_yet="wrclient does not discover servers over mDNS yet",
    )
    fingerprints: tuple[str, ...] = setting(
        (),
        ListOf(Fingerprint()),
        "Pinned server certificate fingerprints: a server must present one of them (`--fingerprint` "
        "overrides the list). Empty: trust on first use (a known-hosts file), unless `tls.ca` is set; "
        "with `tls.ca` as well, both must hold.",
        list_rule=ListRule.REPLACE,
    )
    kiosk: bool = setting(
        False,
        Bool(),
        'Kiosk mode: full screen with nothing to close or escape to, a "present your badge" screen '
        "while no session is shown; a badge going in attaches its session, taking it out detaches it; "
        "the connection is retried for ever.",
    )
    access_key_file: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "File holding the access key of servers that require one (their `admission.access_key_file`, "
        "or what `wrsrvd --standalone` prints); keep it mode 0600. `--access-key-file` overrides it.",
    )
    tls: ClientTLSSettings = table(ClientTLSSettings, "Client-side TLS.")
    badge: BadgeReaderSettings = table(
        BadgeReaderSettings,
        "Where badges come from: a USB keyboard-wedge reader (vendor/product), a file or a socket a "
        "badge-reader program writes to. None: the kiosk presents its own identity.",
    )


FILES: tuple[FileSpec, ...] = (
    FileSpec(
        "servers.toml",
        "server",
        Shape.NAMED,
        ServerConfig,
        "One `[server.<name>]` table per server instance; each becomes `wrsrvd@<name>.service` "
        "(systemd) or `svc:/application/wayray/wrsrvd:<name>` (SMF).",
        used_by="wrsrvd, the generator, wradm",
        readers=frozenset({"wrsrvd"}),
    ),
    FileSpec(
        "policies.toml",
        "policy",
        Shape.NAMED,
        PolicyConfig,
        "Named session policies; a server applies the one its `policy` names. A policy named "
        "`default` exists even when no file defines it (with the defaults below).",
        used_by="wrsrvd",
        readers=frozenset({"wrsrvd"}),
    ),
    FileSpec(
        "usb.toml",
        "usb",
        Shape.SINGLE,
        UsbConfig,
        "Which USB devices a client may forward into a session: ordered rules, first match wins, "
        "and an explicit default.",
        used_by="wrsrvd",
        readers=frozenset({"wrsrvd"}),
        not_yet="USB forwarding does not exist yet: the rules are read and checked (`wradm check`), and "
        "no device is forwarded whatever they say",
    ),
    FileSpec(
        "session.toml",
        "session",
        Shape.SINGLE,
        SessionConfig,
        "What a user's session starts. A user's own `~/.config/wayray/session.toml` overrides these "
        "defaults key by key (its arrays replace, its environment merges).",
        used_by="wrsessd",
        readers=frozenset({"wrsessd"}),
        applies=Applies.NEXT_SESSION,
    ),
    FileSpec(
        "host.toml",
        "host",
        Shape.SINGLE,
        HostConfig,
        "Settings of the machine as a whole.",
        used_by="every daemon, the generator, wradm",
        readers=frozenset({"wrsrvd", "wrsessd"}),
        applies=Applies.RESTART,
    ),
    FileSpec(
        "client.toml",
        "client",
        Shape.SINGLE,
        ClientConfig,
        "The thin-client side (wrclient on a kiosk).",
        used_by="wrclient",
        readers=frozenset({"wrclient"}),
        applies=Applies.CLIENT,
    ),
)

FILES_BY_NAME = {f.name: f for f in FILES}
#: The files each daemon reads (its start-up check judges only these).
READS: dict[str, frozenset[str]] = {
    program: frozenset(f.name for f in FILES if program in f.readers)
    for program in ("wrsrvd", "wrsessd", "wrclient")
}
SERVER_FILES = READS["wrsrvd"]
FILES_BY_TABLE = {f.table: f for f in FILES}
