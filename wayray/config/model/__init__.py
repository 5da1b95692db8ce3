"""The configuration schema: every file, table and setting WayRay reads, declared once.

The frozen dataclasses of this package's modules, one module per file (``servers.toml`` in
:mod:`.servers`, ...), are both the schema (each field's ``setting(...)`` carries its TOML key, type,
default and help) and the typed values the daemons receive from :func:`wayray.config.load`. This
module lists the files (:data:`FILES`) and gives every name of the schema one import path.
``docs/configuration.md`` is generated from it (``python -m wayray.config.reference``).
"""

from wayray.config.model.client import BadgeReaderSettings, ClientConfig, ClientTLSSettings
from wayray.config.model.common import (
    DEFAULT_PORT,
    DERIVED,
    INSTANCE_NAME,
    NAME_PATTERN,
    NAME_RULE,
    POOL_NAME,
)
from wayray.config.model.host import HostConfig
from wayray.config.model.policies import AudioPolicy, ClipboardDirection, PolicyConfig, SessionTokenKind
from wayray.config.model.servers import (
    AdmissionSettings,
    EncoderSettings,
    LimitSettings,
    OutputSettings,
    PeerSettings,
    ServerConfig,
    SessionStart,
    TLSSettings,
    VideoCodec,
)
from wayray.config.model.session import SessionConfig
from wayray.config.model.usb import UsbAction, UsbConfig, UsbDecision, UsbDevice, UsbRule
from wayray.config.model.web import DEFAULT_WEB_PORT, WebSettings
from wayray.config.schema import Applies, FileSpec, Shape

__all__ = [
    "AdmissionSettings",
    "AudioPolicy",
    "BadgeReaderSettings",
    "ClientConfig",
    "ClientTLSSettings",
    "ClipboardDirection",
    "DEFAULT_PORT",
    "DEFAULT_WEB_PORT",
    "DERIVED",
    "EncoderSettings",
    "FILES",
    "FILES_BY_NAME",
    "FILES_BY_TABLE",
    "HostConfig",
    "INSTANCE_NAME",
    "LimitSettings",
    "NAME_PATTERN",
    "NAME_RULE",
    "OutputSettings",
    "POOL_NAME",
    "PeerSettings",
    "PolicyConfig",
    "READS",
    "SERVER_FILES",
    "ServerConfig",
    "SessionConfig",
    "SessionStart",
    "TLSSettings",
    "SessionTokenKind",
    "UsbAction",
    "UsbConfig",
    "UsbDecision",
    "UsbDevice",
    "UsbRule",
    "VideoCodec",
    "WebSettings",
]

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
        "Which USB devices a client may forward into a session: ordered rules, first match wins "
        "for each of a device's functions, and an explicit default. wrsrvd judges what kiosks offer "
        "(and judges again after a reload); a kiosk with `usb = true` in client.toml judges with its "
        "own copy what it offers (docs/usb.md).",
        used_by="wrsrvd, wrclient",
        readers=frozenset({"wrsrvd", "wrclient"}),
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
