"""Where wrclient keeps what it remembers: the terminal's own token and the servers it trusts.

- The *terminal token*: without ``--token``, a viewer presents its own identity (kind ``terminal``):
  32 random bytes made on first use, kept in ``$XDG_STATE_HOME/wayray/terminal-token`` (mode 0600), so
  the same machine finds its session again, as a Sun Ray without a badge did. Derived from it, the
  *terminal id* (:func:`terminal_id`) goes with every Hello, badge or not: the server tells kiosks
  apart by it (never by address: behind NAT many kiosks share one), and the token itself stays here.
- The known-hosts file (trust on first use): ``$XDG_CONFIG_HOME/wayray/known_hosts``.
- The access key of servers that require one (``--access-key-file``), read by :func:`read_access_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from wayray.common.errors import WayRayError


def state_home(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local/state"
    )
    return Path(base) / "wayray"


def config_home(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "wayray"


def default_known_hosts(env: dict[str, str] | None = None) -> Path:
    return config_home(env) / "known_hosts"


def terminal_token(path: Path | None = None) -> str:
    """This terminal's token, made (0600) on first use."""
    path = path or state_home() / "terminal-token"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WayRayError(
                f"{path}: the terminal token is readable by others (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"run: chmod 600 {path} (or delete it: the terminal then gets a new session)",
            )
        token = path.read_text().strip()
    except OSError as err:
        raise WayRayError(f"{path}: cannot keep the terminal's token: {err.strerror}") from None
    if not token:
        raise WayRayError(f"{path}: the terminal token is empty", hint="delete the file to make a new one")
    return token


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise WayRayError(f"{path}: cannot read the token: {err.strerror}") from None
    if not token:
        raise WayRayError(f"{path}: the token file is empty")
    return token


def terminal_id(token: str) -> str:
    """What a Hello carries as this terminal's identity: HMAC-SHA256 of ``wayray terminal id v1`` keyed
    with the terminal token, in hex. The same on every connection from this machine; it gives the
    token away to nobody (the token opens the terminal's own session)."""
    return hmac.new(token.encode(), b"wayray terminal id v1", hashlib.sha256).hexdigest()


def read_access_key(path: Path) -> str:
    """The access key in ``path`` (one word). A file others may read is refused: the key gives a
    session on the servers that require it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise WayRayError(f"{path}: cannot read the access key: {err.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WayRayError(
                f"{path}: the access key is readable by others (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"run: chmod 600 {path}",
            )
        raw = f.read(1024)
    try:
        key = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise WayRayError(f"{path}: the access key is not UTF-8 text") from None
    if not key or len(key) > 256 or any(c.isspace() for c in key):
        raise WayRayError(f"{path}: the access key must be one word of 1 to 256 characters")
    return key
