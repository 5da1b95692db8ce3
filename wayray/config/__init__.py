"""Configuration model: schema of every TOML file, layering, drop-ins, provenance, file:line:col errors.

Public API (what the daemons use)::

    from wayray import config
    cfg = config.load()                    # or load(root=Path(...)); raises config.ConfigError
    cfg = config.load(instance="lab")      # only errors of what server "lab" reads count
    server = cfg.server("lab")             # ServerConfig; UnknownInstance if not configured
    policy = cfg.policy_for(server)        # PolicyConfig
    cfg.usb.decide(UsbDevice(...), user)   # UsbDecision: first matching rule wins
    session, problems = config.load_user_session(cfg.session, user_toml_bytes)

``load_report()`` never raises for configuration problems and returns every diagnostic; ``wradm
check`` and the systemd generator use it. Standard library only: the generator imports this
package at boot, and illumos must not need native wheels.
"""

from wayray.config.diagnostics import ConfigError, Diagnostic, Origin, Severity
from wayray.config.loader import Config, LoadResult, UnknownInstance, load, load_report, load_user_session
from wayray.config.model import (
    DEFAULT_PORT,
    FILES,
    AdmissionSettings,
    AudioPolicy,
    BadgeReaderSettings,
    ClientConfig,
    ClientTLSSettings,
    ClipboardDirection,
    EncoderSettings,
    HostConfig,
    LimitSettings,
    OutputSettings,
    PolicyConfig,
    ServerConfig,
    SessionConfig,
    SessionStart,
    SessionTokenKind,
    TLSSettings,
    UsbAction,
    UsbConfig,
    UsbDecision,
    UsbDevice,
    UsbRule,
    VideoCodec,
)

__all__ = [
    "AdmissionSettings",
    "AudioPolicy",
    "DEFAULT_PORT",
    "FILES",
    "BadgeReaderSettings",
    "ClientConfig",
    "ClientTLSSettings",
    "ClipboardDirection",
    "Config",
    "ConfigError",
    "Diagnostic",
    "EncoderSettings",
    "HostConfig",
    "LimitSettings",
    "LoadResult",
    "Origin",
    "OutputSettings",
    "PolicyConfig",
    "ServerConfig",
    "SessionConfig",
    "SessionStart",
    "Severity",
    "TLSSettings",
    "SessionTokenKind",
    "UnknownInstance",
    "UsbAction",
    "UsbConfig",
    "UsbDecision",
    "UsbDevice",
    "UsbRule",
    "VideoCodec",
    "load",
    "load_report",
    "load_user_session",
]
