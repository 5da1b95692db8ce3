"""The pool's session directory: which member holds the session of a token (docs/pools.md, §3).

Backends implement :class:`Directory`. Two properties every backend keeps, and the conformance tests
(``tests/pool/test_directory.py``) check for each:

- ``claim`` is atomic: of any number of claims of one digest, exactly one wins while its entry lives;
  every other gets the winner's entry.
- Every entry is bound to a lease; a lease that is not kept alive expires, and all entries bound to it
  go with it (a dead member's sessions leave the directory within the lease's TTL).

Tokens never reach a directory: only the registry's keyed digests (``wayray.server.tokens``) made
with the pool's token key. :class:`LocalDirectory` is the in-process backend: the one a LAN pool's
home member keeps for the digests it is home for, and the one single-member pools and tests use.
"""

from __future__ import annotations

import asyncio
import enum
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

#: A token digest as the registry makes it: 64 lowercase hex digits (HMAC-SHA256).
DIGEST = re.compile(r"[0-9a-f]{64}")
#: A member id (``<state_dir>/server.id``): 16 lowercase hex digits.
MEMBER_ID = re.compile(r"[0-9a-f]{16}")


class DirectoryError(Exception):
    """The directory cannot answer now (its store is unreachable, a request was refused)."""


class LeaseExpired(DirectoryError):
    """The lease is gone (not kept alive in time, or revoked): its entries are gone too."""


class EntryState(enum.StrEnum):
    #: Placement promised the token to ``member``, which has not started the session yet.
    PENDING = "pending"
    #: ``member`` runs the session ``session_id``.
    SESSION = "session"


@dataclass(frozen=True)
class Member:
    """A pool member as the directory knows it."""

    id: str
    #: The instance name (``lab-a``), for operators.
    name: str
    host: str
    port: int
    fingerprint: str

    def __post_init__(self) -> None:
        if not MEMBER_ID.fullmatch(self.id):
            raise ValueError(f"a member id is 16 hex digits, not {self.id!r}")


@dataclass(frozen=True)
class Lease:
    """A member's lease: entries claimed under it live while it is kept alive."""

    id: str
    member: str
    ttl: float


@dataclass(frozen=True)
class Entry:
    digest: str
    member: str
    session_id: str
    state: EntryState = EntryState.SESSION
    #: When it was claimed (the directory's clock).
    claimed_at: float = 0.0
    #: A session entry: when its session started (wall clock, its member's); 0: not said. Of two
    #: members' sessions for one digest (a partition healed), the earlier wins (§3.2).
    since: float = 0.0

    def __post_init__(self) -> None:
        if not DIGEST.fullmatch(self.digest):
            raise ValueError("a token digest is 64 hex digits")


#: A pending entry's ``session_id`` when placement chose another member than the one that claimed.
PLACED = "placed:"


def placed_on(entry: Entry) -> str | None:
    """The member a pending placement is for (None: not a placement)."""
    if entry.state is EntryState.PENDING and entry.session_id.startswith(PLACED):
        return entry.session_id[len(PLACED) :]
    return None


def earlier(entry: Entry, held: Entry) -> bool:
    """Whether ``entry``, a session of another member than ``held``'s, wins a conflict over it: two
    sessions for one digest (made on both sides of a partition, or while two members disagreed about
    a home) — the one that started first, then the lower member id (docs/pools.md §3.2)."""
    return (
        entry.state is EntryState.SESSION
        and held.state is EntryState.SESSION
        and entry.member != held.member
        and entry.since > 0
        and held.since > 0
        and (entry.since, entry.member) < (held.since, held.member)
    )


@dataclass(frozen=True)
class Claim:
    """What a claim got: ``won``, and the entry that holds the digest now (ours when won)."""

    won: bool
    entry: Entry
    #: Won by taking over a placement made for this member (it must not place the session again).
    taken_over: bool = False


class Directory(Protocol):
    """The session directory of one pool. Every method may raise :class:`DirectoryError`."""

    async def join(self, member: Member, ttl: float) -> Lease:
        """A lease for ``member``'s entries, valid ``ttl`` seconds unless kept alive."""
        ...

    async def keep_alive(self, lease: Lease) -> None:
        """Renew the lease for another ``ttl``; :class:`LeaseExpired` when it is gone already."""
        ...

    async def lookup(self, digest: str) -> Entry | None:
        """The entry of ``digest`` (None: no member holds a session of that token)."""
        ...

    async def claim(self, entry: Entry, lease: Lease) -> Claim:
        """Atomically: record ``entry`` under ``lease`` if ``entry.digest`` has no entry, or if its
        entry is ours (same member: a pending entry turning into a session), or if it is a pending
        placement for ``entry.member`` (:func:`placed_on`: the member placement chose takes it over);
        else the holder's."""
        ...

    async def release(self, digest: str, lease: Lease) -> None:
        """Remove ``digest``'s entry if it is bound to ``lease`` (another member's stays)."""
        ...

    async def entries(self) -> list[Entry]:
        """Every live entry (``wradm sessions --pool``)."""
        ...

    async def members(self) -> list[Member]:
        """The members whose leases live (``wradm pool``)."""
        ...

    async def close(self) -> None: ...


@dataclass
class _LeaseState:
    lease: Lease
    member: Member
    expires: float
    digests: set[str]


class LocalDirectory:
    """The in-process directory: a dict and leases, atomic because every operation runs to its end
    without awaiting anything in between (one event loop). ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[str, _LeaseState] = {}
        self._entries: dict[str, tuple[Entry, str]] = {}  # digest -> (entry, lease id)

    def _expire(self) -> None:
        now = self._clock()
        for lease_id, state in list(self._leases.items()):
            if state.expires <= now:
                self._drop(lease_id)

    def _drop(self, lease_id: str) -> None:
        state = self._leases.pop(lease_id, None)
        if state is None:
            return
        for digest in state.digests:
            held = self._entries.get(digest)
            if held is not None and held[1] == lease_id:
                del self._entries[digest]

    def _live(self, lease: Lease) -> _LeaseState:
        self._expire()
        state = self._leases.get(lease.id)
        if state is None:
            raise LeaseExpired(f"the lease of member {lease.member} has expired")
        return state

    async def join(self, member: Member, ttl: float) -> Lease:
        if ttl <= 0:
            raise ValueError("a lease's ttl is positive")
        self._expire()
        lease = Lease(secrets.token_hex(8), member.id, ttl)
        self._leases[lease.id] = _LeaseState(lease, member, self._clock() + ttl, set())
        return lease

    async def keep_alive(self, lease: Lease) -> None:
        state = self._live(lease)
        state.expires = self._clock() + lease.ttl

    async def lookup(self, digest: str) -> Entry | None:
        self._expire()
        held = self._entries.get(digest)
        return None if held is None else held[0]

    async def claim(self, entry: Entry, lease: Lease) -> Claim:
        state = self._live(lease)
        if entry.member != lease.member:
            raise DirectoryError("an entry is claimed under its own member's lease")
        held = self._entries.get(entry.digest)
        conflict = held is not None and earlier(entry, held[0])
        if (
            held is not None
            and held[0].member != entry.member
            and placed_on(held[0]) != entry.member
            and not conflict
        ):
            return Claim(False, held[0])
        if held is not None and held[1] != lease.id:  # ours under an older lease, or a later session's
            self._leases[held[1]].digests.discard(entry.digest)
        claimed_at = held[0].claimed_at if held is not None and not conflict else self._clock()
        ours = replace(entry, claimed_at=claimed_at)
        self._entries[entry.digest] = (ours, lease.id)
        state.digests.add(entry.digest)
        taken = held is not None and held[0].member != entry.member and not conflict
        return Claim(True, ours, taken_over=taken)

    def revoke(self, lease: Lease) -> None:
        """End ``lease`` now, and every entry bound to it (its member is known to be gone)."""
        self._drop(lease.id)

    async def release(self, digest: str, lease: Lease) -> None:
        self._expire()
        held = self._entries.get(digest)
        if held is not None and held[1] == lease.id:
            del self._entries[digest]
            state = self._leases.get(lease.id)
            if state is not None:
                state.digests.discard(digest)

    async def entries(self) -> list[Entry]:
        self._expire()
        return [entry for entry, _ in self._entries.values()]

    async def members(self) -> list[Member]:
        self._expire()
        seen: dict[str, Member] = {}
        for state in self._leases.values():
            seen[state.member.id] = state.member
        return list(seen.values())

    async def close(self) -> None:
        self._leases.clear()
        self._entries.clear()


async def keep_alive_forever(directory: Directory, lease: Lease, *, every: float | None = None) -> None:
    """Renew ``lease`` every ttl/3 (or ``every``) until cancelled; a lease that expired anyway
    (the process was stopped for longer than its ttl) raises :class:`LeaseExpired` to the caller,
    who must join again and re-claim its sessions."""
    interval = every if every is not None else lease.ttl / 3
    while True:
        await asyncio.sleep(interval)
        await directory.keep_alive(lease)
