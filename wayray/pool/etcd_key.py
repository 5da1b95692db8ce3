"""The pool token key's check with an etcd directory (docs/pools.md §3.3): the keyed digest a member
proves its key with, and how a key check record's maker is told to an operator. The bytes of a key
never leave :class:`KeyCheck`."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The fixed, versioned label whose keyed digest is the pool token key's check (docs/pools.md §3.3).
KEY_CHECK_LABEL = "wayray-pool-etcd-key-check/1"
#: The key check record's format.
KEY_CHECK_VERSION = 1


@dataclass(frozen=True)
class KeyCheck:
    """The pool token key this member digests badges with (``file`` says where it came from, for
    messages; the bytes never leave this object), and the key it replaced in a rotation."""

    key: bytes = field(repr=False)
    file: Path
    previous: bytes | None = field(default=None, repr=False)

    def digest(self, pool: str, key: bytes | None = None) -> str:
        """HMAC-SHA256 of the label and the pool's name under ``key`` (the current key by default)."""
        label = f"{KEY_CHECK_LABEL}\0{pool}".encode()
        return hmac.new(self.key if key is None else key, label, hashlib.sha256).hexdigest()

    def previous_digest(self, pool: str) -> str | None:
        return None if self.previous is None else self.digest(pool, self.previous)


def same(a: object, b: str | None) -> bool:
    return isinstance(a, str) and b is not None and hmac.compare_digest(a.encode(), b.encode())


def maker(record: dict[str, Any]) -> str:
    """Who made a key check record, and when, for an operator (the record's own words, cut short)."""
    names = [_printable(record[f]) for f in ("name", "host") if isinstance(record.get(f), str)]
    ident = _printable(str(record.get("member")))[:16]
    who = f"member {names[0]} ({', '.join([*names[1:], 'id ' + ident])})" if names else f"member {ident}"
    return f"{who} at {_when(record.get('since'))}"


def _printable(text: str) -> str:
    return "".join(c for c in text[:64] if c.isprintable())


def _when(since: object) -> str:
    if not isinstance(since, (int, float)) or isinstance(since, bool):
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
