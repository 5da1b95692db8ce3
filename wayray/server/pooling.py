"""The front door's pool membership (docs/pools.md): its mDNS advertisement, kept current as its
sessions come and go, and, when the pool's members trust each other (``peers``), the shared session
directory: a badge without a session here is claimed in the directory before anything starts for it,
and a badge whose session is on another member is redirected there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from wayray.pool.directory import (
    PLACED,
    Claim,
    DirectoryError,
    Entry,
    EntryState,
    LeaseExpired,
    Member,
    placed_on,
)
from wayray.pool.etcd import EtcdDirectory, KeyRefused
from wayray.pool.lan import LEASE_TTL, LanDirectory, NotReady, Peer
from wayray.pool.mdns import (
    Advertiser,
    Figures,
    MemberAd,
    advertised_addresses,
    load_or_create_member_id,
)
from wayray.server import admin_protocol as ap
from wayray.server.admin_protocol import AdminError
from wayray.server.live import Viewer
from wayray.server.pooljoin import Decision, Shared, join
from wayray.server.table import SessionTable
from wayray.server.tokens import TokenRef
from wayray.transport import ServerIdentity
from wayray.wire import PROTOCOL_MAJOR, PROTOCOL_MINOR, ErrorCode, SessionEventKind

log = logging.getLogger("wayray.server")

#: Seconds a placement's pending claim is kept while its session starts.
PENDING_FOR = 30.0
#: Seconds a badge's claim waits for the pool's members to agree who is alive (a member restarted,
#: one died) before its kiosk is told to try again: within :data:`ROUTE_WAIT`.
SETTLE_WAIT = 4.0
#: Seconds a badge-in waits for the pool's directory before its kiosk is told to try again (the
#: directory's work goes on): a kiosk waits 10 s for the answer to its Hello (the wire's handshake
#: timeout), and after the directory's word its session is still to be found or started.
ROUTE_WAIT = 6.0
#: Seconds between a badge's claims while the members do not agree yet (less when they say more).
CLAIM_AGAIN = 0.2
#: Keep-alive rounds after a change of members in which every entry is claimed again: long enough
#: for every member to notice the change and re-claim (a member whose session lost its entry to an
#: earlier one learns it only by claiming again).
VERIFY_ROUNDS = 5


def _decided(task: asyncio.Task[Decision], now: float) -> bool:
    """Whether a finished claim's decision may answer a later Hello of its badge."""
    return not task.cancelled() and task.exception() is None and task.result().keeps(now)


def ad_name(ad: MemberAd) -> str:
    """A member's announced instance name, as an operator reads it ("NAME on HOST")."""
    return ad.name.removesuffix("._wayray._udp.local.")


def key_refusal(table: SessionTable, shared: Shared | None) -> str | None:
    """Why this member takes no badges from its pool because its pool token key is refused (None:
    it is not): etcd's key check record says so, or (LAN) every member it found, two or more,
    refuses it at the members' key check (with one, either of the two key files may be the wrong
    one: each member lists the other as refused, and both serve)."""
    if shared is None:
        return None
    directory = shared.directory
    if isinstance(directory, EtcdDirectory):
        return directory.refusal
    refusers = directory.refused_by_all()
    if len(refusers) < 2:
        return None
    settings = table.settings
    known = {ad.member_id: ad_name(ad) for ad in shared.browser.members()}
    names = ", ".join(f"{known.get(member_id, '-')} ({member_id})" for member_id in refusers)
    first = directory.refused_peers().get(refusers[0], "")
    return (
        f"every member of pool {settings.pool} it found ({names}) refuses it at the members' key "
        f"check: the pool token key in {settings.token_key} is not theirs; copy the pool's token key "
        f"file from a member of pool {settings.pool} to {settings.token_key} and restart this member "
        f"(/usr/share/doc/wayray/pools.md §3.3). The first said: "
        f"{first.split(' is not taken into the pool: ', 1)[-1]}"
    )


class PoolMembership:
    def __init__(self, table: SessionTable, advertiser: Advertiser, shared: Shared | None) -> None:
        self.table = table
        self.advertiser = advertiser
        self.shared = shared

    @classmethod
    async def start(
        cls, table: SessionTable, *, identity: ServerIdentity, port: int, listening: list[str]
    ) -> PoolMembership:
        """Announce the instance in its pool (``settings.pool``), follow its sessions, and with peer
        trust configured open the pool port and join the directory."""
        settings = table.settings
        addresses = advertised_addresses(listening)
        if all(a.startswith("127.") or a == "::1" for a in addresses):
            log.warning(
                "pool %s: this instance listens on loopback only (%s): other hosts of the pool "
                "cannot reach it; listen on a LAN address",
                settings.pool,
                ", ".join(addresses),
            )
        member_id = load_or_create_member_id(settings.state_dir)
        shared = None
        pool_port = 0
        if settings.shares_directory:
            shared = await join(table, identity, member_id, addresses[0], port)
            pool_port = shared.listener.port if shared.listener is not None else 0
        else:
            log.warning(
                "pool %s: no peers' fingerprints or CA configured: this instance announces itself but "
                "shares no session directory (a badge that reaches another member gets a session there)",
                settings.pool,
            )
        advertiser = Advertiser(
            pool=settings.pool,
            instance=settings.name,
            member_id=member_id,
            fingerprint=identity.fingerprint,
            port=port,
            addresses=addresses,
            protocol=(PROTOCOL_MAJOR, PROTOCOL_MINOR),
            figures=cls._figures(table, shared),
            pool_port=pool_port,
        )
        await advertiser.start()
        member = cls(table, advertiser, shared)
        table.on_change.append(member.changed)
        if shared is not None:
            table.spawn(member._keep_up(), "pool-directory")
        return member

    @staticmethod
    def _figures(table: SessionTable, shared: Shared | None) -> Figures:
        settings = table.settings
        return Figures(
            capacity=settings.max_sessions,
            used=len(table.live),
            draining=table.draining,
            weight=settings.pool_weight,
            key_refused=key_refusal(table, shared) is not None,
        )

    def changed(self) -> None:
        self.advertiser.update(self._figures(self.table, self.shared))

    def key_refusal(self) -> str | None:
        """Why this member takes no badges from the pool: its pool token key is refused (the key
        file, what to do); None when it is not (docs/pools.md §3.3)."""
        return key_refusal(self.table, self.shared)

    def refused_members(self) -> list[tuple[str, str, str]]:
        """The other members refused at the members' key check, as this member knows them: (id,
        name, why). LAN: those whose key check failed when this member dialled them; etcd (and LAN
        too): those that announce that the pool refuses their key."""
        shared = self.shared
        if shared is None:
            return []
        directory = shared.directory
        refused = directory.refused_peers() if isinstance(directory, LanDirectory) else {}
        found = []
        for ad in shared.browser.members():
            why = refused.get(ad.member_id)
            if why is None and ad.figures.key_refused:
                why = (
                    "it announces that the pool refuses its pool token key (the members' key check); "
                    "its own `wradm status` says why"
                )
            if why is not None:
                found.append((ad.member_id, ad_name(ad), why))
        return found

    # --- the directory -----------------------------------------------------------------------------

    async def route(self, token: TokenRef, viewer: Viewer, previous: tuple[TokenRef, ...] = ()) -> bool:
        """A badge without a session here: claim it in the pool's directory. True: it is this
        member's (start its session here); False: the viewer was redirected or told why not.
        ``previous``: its digests under the previous token keys (a rotation, docs/pools.md §3.3):
        a session recorded under one of them on another member is found first.

        The viewer waits for the directory :data:`ROUTE_WAIT` seconds at most: its kiosk gives up on
        a Hello unanswered for 10 s, and then knows only that the handshake timed out. A directory
        slower than that (etcd syncing a loaded disk, electing a leader, stopped) gets the kiosk
        told to try again, with the reason; the directory's work goes on, and the badge's next Hello
        (the kiosk's, a moment later) takes its decision, or waits for it again."""
        shared = self.shared
        if shared is None:
            return True
        conn = viewer.conn
        now = time.monotonic()
        for digest, deciding in list(shared.deciding.items()):
            if deciding.done() and not _decided(deciding, now):
                del shared.deciding[digest]  # a "not now", or too old: the next Hello asks again
        task = shared.deciding.get(token.digest)
        if task is None:
            work = self._decide(shared, token, previous, conn.peer_address)
            task = shared.deciding[token.digest] = self.table.spawn(work, f"pool-claim-{token.short}")
        done, _ = await asyncio.wait({task}, timeout=ROUTE_WAIT)
        if not done:
            log.warning(
                "%s: token %s: the pool's session directory has not answered within %g s; the kiosk "
                "is told to try again (the claim goes on, and its next Hello takes the answer)",
                conn.peer_address, token.short, ROUTE_WAIT,
            )  # fmt: skip
            conn.close(
                ErrorCode.SERVER_BUSY,
                f"the pool's session directory is slow to answer (nothing within {ROUTE_WAIT:g} s); "
                "try again in a moment",
            )
            return False
        if shared.deciding.get(token.digest) is task:
            del shared.deciding[token.digest]
        if task.cancelled():  # the server stops
            conn.close(ErrorCode.SERVER_SHUTDOWN, "the server is stopping; try again in a moment")
            return False
        decision = task.result()
        if decision.here:
            return True
        if decision.peer is not None:
            return self._send(viewer, token, decision.peer, decision.why)
        conn.close(ErrorCode.SERVER_BUSY, decision.why)
        return False

    async def _decide(
        self, shared: Shared, token: TokenRef, previous: tuple[TokenRef, ...], who: str
    ) -> Decision:
        """What the directory says of a badge (:meth:`route`), whether or not a viewer still waits
        for it. ``who``: the viewer that asked first, for the log."""
        me = shared.directory.me.id
        entry = Entry(token.digest, me, "", EntryState.PENDING)
        refused = self.key_refusal() if isinstance(shared.directory, LanDirectory) else None
        if refused is not None:  # (etcd: the directory itself refuses, below)
            return self._unanswered(who, token, KeyRefused(refused))
        try:
            earlier = await self._under_previous_key(shared, previous)
            if earlier is not None:
                why = f"this badge's session is on {earlier.member.name} (under the previous token key)"
                return Decision(peer=earlier, why=why)
            there = await self._placed_lately(shared, token)
            if there is not None:
                return Decision(peer=there, why=f"a new session is placed on {there.member.name}")
            claim = await self._claim(shared, entry)
            if claim.won and not claim.taken_over and token.digest in shared.pending:
                # Its session is starting here for another kiosk (the same badge, a moment ago): this
                # one joins it (placing it again would overwrite this member's claim: two sessions).
                return Decision(here=True)
            if claim.won and shared.yielded.pop(token.digest, None) is not None:
                # Its earlier session elsewhere is gone: the one left here is the badge's again.
                shared.pending[token.digest] = time.monotonic()
                return Decision(here=True)
            if claim.won:
                # A placement made for this member, taken over here: the session starts here.
                target = "here" if claim.taken_over else self._place()
                if isinstance(target, str):  # "here"
                    shared.pending[token.digest] = time.monotonic()
                    return Decision(here=True)
                if target is None:
                    await shared.directory.release(token.digest, shared.lease)
                    return Decision(
                        why="no member of the pool takes new sessions now (drained or full); try again later"
                    )
                placed = Entry(token.digest, me, PLACED + target.member.id, EntryState.PENDING)
                await shared.directory.claim(placed, shared.lease)
                shared.placed[token.digest] = time.monotonic()
                return Decision(peer=target, why=f"a new session is placed on {target.member.name}")
        except NotReady as err:
            log.info("%s: token %s: %s", who, token.short, err)
            return Decision(
                why="the pool's members are still finding each other (one joined or left); try again"
            )
        except (DirectoryError, LeaseExpired) as err:
            return self._unanswered(who, token, err)
        holder = placed_on(claim.entry) or claim.entry.member
        peer = shared.directory.peer(holder)
        if peer is None or holder not in shared.directory.alive():
            return Decision(
                why="this badge's session is on another member of the pool, which does not answer now; "
                "try again in a moment"
            )
        return Decision(peer=peer, why=f"this badge's session is on {peer.member.name}")

    @staticmethod
    async def _under_previous_key(shared: Shared, previous: tuple[TokenRef, ...]) -> Peer | None:
        """The live member holding a session recorded under one of the badge's previous digests."""
        me = shared.directory.me.id
        for old in previous:
            held = await shared.directory.lookup(old.digest)
            if held is not None and held.member != me and held.state is EntryState.SESSION:
                peer = shared.directory.peer(held.member)
                if peer is not None and held.member in shared.directory.alive():
                    return peer
        return None

    @staticmethod
    def _unanswered(who: str, token: TokenRef, err: DirectoryError | LeaseExpired) -> Decision:
        """The directory did not answer a badge's claim (or refuses this member: its key is not the
        pool's): the kiosk is told to try again, or to try another server."""
        if isinstance(err, KeyRefused):
            log.info(
                "%s: token %s: not taken: this member's pool token key is refused by the pool's "
                "directory (see the error logged before)", who, token.short,
            )  # fmt: skip
            return Decision(
                why="this server cannot take badges now: its pool token key is not the pool's (an "
                "operator must fix it; its log says how); try another server of the pool"
            )
        log.warning("%s: token %s: the pool's directory cannot answer: %s", who, token.short, err)
        return Decision(why="the pool's session directory does not answer now; try again")

    async def _placed_lately(self, shared: Shared, token: TokenRef) -> Peer | None:
        """The member this one placed the badge on a moment ago (another kiosk, the same badge), if
        that placement still stands: claiming the badge again would overwrite it (two sessions)."""
        placed_at = shared.placed.get(token.digest)
        if placed_at is None or time.monotonic() - placed_at > PENDING_FOR:
            return None
        held = await shared.directory.lookup(token.digest)
        target = placed_on(held) if held is not None and held.member == shared.directory.me.id else None
        peer = shared.directory.peer(target) if target is not None else None
        return peer if peer is not None and self._answers(shared, peer.member.id) else None

    @staticmethod
    async def _claim(shared: Shared, entry: Entry) -> Claim:
        """Claim a badge; while the members still agree who is alive (:class:`NotReady`), or while
        the entry found is a dead member's (it goes with that member's lease, within the TTL: a
        failover), again every moment for up to :data:`SETTLE_WAIT`. The viewer waits: a kiosk told
        to try again would add its backoff and another handshake to the failover."""
        began = time.monotonic()
        end = began + SETTLE_WAIT
        directory = shared.directory
        why = ""
        while True:
            if isinstance(directory, LanDirectory):
                directory.news.clear()
            try:
                claim = await directory.claim(entry, shared.lease)
            except NotReady as err:
                why = str(err)
                if time.monotonic() >= end:
                    raise
            else:
                holder = placed_on(claim.entry) or claim.entry.member
                if claim.won or time.monotonic() >= end or PoolMembership._answers(shared, holder):
                    if why:  # what a failover's badge waited for (docs/pools.md §7)
                        log.info("token digest %s: its claim waited %.1f s (last: %s)", entry.digest[:8],
                                 time.monotonic() - began, why)  # fmt: skip
                    return claim
                why = f"its entry is member {holder}'s, not heard from lately"
            await PoolMembership._until_news(directory, CLAIM_AGAIN)

    @staticmethod
    async def _until_news(directory: LanDirectory | EtcdDirectory, longest: float) -> None:
        """Wait before claiming again: ``longest``, or less when what the members said changed or a
        dead member's last word stops counting (a failover's claim is decided when it can be)."""
        if not isinstance(directory, LanDirectory):
            await asyncio.sleep(longest)
            return
        recheck = directory.recheck_in()
        wait = min(longest, recheck + 0.01) if recheck else longest
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(directory.news.wait(), wait)

    @staticmethod
    def _answers(shared: Shared, member: str) -> bool:
        """Whether ``member`` is worth sending a viewer to: alive, and (LAN) heard from within a
        keep-alive round and a half. A badge whose kiosk just gave up its member arrives before the
        others have found that member dead (their request to it waits for its timeout): sending it
        back there would cost the kiosk a dial into the void and another redirect."""
        directory = shared.directory
        if member not in directory.alive():
            return False
        return not isinstance(directory, LanDirectory) or directory.heard_from(member, directory.fresh)

    def _send(self, viewer: Viewer, token: TokenRef, peer: Peer, why: str) -> bool:
        """Redirect the viewer to ``peer`` (a viewer without ``pools``: told where to go)."""
        conn = viewer.conn
        where = f"{peer.member.name} ({peer.member.host}:{peer.member.port})"
        log.info("%s: token %s: %s: %s", conn.peer_address, token.short, why, where)
        if not conn.follows_redirects:
            conn.close(ErrorCode.SERVER_BUSY, f"{why}; connect to {peer.member.host}:{peer.member.port}")
            return False
        conn.redirect(
            host=peer.member.host,
            port=peer.member.port,
            fingerprint=peer.member.fingerprint,
            server_id=peer.member.id,
            reason=why,
        )
        return False

    def _place(self) -> str | Peer | None:
        """Where a new session goes (docs/pools.md §5): weighted random over the members that take
        new sessions and answer, by ``weight`` x free room; "here", another member, or None."""
        shared = self.shared
        assert shared is not None
        table = self.table
        choices: list[str | Peer] = []
        weights: list[int] = []
        mine = self._figures(table, shared)
        if not table.draining and mine.weight > 0 and mine.capacity > len(table.live):
            choices.append("here")
            weights.append(mine.weight * (mine.capacity - len(table.live)))
        for ad in shared.browser.members():
            peer = shared.directory.peer(ad.member_id)
            if not shared.directory.proven(ad.member_id):
                continue  # not (yet) shown to hold the pool's key: never sent a badge
            if peer is not None and self._answers(shared, ad.member_id) and ad.takes_new_sessions:
                choices.append(peer)
                weights.append(ad.figures.weight * ad.free)
        if not choices:
            return None
        return random.choices(choices, weights)[0]

    def members_answer(self, sessions: tuple[ap.PoolSessionRow, ...] | None = None) -> ap.PoolAnswer:
        """The ``pool`` admin answer: this member first, then the others discovery found."""
        ad = self.advertiser
        figures = self._figures(self.table, self.shared)
        rows = [
            ap.PoolMemberRow(
                id=ad.member_id,
                name=ad.instance_name,
                addresses=tuple(ad.addresses),
                port=ad.port,
                fingerprint=ad.fingerprint,
                state=figures.state,
                sessions=figures.used,
                capacity=figures.capacity,
                load=figures.load,
                weight=figures.weight,
                last_seen_s=0,
                answers=True,
                this=True,
                refused=self.key_refusal(),
            )
        ]
        shared = self.shared
        if shared is not None:
            refused = {member_id: why for member_id, _, why in self.refused_members()}
            alive = set(shared.directory.alive())
            now = time.monotonic()
            rows += [
                ap.PoolMemberRow(
                    id=m.member_id,
                    name=ad_name(m),
                    addresses=tuple(m.addresses),
                    port=m.port,
                    fingerprint=m.fingerprint,
                    state=m.figures.state,
                    sessions=m.figures.used,
                    capacity=m.figures.capacity,
                    load=m.figures.load,
                    weight=m.figures.weight,
                    last_seen_s=round(now - m.seen_at, 1),
                    answers=m.member_id in alive,
                    this=False,
                    refused=refused.get(m.member_id),
                )
                for m in shared.browser.members()
            ]
        return ap.PoolAnswer(name=self.table.settings.pool or "", members=tuple(rows), sessions=sessions)

    async def sessions_answer(self) -> tuple[ap.PoolSessionRow, ...]:
        """The directory's entries pool-wide (``wradm sessions --pool``): digests shortened, no token."""
        shared = self.shared
        if shared is None:
            raise AdminError("this instance shares no session directory (no peers' fingerprints or CA)")
        try:
            entries = await shared.directory.entries()
        except (DirectoryError, LeaseExpired) as err:
            raise AdminError(f"the pool's directory cannot answer: {err}") from None
        return tuple(
            ap.PoolSessionRow(
                token=e.digest[:8],
                member=placed_on(e) or e.member,
                session_id=(e.session_id or None) if placed_on(e) is None else None,
                state=e.state.value,
            )
            for e in sorted(entries, key=lambda e: (e.member, e.session_id))
        )

    async def _keep_up(self) -> None:
        """Every ttl/4: discovery's members into the directory, leases renewed, this member's
        sessions claimed at their homes (again when a home changed) and gone ones released."""
        shared = self.shared
        assert shared is not None
        while True:
            try:
                shared.directory.set_peers(
                    [
                        Peer(
                            Member(
                                ad.member_id,
                                ad.name.split(" on ", 1)[0],
                                ad.addresses[0],
                                ad.port,
                                ad.fingerprint,
                            ),
                            ad.addresses[0],
                            ad.pool_port,
                        )  # fmt: skip
                        for ad in shared.browser.members()
                    ]
                )
                await shared.directory.keep_alive_round()
                self.changed()  # announced at once when the pool started or stopped refusing its key
                said = shared.directory.synced_view if isinstance(shared.directory, LanDirectory) else None
                await self._reconcile(shared)
                if isinstance(shared.directory, LanDirectory) and shared.directory.synced_view != said:
                    # Claimed again under other members: say so now (new claims wait for it), not
                    # a round later.
                    await shared.directory.keep_alive_round()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the next round tries again
                log.warning("pool: %s", err)
            # The next round after a keep-alive interval, or at once when a member was found dead
            # (the members' agreement waits for this member's entries claimed under the others).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shared.wake.wait(), LEASE_TTL / 4)
            shared.wake.clear()

    def yielded(self, token: TokenRef) -> bool:
        """Whether this badge's session here lost to an earlier one on another member (its badge is
        routed through the directory although the registry here knows a session)."""
        return self.shared is not None and token.digest in self.shared.yielded

    def _wanted(self, shared: Shared, now: float) -> tuple[dict[str, str], dict[str, float]]:
        """The digests this member must hold (digest → session id, "" while starting), and when each
        session started. After a change of members every entry is claimed again for a few rounds:
        homes moved (a partition healed, a member died or restarted), and two members may hold a
        session for one badge."""
        alive = tuple(shared.directory.alive())
        if alive != shared.last_alive:
            shared.last_alive, shared.verify = alive, VERIFY_ROUNDS
        if shared.verify > 0:
            shared.verify -= 1
            shared.claimed.clear()
        wanted: dict[str, str] = {}
        started: dict[str, float] = {}
        for session in self.table.registry.live_sessions():
            started[session.token.digest] = session.created_at
            if session.token.digest not in shared.yielded:
                wanted[session.token.digest] = session.id
        for digest in [d for d in shared.yielded if d not in started]:
            del shared.yielded[digest]  # its session here ended
        for digest, since in list(shared.pending.items()):
            if now - since > PENDING_FOR:
                del shared.pending[digest]
            elif digest not in wanted:
                wanted[digest] = ""
        return wanted, started

    async def _reconcile(self, shared: Shared) -> None:
        table = self.table
        if table.closed:
            return
        now = time.monotonic()
        directory = shared.directory
        mark = directory.sync_started() if isinstance(directory, LanDirectory) else None
        wanted, started = self._wanted(shared, now)
        todo: list[tuple[str, str, tuple[str, str], Entry]] = []
        for digest, session_id in wanted.items():
            key = (directory.home(digest), session_id)
            if shared.claimed.get(digest) == key:
                continue
            state = EntryState.SESSION if session_id else EntryState.PENDING
            since = started.get(digest, 0.0) if session_id else 0.0
            todo.append(
                (digest, session_id, key, Entry(digest, directory.me.id, session_id, state, since=since))
            )
        results = await self._claim_all(shared, [entry for *_, entry in todo])
        failed: BaseException | None = None
        for (digest, session_id, key, _), claim in zip(todo, results, strict=False):
            if isinstance(claim, KeyRefused):
                continue  # a badge still starting here, on a member left behind by a rotation
            if isinstance(claim, BaseException):
                failed = failed or claim
                continue
            if claim.won:
                shared.claimed[digest] = key
            elif session_id and claim.entry.state is EntryState.SESSION:
                self._yield(shared, digest, session_id, claim.entry)
            else:
                log.warning(
                    "pool: token digest %s: member %s holds it too (session %s); this member's session %s "
                    "keeps running, badges go there",
                    digest[:8],
                    claim.entry.member,
                    claim.entry.session_id or "starting",
                    session_id or "starting",
                )
        if failed is not None:
            raise failed  # not claimed everywhere: not synced (the next round tries again)
        if mark is not None and isinstance(directory, LanDirectory):
            directory.synced(mark)  # every entry of this member is at its home under these members
        await self._release_stale(shared, now, wanted)

    @staticmethod
    async def _release_stale(shared: Shared, now: float, wanted: dict[str, str]) -> None:
        """Release placements whose kiosk never came, and entries of sessions that ended here."""
        directory = shared.directory
        for digest, since in list(shared.placed.items()):
            if now - since <= PENDING_FOR:
                continue
            del shared.placed[digest]  # the kiosk never came to the member it was placed on
            try:
                held = await directory.lookup(digest)
            except KeyRefused:
                continue  # its pending entry goes with its short life (a rotation left this member behind)
            if held is not None and held.member == directory.me.id and placed_on(held) is not None:
                await directory.release(digest, shared.lease)
        for digest in [d for d in shared.claimed if d not in wanted]:
            del shared.claimed[digest]
            with contextlib.suppress(DirectoryError, LeaseExpired):
                await directory.release(digest, shared.lease)

    @staticmethod
    async def _claim_all(shared: Shared, entries: list[Entry]) -> list[Claim | BaseException]:
        """This member's own entries claimed again (never new claims); a LAN member's all at once:
        one after the other, a member with a few sessions took seconds on a busy machine, and a
        failover's new claims wait for it (docs/pools.md §7). A claim that fails ends the list."""
        directory = shared.directory
        if isinstance(directory, LanDirectory):
            lan = directory
            claims = (lan.claim(entry, shared.lease, again=True) for entry in entries)
            return list(await asyncio.gather(*claims, return_exceptions=True))
        results: list[Claim | BaseException] = []
        for entry in entries:
            try:
                results.append(await directory.claim(entry, shared.lease))
            except KeyRefused as err:  # this one only (a member left behind by a key rotation)
                results.append(err)
            except Exception as err:  # noqa: BLE001 - the caller raises it once the rest is done
                results.append(err)
                break
        return results

    def _yield(self, shared: Shared, digest: str, session_id: str, holder: Entry) -> None:
        """Two sessions for one badge, and the other member's started first: the badge goes there
        from now on; the session here is left detached (never killed under its user: it ends by its
        policy's detached_timeout), and a viewer showing it is told and let go."""
        shared.yielded[digest] = holder.member
        shared.claimed.pop(digest, None)
        log.warning(
            "pool: token digest %s has a session on member %s too (%s), started earlier (two sessions "
            "for one badge after a partition or a change of members): the badge goes there; this "
            "member's session %s is left detached and ends by its policy's detached_timeout",
            digest[:8],
            holder.member,
            holder.session_id,
            session_id,
        )
        session = self.table.live.get(session_id)
        viewer = session.viewer if session is not None else None
        if session is None or viewer is None:
            return
        session.viewer = None
        session.send_detach(viewer, "the badge's earlier session is on another member of the pool")
        self.table.registry.detach(session_id, time.time())
        viewer.tell_and_close(
            SessionEventKind.DETACHED,
            ErrorCode.NO_ERROR,
            "this badge has an earlier session on another member of the pool; badge in again to reach it",
        )
        self.table.changed()

    async def stop(self) -> None:
        """Withdraw the advertisement (a goodbye: browsers drop this member at once) and leave."""
        if self.changed in self.table.on_change:
            self.table.on_change.remove(self.changed)
        await self.advertiser.close()
        shared = self.shared
        if shared is not None:
            if shared.listener is not None:
                shared.listener.close()
            await shared.browser.close()
            await shared.directory.close()
