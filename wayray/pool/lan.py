"""The LAN pool's session directory, answered by the members themselves (docs/pools.md §3).

Each token digest has one *home* member, chosen by rendezvous (highest-random-weight) hashing of the
digest over the ids of the members alive now; the home decides every claim of that digest in its own
:class:`~wayray.pool.directory.LocalDirectory`, in one event loop, so of two claims at the same instant
exactly one wins. Members reach homes over the pool port (:mod:`wayray.pool.peers`, mutual TLS), hold a
lease at every other member (kept alive every ``ttl / 4``), and a member that stops answering is left
out of the homes within ``ttl``; the members then claim their own sessions again at their new homes
(:meth:`LanDirectory.home` changes, the owner notices: see ``wayray.server.pooling``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from wayray.pool.directory import (
    DIGEST,
    MEMBER_ID,
    Claim,
    DirectoryError,
    Entry,
    EntryState,
    Lease,
    LeaseExpired,
    LocalDirectory,
    Member,
)
from wayray.pool.peers import NotAMember, PeerClient, PeerError, RequestRefused

log = logging.getLogger("wayray.pool")

#: Seconds a member's lease lives without a keep-alive; its entries go with it (docs/pools.md §7).
LEASE_TTL = 4.0


@dataclass(frozen=True)
class Peer:
    """Another member, as discovery found it: who it is and where its pool port is."""

    member: Member
    pool_host: str
    pool_port: int


def _member_json(m: Member) -> dict[str, Any]:
    return asdict(m)


def _member_from(obj: Any) -> Member:
    if not isinstance(obj, dict):
        raise RequestRefused("malformed request: 'member' must be an object")
    try:
        port = obj["port"]
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("port")
        return Member(
            str(obj["id"]), str(obj["name"])[:64], str(obj["host"])[:255], port, str(obj["fingerprint"])[:80]
        )
    except (KeyError, ValueError) as err:
        raise RequestRefused(f"malformed request: 'member': {err}") from None


def _entry_json(e: Entry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"digest": e.digest, "member": e.member, "session_id": e.session_id, "state": e.state.value,
            "claimed_at": e.claimed_at, "since": e.since}  # fmt: skip


def _entry_from(obj: Any) -> Entry | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise PeerError("the answer's entry is not an object")
    try:
        return Entry(
            str(obj["digest"]),
            str(obj["member"]),
            str(obj["session_id"]),
            EntryState(obj["state"]),
            float(obj.get("claimed_at", 0.0)),
            float(obj.get("since", 0.0)),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise PeerError(f"the answer's entry is malformed: {err}") from None


def _digest(request: dict[str, Any]) -> str:
    digest = request.get("digest")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise RequestRefused("malformed request: 'digest' must be 64 hex digits")
    return digest


class LanDirectory:
    """The directory as one member of a LAN pool sees it; also answers the other members' requests
    for the digests it is home for (:meth:`handle`)."""

    def __init__(
        self,
        me: Member,
        client: PeerClient,
        *,
        ttl: float = LEASE_TTL,
        warmup: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``warmup``: seconds after start in which it decides no new claim (default: 3 x ``ttl``:
        the others must find it announced again, reach its pool port and re-claim at it)."""
        self.me = me
        self.client = client
        self.ttl = ttl
        self._clock = clock
        #: The digests this member is home for.
        self.local = LocalDirectory(clock)
        self._peers: dict[str, Peer] = {}
        #: When each peer last answered (member id → clock); a peer silent for ``ttl`` is not a home.
        self._answered: dict[str, float] = {}
        #: Leases of the other members in ``local`` (member id → lease), and whose certificate each is.
        self._leases: dict[str, Lease] = {}
        self._certificates: dict[str, str] = {}
        self._own: Lease | None = None
        #: When this member started: until ``warmup`` later it decides no new claim (see _ready).
        self._started = clock()
        self.warmup = 3 * ttl if warmup is None else warmup
        self._renewing: dict[str, asyncio.Task[None]] = {}
        #: Members that answered or asked over a connection that passed the members' key check.
        self._proven: set[str] = set()
        #: Called with a peer's id when it lost this member's lease: its entries there must be claimed again.
        self.on_lease_lost: Callable[[str], None] = lambda member: None

    # --- membership --------------------------------------------------------------------------------

    def set_peers(self, peers: list[Peer]) -> None:
        """The other members discovery sees now (this member left out)."""
        self._peers = {p.member.id: p for p in peers if p.member.id != self.me.id}
        now = self._clock()
        for member_id in self._peers:
            self._answered.setdefault(member_id, now)  # new: alive until it fails to answer

    def peer(self, member_id: str) -> Peer | None:
        return self._peers.get(member_id)

    def alive(self) -> list[str]:
        """Ids of the members that are homes now: this one and the peers that answered lately."""
        now = self._clock()
        live = [i for i in self._peers if now - self._answered.get(i, -1e9) <= self.ttl]
        return sorted([self.me.id, *live])

    def proven(self, member_id: str) -> bool:
        """Whether ``member_id`` has shown that it holds the pool's key (it answered this member, or
        asked it, over a connection that passed the members' key check): only such a member is a
        target of placement (docs/pools.md §5)."""
        return member_id in self._proven

    def home(self, digest: str) -> str:
        """The member that decides ``digest``'s claims (rendezvous hashing over :meth:`alive`)."""
        return max(self.alive(), key=lambda member: hashlib.sha256(f"{member}/{digest}".encode()).digest())

    def _dead(self, member_id: str, why: str) -> None:
        if self._answered.pop(member_id, None) is not None:
            log.warning(
                "pool: member %s does not answer (%s); its digests move to other homes", member_id, why
            )
        self._answered[member_id] = -1e9

    async def keep_alive_round(self) -> None:
        """Renew this member's leases at every peer (and its own); notes who answers."""
        if self._own is not None:
            try:
                await self.local.keep_alive(self._own)
            except LeaseExpired:
                self._own = await self.local.join(self.me, self.ttl)
        # Each peer on its own: one that does not answer (a request waits up to its timeout) must
        # not hold up the leases at the others.
        for member_id, peer in list(self._peers.items()):
            running = self._renewing.get(member_id)
            if running is None or running.done():
                self._renewing[member_id] = asyncio.get_running_loop().create_task(self._keep_alive(peer))
        waiting = [t for t in self._renewing.values() if not t.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=self.ttl / 4)

    async def _keep_alive(self, peer: Peer) -> None:
        try:
            answer = await self._ask(peer, {"type": "keep_alive"})
        except PeerError as err:
            self._dead(peer.member.id, str(err))
            return
        if answer.get("fresh"):
            self.on_lease_lost(peer.member.id)

    async def _ask(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        answer = await self.client.request(
            peer.pool_host, peer.pool_port, dict(request, member=_member_json(self.me))
        )
        self._answered[peer.member.id] = self._clock()
        self._proven.add(peer.member.id)
        return answer

    # --- the Directory interface --------------------------------------------------------------------

    async def join(self, member: Member, ttl: float) -> Lease:
        self._own = await self.local.join(member, ttl)
        return self._own

    async def keep_alive(self, lease: Lease) -> None:
        await self.local.keep_alive(lease)

    async def _at_home(self, digest: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """Ask ``digest``'s home (None: the home is this member); a home that does not answer is left
        out and the next one asked."""
        for _ in range(len(self._peers) + 1):
            home = self.home(digest)
            if home == self.me.id:
                return None
            peer = self._peers[home]
            try:
                return await self._ask(peer, request)
            except PeerError as err:
                # A peer that failed the members' key check is no member: left out like a dead one.
                quiet = "does not answer" in str(err) or "did not answer" in str(err)
                if not quiet and not isinstance(err, NotAMember):
                    raise DirectoryError(f"member {home} refused: {err}") from None
                self._dead(home, str(err))
        raise DirectoryError("no member of the pool answers")  # pragma: no cover - this one always does

    async def _own_lease(self, lease: Lease) -> Lease:
        """This member's lease in its own directory, made again if it lapsed (the keep-alive round
        renews it; a loop that was busy for longer than the ttl must not lose the claim)."""
        own = self._own if self._own is not None and self._own.id == lease.id else lease
        try:
            await self.local.keep_alive(own)
        except LeaseExpired:
            own = self._own = await self.local.join(self.me, self.ttl)
        return own

    def _ready(self, entry: Entry) -> None:
        """A member that just (re)started has an empty directory, while the other members still
        re-claim their sessions' digests at it (they do within a keep-alive round of seeing it
        answer, or of its answer that their lease is new). Until ``warmup`` has passed it takes those
        re-claims but decides no new claim: one decided now could give a badge whose session is on
        another member a second session here."""
        waited = self._clock() - self._started
        if entry.state is EntryState.PENDING and waited < self.warmup:
            raise DirectoryError(
                f"member {self.me.id} started {waited:.1f} s ago and is still taking the other members' "
                "entries; try again in a moment"
            )

    async def lookup(self, digest: str) -> Entry | None:
        answer = await self._at_home(digest, {"type": "lookup", "digest": digest})
        if answer is None:
            return await self.local.lookup(digest)
        return _entry_from(answer.get("entry"))

    async def claim(self, entry: Entry, lease: Lease) -> Claim:
        request = {"type": "claim", "digest": entry.digest, "session_id": entry.session_id,
                   "state": entry.state.value, "since": entry.since}  # fmt: skip
        answer = await self._at_home(entry.digest, request)
        if answer is None:
            self._ready(entry)
            return await self.local.claim(entry, await self._own_lease(lease))
        held = _entry_from(answer.get("entry"))
        if held is None:
            raise DirectoryError("the home answered a claim without an entry")
        return Claim(bool(answer.get("won")), held, taken_over=answer.get("taken_over") is True)

    async def release(self, digest: str, lease: Lease) -> None:
        if await self._at_home(digest, {"type": "release", "digest": digest}) is None:
            await self.local.release(digest, await self._own_lease(lease))

    async def entries(self) -> list[Entry]:
        found = list(await self.local.entries())
        for peer in list(self._peers.values()):
            try:
                answer = await self._ask(peer, {"type": "entries"})
            except PeerError:
                continue
            items = answer.get("entries")
            if isinstance(items, list):
                found += [e for e in (_entry_from(i) for i in items) if e is not None]
        return found

    async def members(self) -> list[Member]:
        alive = set(self.alive())
        return [self.me, *(p.member for i, p in self._peers.items() if i in alive)]

    async def close(self) -> None:
        for task in self._renewing.values():
            task.cancel()
        await self.client.close()

    # --- answering the other members ----------------------------------------------------------------

    async def handle(self, certificate: str, request: dict[str, Any]) -> dict[str, Any]:
        """A peer's request (``certificate``: its verified fingerprint). Refusals never say whether a
        digest has an entry beyond what the request type answers to a member."""
        member = _member_from(request.get("member"))
        if not MEMBER_ID.fullmatch(member.id) or member.id == self.me.id:
            raise RequestRefused("malformed request: 'member' is not another member's id")
        known = self._certificates.setdefault(member.id, certificate)
        if known != certificate:
            raise RequestRefused(f"member {member.id} belongs to another certificate")
        kind = request.get("type")
        self._answered[member.id] = self._clock()  # it asked: it is alive
        self._proven.add(member.id)  # its connection passed the key check (peers.PoolListener)
        lease, fresh = await self._lease_of(member)
        if kind == "keep_alive":
            return {"ok": True, "fresh": fresh}
        if kind == "lookup":
            return {"ok": True, "entry": _entry_json(await self.local.lookup(_digest(request)))}
        if kind == "claim":
            state = request.get("state")
            session_id = request.get("session_id")
            if state not in (EntryState.PENDING.value, EntryState.SESSION.value) or not isinstance(
                session_id, str
            ):
                raise RequestRefused("malformed request: 'state' and 'session_id'")
            since = request.get("since", 0.0)
            if isinstance(since, bool) or not isinstance(since, int | float) or not 0 <= since < 1e11:
                raise RequestRefused("malformed request: 'since' must be a time in seconds")
            entry = Entry(
                _digest(request), member.id, session_id[:64], EntryState(state), since=float(since)
            )
            try:
                self._ready(entry)
            except DirectoryError as err:
                raise RequestRefused(f"not ready: {err}") from None
            claim = await self.local.claim(entry, lease)
            return {
                "ok": True,
                "won": claim.won,
                "entry": _entry_json(claim.entry),
                "taken_over": claim.taken_over,
            }
        if kind == "release":
            await self.local.release(_digest(request), lease)
            return {"ok": True}
        if kind == "entries":
            return {"ok": True, "entries": [_entry_json(e) for e in await self.local.entries()]}
        raise RequestRefused(f"malformed request: unknown type {str(kind)[:32]!r}")

    async def _lease_of(self, member: Member) -> tuple[Lease, bool]:
        """The member's lease here, renewed (``True``: made afresh, its old entries here are gone)."""
        lease = self._leases.get(member.id)
        if lease is not None:
            try:
                await self.local.keep_alive(lease)
                return lease, False
            except LeaseExpired:
                pass
        lease = self._leases[member.id] = await self.local.join(member, self.ttl)
        return lease, True
