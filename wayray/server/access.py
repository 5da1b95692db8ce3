"""The access key: a shared secret a viewer presents (in its TLS-protected Hello) before a server that
requires one starts anything for it.

A token is not authentication: it names a session, and any new token gets a new session (a login
screen, or, with ``sessions = "command"`` and in standalone mode, a session running the server's
command as the server's user). So a server that does not ask for a password needs something else,
wherever it listens (on loopback, every user of the machine reaches it, and a UDP datagram does not
say which): the access key (``admission.access_key_file``, and what every ``wrsrvd --standalone``
uses), or client certificates (``tls.client_ca``). wrclient presents its user's own standalone
server's key by itself, to that server only (``wayray.transport.client.OwnServerKey``).

The key lives in a file of the server's user (mode 0600), made with 32 random bytes on first start,
so that a restart keeps it and the viewers that have it. It is compared in constant time and never
logged (the standalone banner shows it, on the terminal that started the server: that is how the
person who started it learns it).
"""

from __future__ import annotations

import errno
import hmac
import os
import secrets
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.common.files import read_private_file, write_atomic

#: Shortest key accepted from a file someone wrote by hand.
MIN_KEY_CHARS = 16
#: Longest key (what the wire's Hello carries).
MAX_KEY_CHARS = 256


def load_or_create(path: Path) -> str:
    """The access key in ``path``, made (random, mode 0600) if the file does not exist."""
    try:
        if not os.path.lexists(path):
            # Whole or not at all (no empty key on a full disk: the next start makes it again).
            write_atomic(path, (secrets.token_urlsafe(32) + "\n").encode(), exclusive=True)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise WayRayError(
                f"{path}: cannot write the access key: {err.strerror or err}",
                hint=f"free space on the file system of {path.parent} (df -h {path.parent}), then start "
                "wrsrvd again",
            ) from None
        raise WayRayError(
            f"{path}: cannot create the access key file: {err.strerror}",
            hint="create it yourself (one line, at least 16 characters; mode 0600, owned by the server's "
            "user), or name a file in a directory the server may write",
        ) from None
    try:
        raw = read_private_file(
            path,
            "the access key",
            leaked_hint="make a new key (delete the file and restart) and give it to the viewers again",
            owner="the server's user",
            owner_hint="it must belong to the user wrsrvd runs as (chown it)",
            limit=MAX_KEY_CHARS + 64,
        )
    except FileNotFoundError:
        raise WayRayError(f"{path}: the access key file vanished while it was read") from None
    try:
        key = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise WayRayError(f"{path}: the access key is not UTF-8 text") from None
    if not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS or any(c.isspace() for c in key):
        raise WayRayError(
            f"{path}: the access key must be one word of {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters",
            hint="delete the file and restart: a random key is made",
        )
    return key


def matches(expected: str, presented: str) -> bool:
    """Whether the viewer presented the key, compared in constant time."""
    return hmac.compare_digest(expected.encode(), presented.encode())
