"""Where wrclient keeps what it remembers: the terminal's own token and the servers it trusts.

- The *terminal token*: without ``--token``, a viewer presents its own identity (kind ``terminal``):
  32 random bytes made on first use, kept in ``$XDG_STATE_HOME/wayray/terminal-token`` (mode 0600), so
  the same machine finds its session again, as a Sun Ray without a badge did. Derived from it, the
  *terminal key* (:func:`terminal_key`), and from that and the server's certificate the *terminal id*
  that goes with every Hello, badge or not: the server tells kiosks apart by it (never by address:
  behind NAT many kiosks share one). Each server gets an id of its own; the token and the key stay here.
- The known-hosts file (trust on first use): ``$XDG_CONFIG_HOME/wayray/known_hosts``.
- The access key of servers that require one (``--access-key-file``), read by :func:`read_access_key`;
  without one, the key of the user's own standalone server (:func:`own_standalone_server`), which
  wrclient presents to that server only, on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.common.files import read_private_file, write_atomic
from wayray.common.xdg import config_home, standalone_access_key, standalone_certificate, state_home
from wayray.transport import OwnServerKey
from wayray.transport.identity import certificate_fingerprint


def default_known_hosts(env: dict[str, str] | None = None) -> Path:
    return config_home(env) / "known_hosts"


def terminal_token(path: Path | None = None) -> str:
    """This terminal's token, made (0600) on first use."""
    path = path or state_home() / "terminal-token"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.path.lexists(path):
            write_atomic(path, (secrets.token_hex(32) + "\n").encode(), exclusive=True)
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


def terminal_key(token: str) -> str:
    """This terminal's key for its identities: HMAC-SHA256 of ``wayray terminal key v2`` keyed with the
    terminal token, in hex. It never leaves the machine: a Hello carries what it derives for the
    server reached (``transport.identity.terminal_id_for``), and it gives the token away to nobody
    (the token opens the terminal's own session)."""
    return hmac.new(token.encode(), b"wayray terminal key v2", hashlib.sha256).hexdigest()


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


def own_standalone_server(env: dict[str, str] | None = None) -> OwnServerKey | None:
    """The access key of this user's own standalone server and its identity, from the default state
    directory where ``wrsrvd --standalone`` keeps them; None when there is none (no such server ever
    ran, or it keeps its state elsewhere). wrclient given no key presents it to that server only.

    The key must be this user's and private to them, as wrsrvd keeps it: one others may read, or one
    of another user's, is refused (a WayRayError), never presented. So is a certificate of another
    user's: whoever may replace it would have the key sent to a server of theirs."""
    path = standalone_access_key(env)
    try:
        raw = read_private_file(
            path,
            "the access key",
            leaked_hint="make a new key: delete the file and restart your standalone server (viewers "
            "you gave the key to need the new one)",
            owner="you",
            owner_hint="it is not your own standalone server's key: check $HOME and $XDG_STATE_HOME, or "
            "give wrclient the key you mean with --access-key-file",
            limit=1024,
        )
    except FileNotFoundError:
        return None
    try:
        key = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise WayRayError(f"{path}: the access key is not UTF-8 text") from None
    if not key or len(key) > 256 or any(c.isspace() for c in key):
        raise WayRayError(
            f"{path}: the access key must be one word of 1 to 256 characters",
            hint="delete it and restart your standalone server: a new random key is made",
        )
    cert = standalone_certificate(env)
    try:
        st = cert.lstat()
    except FileNotFoundError:
        return None  # the server never finished starting: there is nothing to present the key to
    except OSError as err:
        raise WayRayError(f"{cert}: cannot read your standalone server's identity: {err.strerror}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise WayRayError(
            f"{cert}: your standalone server's certificate is not a file of yours that only you may change",
            hint="delete the tls directory next to it and restart your standalone server (a new identity "
            "is made; viewers that pinned the old one must be told the new fingerprint)",
        )
    return OwnServerKey(fingerprint=certificate_fingerprint(cert), key=key)
