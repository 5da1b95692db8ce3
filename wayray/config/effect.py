"""What a change needs to take effect, per running program: digests of the values each one reads,
split by what a change of them needs (``schema.Applies``: reload, restart, ...).

``wradm apply`` compares them with what the programs run with (a running wrsrvd reports its own in
``wradm status --json``; otherwise the record of the last apply) and then reloads what a reload
takes, restarts only what needs it, and leaves alone what systemd applies at ``daemon-reload`` or
what the next session reads. The per-key classification is declared in the schema
(``wayray/config/model/``) and printed in the reference (``docs/configuration.md``).

Standard library only: wrsrvd computes its own digests at start and at every reload.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from wayray.config.loader import Config
from wayray.config.model import FILES_BY_NAME, HostConfig, PolicyConfig, ServerConfig, UsbConfig
from wayray.config.schema import Applies, applied_settings


def jsonable(obj: Any) -> Any:
    """A typed configuration value as plain JSON data (for digests and records)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, _dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, PurePosixPath | Path):
        return str(obj)
    return obj


def digest(*parts: Any) -> str:
    blob = json.dumps([jsonable(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _values(
    into: dict[Applies, dict[str, Any]], table: str, record: type, obj: Any, only: Applies | None = None
) -> None:
    spec = FILES_BY_NAME[
        {
            ServerConfig: "servers.toml",
            PolicyConfig: "policies.toml",
            UsbConfig: "usb.toml",
            HostConfig: "host.toml",
        }[record]
    ]
    for item in applied_settings(record, frozenset({spec.applies})):
        for a in item.applies:
            if only is None or a is only:
                into.setdefault(a, {})[f"{table}.{item.key}"] = item.value(obj)


def server_values(config: Config, server: ServerConfig) -> dict[Applies, dict[str, Any]]:
    """What server instance ``server`` reads, by what a change of it needs."""
    out: dict[Applies, dict[str, Any]] = {}
    _values(out, "server", ServerConfig, server)
    _values(out, "policy", PolicyConfig, config.policy_for(server))
    _values(out, "usb", UsbConfig, config.usb)
    _values(out, "host", HostConfig, config.host, Applies.RESTART)
    return out


def server_digests(config: Config, server: ServerConfig) -> dict[str, str]:
    """``{"restart": ..., "reload": ...}``: digests of what needs a restart, and of what a reload
    takes, for one instance. Equal digests: nothing of that kind changed."""
    values = server_values(config, server)
    return {
        "restart": digest(values.get(Applies.RESTART, {})),
        "reload": digest(values.get(Applies.RELOAD, {})),
    }


def launcher_digest(config: Config) -> str:
    """What needs the session launcher restarted: host settings it reads at start (its socket, the
    login screen's user, the PAM services). session.toml is read for every new session."""
    out: dict[Applies, dict[str, Any]] = {}
    _values(out, "host", HostConfig, config.host, Applies.LAUNCHER)
    return digest(out.get(Applies.LAUNCHER, {}))
