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
#: Seconds a home waits for the members to agree who is alive (and to claim their entries again
#: under it) before it decides new claims all the same, saying so: members that never agree (one
#: that hears only some of the others) must not keep every new badge out of the pool.
SETTLE_LIMIT = 30.0


class NotReady(DirectoryError):
    """The home cannot decide a new claim yet (the members are still finding each other): the same
    claim a moment later can; the badge's kiosk is asked to try again."""


@dataclass(frozen=True)
class Peer:
    """Another member, as discovery found it: who it is and where its pool port is."""

    member: Member
    pool_host: str
    pool_port: int


def rendezvous_home(members: list[str] | tuple[str, ...], digest: str) -> str:
    """The home rendezvous (highest-random-weight) hashing gives ``digest`` among the member ids
    ``members``: what every member computes over the members it sees alive (docs/pools.md §3.2)."""
    return max(members, key=lambda member: hashlib.sha256(f"{member}/{digest}".encode()).digest())


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
        settle_limit: float = SETTLE_LIMIT,
    ) -> None:
        """``warmup``: seconds after start in which it decides no new claim (default: 3 x ``ttl``:
        the others must find it announced again, reach its pool port and re-claim at it).
        ``settle_limit``: see :data:`SETTLE_LIMIT`."""
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
        #: The live members under which this member last claimed all its entries at their homes
        #: (:meth:`synced`), and a count of the leases it lost since (a claim made before is gone).
        self._synced: tuple[str, ...] | None = None
        self._lost = 0
        #: What each member said in its latest request: when, the members it sees alive, and whether
        #: it has claimed its entries at their homes under them (and its lease here held meanwhile).
        self._reports: dict[str, tuple[float, tuple[str, ...], bool]] = {}
        #: When the members last agreed (see :meth:`_unsettled`), and whether it said it gave up waiting.
        self.settle_limit = settle_limit
        self._settled_at = clock()
        self._gave_up = False
        #: A member heard from within this is taken to answer (a live one is, every keep-alive round).
        self.fresh = 1.5 * ttl / 4
        #: Called with a peer's id when this member finds it dead (a request to it went unanswered):
        #: its own entries must be claimed again under the members left, now rather than a round later.
        self.on_member_dead: Callable[[str], None] = lambda member: None
        #: Set whenever something that decides :meth:`settled` changed (a member's report, a member
        #: found dead, this member's entries claimed again): a claim waiting to be decided looks again.
        self.news = asyncio.Event()
        #: When the oldest word that keeps this member from settling now stops counting (clock time).
        self._recheck_at: float | None = None

    # --- membership --------------------------------------------------------------------------------

    def set_peers(self, peers: list[Peer]) -> None:
        """The other members discovery sees now (this member left out)."""
        self._peers = {p.member.id: p for p in peers if p.member.id != self.me.id}
        now = self._clock()
        for member_id in self._peers:
            self._answered.setdefault(member_id, now)  # new: alive until it fails to answer

    def peer(self, member_id: str) -> Peer | None:
        return self._peers.get(member_id)

    def heard_from(self, member_id: str, within: float) -> bool:
        """Whether ``member_id`` answered or asked this member within the last ``within`` seconds
        (a live member does both every keep-alive round)."""
        return self._clock() - self._answered.get(member_id, -1e9) <= within

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

    def refused_peers(self) -> dict[str, str]:
        """The members found that failed the members' key check when last dialled (member id → why,
        as logged): their pool token key is not this member's (docs/pools.md §3.3)."""
        found = {}
        for member_id, peer in self._peers.items():
            why = self.client.refusal(peer.pool_host, peer.pool_port)
            if why is not None:
                found[member_id] = why
        return found

    def refused_by_all(self) -> list[str]:
        """The members refusing this one when every member it found and dialled refuses it at the
        key check and none has passed it lately (empty otherwise): then it is this member whose key
        is likely not the pool's (certain when two or more refuse it; with one, either may be)."""
        refused = self.refused_peers()
        if any(m in self._proven and self.heard_from(m, self.ttl) for m in self._peers if m not in refused):
            return []
        return sorted(refused)

    def home(self, digest: str) -> str:
        """The member that decides ``digest``'s claims (rendezvous hashing over :meth:`alive`)."""
        return rendezvous_home(self.alive(), digest)

    def _dead(self, member_id: str, why: str) -> None:
        """A request to ``member_id`` went unanswered: it is no home any more, and the entries it
        holds here go now rather than when its lease runs out. Safe against a member that was only
        slow: its last word keeps this member from deciding new claims for a TTL (it said it sees
        this member alive, and this one no longer sees it: :meth:`_unsettled`), and when it speaks
        again its lease here is new, so it claims its entries here again before this one settles."""
        was_alive = self._answered.get(member_id, -1e9) > -1e9
        if was_alive:
            log.warning(
                "pool: member %s does not answer (%s); its digests move to other homes", member_id, why
            )
        self._answered[member_id] = -1e9
        # What it said last still counts until it is a TTL old: one request that went unanswered
        # does not prove it dead (under load it may only be slow), and while its word says it sees
        # other members than this one, no new claim is decided here (it may hold one of them).
        lease = self._leases.pop(member_id, None)
        if lease is not None:
            self.local.revoke(lease)
        self.news.set()
        if was_alive:
            self.on_member_dead(member_id)

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
        # Not for a member found dead (its request waits for its timeout): the round after one is
        # found dead comes at once, to claim this member's entries under the members left.
        waiting = [
            t for m, t in self._renewing.items() if not t.done() and self._answered.get(m, -1e9) > -1e9
        ]
        if waiting:
            await asyncio.wait(waiting, timeout=self.ttl / 4)
        self._unsettled(None)  # keeps the time since the members last agreed

    async def _keep_alive(self, peer: Peer) -> None:
        try:
            answer = await self._ask(peer, {"type": "keep_alive"})
        except PeerError as err:
            self._dead(peer.member.id, str(err))
            return
        if answer.get("fresh"):
            self._lost += 1
            self._synced = None
            self.on_lease_lost(peer.member.id)

    async def _ask(self, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
        view = tuple(self.alive())
        said = dict(request, member=_member_json(self.me), view=list(view), synced=self._synced == view)
        answer = await self.client.request(peer.pool_host, peer.pool_port, said)
        self._answered[peer.member.id] = self._clock()
        self._proven.add(peer.member.id)
        return answer

    @property
    def synced_view(self) -> tuple[str, ...] | None:
        """The live members under which this member last claimed all its entries (None: not yet)."""
        return self._synced

    def sync_started(self) -> tuple[tuple[str, ...], int]:
        """Before this member claims all its entries at their homes: the members it sees now."""
        return tuple(self.alive()), self._lost

    def _unsettled(self, claimer: tuple[str, tuple[str, ...] | None] | None) -> str | None:
        """Why this member cannot decide a new claim now (None: it can). It can when the members
        agree who is alive, and each has claimed its entries at their homes under that (with its
        lease here held since): then an entry of the digest anywhere is here if this is its home.
        Until then a badge whose session is on a member that has not claimed it here yet (it has
        not found this member, or another member's view puts the home elsewhere) would get a second
        session. ``claimer``: the member asking and the members it sees (its home is this one by
        its view). Past :attr:`settle_limit` without agreement it decides anyway (logged)."""
        now = self._clock()
        view = tuple(self.alive())
        why = None
        self._recheck_at = None
        if self._synced != view:
            why = "it has not claimed its own entries again since the members it sees changed"
        elif claimer is not None and claimer[1] != view:
            why = f"member {claimer[0]} sees other members alive than this one"
        else:
            recent = {m for m, (at, _, _) in self._reports.items() if now - at <= self.ttl}
            for member in sorted((set(view) | recent) - {self.me.id}):
                report = self._reports.get(member)
                if report is None or now - report[0] > self.ttl:
                    why = f"member {member} has not said lately which members it sees"
                elif report[1] != view:
                    why = f"member {member} sees other members alive than this one"
                    if member not in view:  # a member found dead: its last word counts for a TTL
                        self._recheck_at = report[0] + self.ttl
                elif not report[2]:
                    why = f"member {member} has not claimed its entries again since the members changed"
                if why is not None:
                    break
        if why is None:
            self._settled_at, self._gave_up = now, False
            return None
        if now - self._settled_at <= self.settle_limit:
            return why
        if not self._gave_up:
            self._gave_up = True
            log.warning(
                "pool: the members have not agreed who is alive for %.0f s (%s); deciding new claims "
                "all the same (a badge may get a second session, resolved when they agree: docs/pools.md "
                "§3.2); check that every member hears every other's mDNS and reaches its pool port",
                now - self._settled_at,
                why,
            )
        return None

    def recheck_in(self) -> float | None:
        """Seconds until the last word that kept the latest decision from being made stops counting
        (a dead member's: :meth:`_unsettled`), or None: only news (:attr:`news`) can change it."""
        if self._recheck_at is None:
            return None
        return max(0.0, self._recheck_at - self._clock())

    def settled(self) -> bool:
        """Whether this member decides new claims now (the members agree who is alive)."""
        return self._unsettled(None) is None

    def _decide(
        self, entry: Entry, held: Entry | None, claimer: tuple[str, tuple[str, ...] | None] | None
    ) -> None:
        """:class:`NotReady` when ``entry`` would be a new claim this member cannot decide yet."""
        self._ready(entry)
        if held is not None or entry.state is not EntryState.PENDING:
            return  # a holder to name, or a session re-claimed: always answered
        why = self._unsettled(claimer)
        if why is not None:
            raise NotReady(
                f"not ready: member {self.me.id} cannot decide a new claim while the pool's members "
                f"still find each other ({why}); try again in a moment"
            )

    def synced(self, mark: tuple[tuple[str, ...], int]) -> None:
        """It has claimed all its entries at their homes under ``mark`` (:meth:`sync_started`); true
        only if the live members are still those and no home lost its lease meanwhile."""
        view, lost = mark
        if lost == self._lost and tuple(self.alive()) == view:
            if self._synced != view:
                self.news.set()
            self._synced = view

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
                if str(err).startswith("not ready:"):
                    raise NotReady(f"member {home} refused: {err}") from None
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
            raise NotReady(
                f"not ready: member {self.me.id} started {waited:.1f} s ago and is still taking the other "
                "members' entries; try again in a moment"
            )

    async def lookup(self, digest: str) -> Entry | None:
        answer = await self._at_home(digest, {"type": "lookup", "digest": digest})
        if answer is None:
            return await self.local.lookup(digest)
        return _entry_from(answer.get("entry"))

    async def claim(self, entry: Entry, lease: Lease, *, again: bool = False) -> Claim:
        """``again``: this member claims an entry it held already (its own, claimed again at a new
        home after the members changed): never a new claim, so never refused as one."""
        request = {"type": "claim", "digest": entry.digest, "session_id": entry.session_id,
                   "state": entry.state.value, "since": entry.since, "again": again}  # fmt: skip
        home = self.home(entry.digest)
        if not again and home != self.me.id and not self.heard_from(home, self.fresh):
            # Its request would wait for the timeout of a member that has likely died (a failover's
            # badge comes just after its kiosk gave that member up); the keep-alive round already
            # asking it finds out, and the claim goes to the next home then.
            raise NotReady(
                f"not ready: the digest's home, member {home}, has not answered for a while; try again "
                "in a moment"
            )
        answer = await self._at_home(entry.digest, request)
        if answer is None:
            if not again:
                self._decide(entry, await self.local.lookup(entry.digest), None)
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
        self._note_report(member.id, request, fresh)
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
            view = request.get("view")
            seen = (
                tuple(sorted(set(view))) if isinstance(view, list) and member.id in self._reports else None
            )
            try:
                if request.get("again") is not True:
                    self._decide(entry, await self.local.lookup(entry.digest), (member.id, seen))
            except NotReady as err:
                raise RequestRefused(str(err)) from None
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

    def _note_report(self, member_id: str, request: dict[str, Any], fresh: bool) -> None:
        """Which members ``member_id`` sees alive, and whether its entries are claimed under them (a
        lease made afresh here: its entries here are gone until it claims them again)."""
        view = request.get("view")
        if (
            isinstance(view, list)
            and len(view) <= 4096
            and all(isinstance(i, str) and MEMBER_ID.fullmatch(i) for i in view)
        ):
            synced = request.get("synced") is True and not fresh
            report = (tuple(sorted(set(view))), synced)
            earlier = self._reports.get(member_id)
            self._reports[member_id] = (self._clock(), *report)
            if earlier is None or earlier[1:] != report:
                self.news.set()
        else:  # a member that does not say (an older version): never counted as settled
            self._reports.pop(member_id, None)

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
