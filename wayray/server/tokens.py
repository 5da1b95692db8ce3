"""Session tokens: what a kiosk presents to find its session, kept as keyed hashes.

A token is a badge ID from a reader or, on a kiosk without one, the terminal's own identity (so a
readerless kiosk still gets a session of its own, as on Sun Ray). Tokens are secrets: wrsrvd keeps
only ``HMAC-SHA256(instance secret, kind ‖ token)``, compares in constant time, and logs a short
prefix of that digest — never the token.

Why a keyed hash and not scrypt/argon2: every badge-in looks a token up, and the target is well under
500 ms from badge to first frame, so the lookup must cost microseconds. The key is a per-instance
secret in its own 0600 file, so the SQLite registry alone (a backup, a copy attached to a bug report)
reveals nothing, not even for low-entropy badge IDs. An attacker who has both the key file and the
database can test guesses quickly; against that only the badge's own entropy helps, and a slow hash
would cost every login more than it would cost such an attacker.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.common.files import read_private_file, write_atomic
from wayray.config.model import SessionTokenKind

SECRET_BYTES = 32
MAX_TOKEN_BYTES = 1024
_DOMAIN = b"wayray-token-v1\0"
_KIOSK_DOMAIN = b"wayray-kiosk-v1\0"


@dataclass(frozen=True)
class TokenRef:
    """A token as wrsrvd stores it: its kind and the keyed digest (hex). Safe to log via ``short``."""

    kind: SessionTokenKind
    digest: str

    @property
    def short(self) -> str:
        """For logs and operators: the kind and 8 hex digits of the digest (not of the token)."""
        return f"{self.kind.value}:{self.digest[:8]}"

    @property
    def launcher_ref(self) -> str:
        """The reference wrsessd gets in its ``token`` fields (the digest; never the raw token)."""
        return self.digest

    def __str__(self) -> str:
        return self.short


class TokenHasher:
    """Turns presented tokens into :class:`TokenRef` with the instance's secret key."""

    def __init__(self, secret: bytes, previous: tuple[bytes, ...] = ()) -> None:
        """``previous``: keys the token key replaced, still accepted (docs/pools.md §3.3): a session
        recorded under one of them is found by its badge until the key is taken out of service."""
        for key in (secret, *previous):
            if len(key) < SECRET_BYTES:
                raise ValueError(f"the token secret must be at least {SECRET_BYTES} bytes")
        self._secret = secret
        self._previous = tuple(p for p in previous if p != secret)

    @classmethod
    def load_or_create(cls, path: Path, previous: tuple[Path, ...] = ()) -> TokenHasher:
        """The key in ``path`` (made if missing) and the previous keys in ``previous`` (which must
        exist: a previous key is one that was in use)."""
        return cls(
            load_or_create_secret(path), tuple(load_secret(p, "the previous token key") for p in previous)
        )

    def ref(self, kind: SessionTokenKind, token: str | bytes) -> TokenRef:
        return self._ref(self._secret, kind, token)

    def previous_refs(self, kind: SessionTokenKind, token: str | bytes) -> tuple[TokenRef, ...]:
        """The token's digests under the previous keys (newest first), to find sessions recorded
        before the key changed."""
        return tuple(self._ref(key, kind, token) for key in self._previous)

    @staticmethod
    def _ref(secret: bytes, kind: SessionTokenKind, token: str | bytes) -> TokenRef:
        raw = token.encode() if isinstance(token, str) else bytes(token)
        if not raw:
            raise ValueError("empty token")
        if len(raw) > MAX_TOKEN_BYTES:
            raise ValueError(f"token longer than {MAX_TOKEN_BYTES} bytes")
        mac = hmac.new(secret, _DOMAIN + kind.value.encode() + b"\0" + raw, hashlib.sha256)
        return TokenRef(kind, mac.hexdigest())

    def kiosk(self, terminal_id: str, client_subject: str | None = None) -> str | None:
        """The identity of a viewer's kiosk, keyed like tokens (``kiosk:`` and 32 hex digits): from its
        verified client certificate when it has one, else from its Hello's ``terminal_id``; None
        without either. Not from its address: behind NAT, every kiosk of a site has the same one."""
        if client_subject:
            raw = b"certificate\0" + client_subject.encode()
        elif terminal_id:
            raw = b"terminal\0" + terminal_id.encode()
        else:
            return None
        mac = hmac.new(self._secret, _KIOSK_DOMAIN + raw, hashlib.sha256)
        return f"kiosk:{mac.hexdigest()[:32]}"

    def matches(self, ref: TokenRef, kind: SessionTokenKind, token: str | bytes) -> bool:
        """Whether ``token`` is the one ``ref`` was made from, compared in constant time."""
        if kind is not ref.kind:
            return False
        return hmac.compare_digest(self.ref(kind, token).digest, ref.digest)


def load_or_create_secret(path: Path) -> bytes:
    """The instance's token key: 32 random bytes in ``path`` (mode 0600), created on first use.

    A key file readable by others is refused, not silently fixed: someone may already have copied it.
    """
    if not os.path.lexists(path):
        # Whole or not at all (a full disk leaves no key: the next start makes it); another wrsrvd
        # making it at the same moment wins, and both use its key.
        write_atomic(path, secrets.token_bytes(SECRET_BYTES), exclusive=True)
    return load_secret(path, "the token key")


def load_secret(path: Path, what: str) -> bytes:
    """A token key that exists (0600, the service user's), refused if others may read it."""
    if not os.path.lexists(path):
        raise WayRayError(
            f"{path}: {what} is missing",
            hint="copy the pool's previous key file here, or take it out of the configuration",
        )
    data = read_private_file(
        path,
        what,
        leaked_hint="delete it (every token then maps to a new session) and restart",
        owner="this service's user",
    )
    if len(data) < SECRET_BYTES:
        raise WayRayError(f"{path}: {what} is truncated ({len(data)} bytes)", hint="delete it and restart")
    return data
