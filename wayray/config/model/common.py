"""What the files share: names that become unit, instance and DNS names; the default port; the
placeholder of defaults derived from other settings."""

from __future__ import annotations

from pathlib import PurePosixPath

from wayray.config.types import String

#: Server and policy names: they become systemd instance names (``wrsrvd@NAME``) and SMF instance
#: names (``svc:/application/wayray/wrsrvd:NAME``), so they keep to characters both accept verbatim.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
NAME_RULE = "names start with a letter and use letters, digits, '_' and '-' (at most 64 characters)"
INSTANCE_NAME = String(
    NAME_PATTERN, NAME_RULE, name="name (letters, digits, '_', '-'; starts with a letter)"
)
#: Pool names ("" = none) become the mDNS subtype ``_<pool>._sub._wayray._udp``.
POOL_PATTERN = r"|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
POOL_RULE = "pool names are DNS labels: lowercase letters, digits and inner '-', at most 63 characters"
POOL_NAME = String(POOL_PATTERN, POOL_RULE, name='pool name (a DNS label such as "lab"), or ""')

#: Placeholder for defaults computed from other settings (see ``derived=``); never seen by users.
DERIVED = PurePosixPath("<derived>")

DEFAULT_PORT = 7100
