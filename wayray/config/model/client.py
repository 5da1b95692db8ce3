"""``client.toml``: the thin client (kiosk) side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from wayray.config.model.common import POOL_NAME
from wayray.config.schema import ListRule, setting, table
from wayray.config.types import AbsPath, Bool, Fingerprint, ListOf, ServerAddress, String, UsbId


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
        "last. With `pool`, they are tried after the pool's servers found over mDNS (networks without "
        "multicast, other subnets). Empty: wrclient needs a server on its command line, or a `pool`.",
        list_rule=ListRule.REPLACE,
    )
    pool: str = setting(
        "",
        POOL_NAME,
        "Find the servers of this pool over mDNS (wrsrvd's `pool`; docs/pools.md) when wrclient's "
        "command line names no server: no server address needs configuring. They are trusted only "
        "through `fingerprints` or `tls.ca`, one of which must be set (mDNS is not trust: anyone on the "
        'network can answer). A server found that way whose identity is not trusted is passed over. "": '
        "no discovery (`servers` only).",
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
    usb: bool = setting(
        False,
        Bool(),
        "Offer the USB devices plugged into this machine to the session it shows, as this machine's "
        "own usb.toml allows (the server's rules decide in the end; docs/usb.md). Its badge reader "
        "is never offered. `--usb`/`--no-usb` override it.",
    )
    play_audio: bool = setting(
        True,
        Bool(),
        "Kiosk mode: play the sound of the session shown through this machine's sound server "
        "(PulseAudio, or PipeWire's PulseAudio service, for the user wrclient runs as: its default "
        "sink), with `pacat` from pulseaudio-utils. A kiosk whose sound server does not answer logs "
        "so and shows its sessions without sound. false: the kiosk offers sessions no sound at all "
        "(a kiosk without loudspeakers; `--no-audio` does the same for one run). Outside kiosk mode "
        "wrclient plays sound only with `--play-audio` (docs/audio.md).",
    )
