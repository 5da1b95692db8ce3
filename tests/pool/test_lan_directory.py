"""The LAN directory (docs/pools.md §3.2): three members, each with its pool port on loopback and
real mutual TLS between them. Fifty times over, two members claim the same badge at the same instant
(as two servers would that two kiosks reached): exactly one wins and the other is told who holds it,
whichever member is the digest's home. A member that dies stops being a home within the lease's TTL,
and the claims go on at the others."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from wayray.pool.directory import DirectoryError, Entry, EntryState, Lease, Member
from wayray.pool.lan import LanDirectory, Peer
from wayray.pool.peers import PeerClient, PeerTrust, PoolKey, PoolListener
from wayray.transport.identity import ServerIdentity


class Node:
    def __init__(self, tmp: Path, n: int) -> None:
        self.identity = ServerIdentity.load_or_create(tmp / f"m{n}", name=f"m{n}")
        self.member = Member(f"{n:016x}", f"lab-{n}", "127.0.0.1", 7100 + n, self.identity.fingerprint)
        self.key = PoolKey("lab", self.member.id, b"\x07" * 32)  # the pool's token key, one for all
        self.directory: LanDirectory
        self.listener: PoolListener
        self.lease: Lease
        self.loop: asyncio.Task[None]
        #: Its sessions (digest → session id): claimed at their homes every round, as wrsrvd does.
        self.sessions: dict[str, str] = {}


async def keep_alive(node: Node, ttl: float) -> None:
    """What the server's membership does: a keep-alive round every ttl/4, then its sessions claimed
    at their homes (the homes move as members come and go), and it says it has under whom."""
    while True:
        await node.directory.keep_alive_round()
        try:
            mark = node.directory.sync_started()
            for dg, session_id in list(node.sessions.items()):
                entry = Entry(dg, node.member.id, session_id, EntryState.SESSION, since=1.0)
                await node.directory.claim(entry, node.lease)
            node.directory.synced(mark)
        except DirectoryError:
            pass  # the next round claims again
        await asyncio.sleep(ttl / 4)


def rendezvous(members: list[str], dg: str) -> str:
    """The home rendezvous hashing gives ``dg`` among ``members`` (what LanDirectory.home computes)."""
    return max(members, key=lambda m: hashlib.sha256(f"{m}/{dg}".encode()).digest())


async def until(check: Any, what: str, timeout: float = 60.0) -> None:
    """Wait for a state (the keep-alive rounds run meanwhile), never for a time."""
    end = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def pool(tmp: Path, size: int, ttl: float = 4.0) -> list[Node]:
    nodes = [Node(tmp, n) for n in range(1, size + 1)]
    trust = PeerTrust(frozenset(n.identity.fingerprint for n in nodes))
    for node in nodes:
        node.directory = LanDirectory(
            node.member, PeerClient(node.identity, trust, node.key), ttl=ttl, warmup=0
        )
        node.listener = await PoolListener.start(
            "127.0.0.1", 0, node.identity, trust, node.directory.handle, key=node.key
        )
        node.lease = await node.directory.join(node.member, ttl)
    for node in nodes:
        node.directory.set_peers(
            [Peer(o.member, "127.0.0.1", o.listener.port) for o in nodes if o is not node]
        )
    for node in nodes:
        node.loop = asyncio.get_running_loop().create_task(keep_alive(node, ttl))
    # New badges wait until the members agree who is alive and have claimed their entries under it.
    await until(lambda: all(n.directory.settled() for n in nodes), "the members to agree")
    return nodes


async def shut(nodes: list[Node]) -> None:
    for node in nodes:
        node.loop.cancel()
        node.listener.close()
        await node.directory.close()


def digest(n: int) -> str:
    return hashlib.sha256(f"double-badge-{n}".encode()).hexdigest()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_fifty_double_badges_at_two_members_make_one_session_each(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await pool(tmp_path, 3)
        try:
            homes = set()
            for n in range(50):
                a, b = nodes[n % 3], nodes[(n + 1) % 3]
                dg = digest(n)
                homes.add(a.directory.home(dg))
                ca, cb = await asyncio.gather(
                    a.directory.claim(Entry(dg, a.member.id, f"a{n}", EntryState.PENDING), a.lease),
                    b.directory.claim(Entry(dg, b.member.id, f"b{n}", EntryState.PENDING), b.lease),
                )
                assert ca.won != cb.won, f"badge {n}: {ca} / {cb}"
                assert ca.entry == cb.entry, "the loser was not told who holds the badge"
                for node in nodes:  # every member finds the one holder
                    assert await node.directory.lookup(dg) == ca.entry
            assert len(homes) == 3, "the digests did not spread over the homes"
            assert len(await nodes[0].directory.entries()) == 50
        finally:
            await shut(nodes)

    run(main())


def test_a_dead_member_stops_being_a_home_and_claims_go_on(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await pool(tmp_path, 3, ttl=1.0)
        try:
            dead = nodes[2]
            dead.loop.cancel()
            dead.listener.close()  # it dies: no goodbye
            dg = next(digest(n) for n in range(1000) if nodes[0].directory.home(digest(n)) == dead.member.id)
            a, b = nodes[0], nodes[1]
            claim = await a.directory.claim(Entry(dg, a.member.id, "a", EntryState.SESSION), a.lease)
            assert claim.won
            assert dead.member.id not in a.directory.alive()
            await b.directory.keep_alive_round()  # b notices within its keep-alive round
            assert dead.member.id not in b.directory.alive()
            assert a.directory.home(dg) == b.directory.home(dg)
            other = await b.directory.claim(Entry(dg, b.member.id, "b", EntryState.SESSION), b.lease)
            assert not other.won and other.entry.member == a.member.id
        finally:
            await shut(nodes)

    run(main())


def test_a_member_that_just_started_takes_re_claims_but_decides_no_new_claim(tmp_path: Path) -> None:
    """A restarted member is home for digests whose sessions live on other members, which re-claim
    them within a keep-alive round: until then a new claim there could start a second session."""

    async def main() -> None:
        now = [100.0]
        node = Node(tmp_path, 1)
        trust = PeerTrust(frozenset({node.identity.fingerprint}))
        d = LanDirectory(
            node.member,
            PeerClient(node.identity, trust, node.key),
            ttl=4.0,
            warmup=4.0,
            clock=lambda: now[0],
        )
        lease = await d.join(node.member, 4.0)
        with pytest.raises(DirectoryError, match="started 0.0 s ago"):
            await d.claim(Entry(digest(1), node.member.id, "", EntryState.PENDING), lease)
        assert (await d.claim(Entry(digest(2), node.member.id, "s2", EntryState.SESSION), lease)).won
        now[0] += 4.0
        d.synced(d.sync_started())  # its own entries claimed (what each keep-alive round does)
        assert (await d.claim(Entry(digest(1), node.member.id, "", EntryState.PENDING), lease)).won
        await d.close()

    run(main())


@pytest.mark.parametrize("order", ["it has not found c yet", "c has its old pool port"])
def test_a_restarted_member_finds_the_session_that_failed_over_while_the_members_still_find_each_other(
    tmp_path: Path, order: str
) -> None:
    """The orders a fresh-clone CI run could hit by chance, made on purpose. A member (a) dies; its
    badge's session fails over to c. a restarts, empty, on a new pool port, and the badge reaches it
    before the members agree who is alive:

    - a has found b but not c yet: it asks the digest's home among a and b, which is b, while c keeps
      the entry at the home among all three, c itself; b has no entry.
    - a has found both and is the digest's home (its start-up wait is over), while c still has a's old
      pool port and cannot claim its session at a.

    A new claim decided then would give the badge a second session on a. It must be refused (try
    again); once the members have found each other and claimed their sessions again, a's claim must
    be sent to c's session."""

    async def main() -> None:
        nodes = await pool(tmp_path, 3, ttl=1.0)
        a, b, c = nodes
        ids = [n.member.id for n in nodes]
        first = order == "it has not found c yet"
        dg = next(
            d
            for d in (digest(n) for n in range(10_000))
            if (rendezvous(ids, d), rendezvous(ids[:2], d))
            == ((c.member.id, b.member.id) if first else (a.member.id, a.member.id))
        )
        try:
            old_port = a.listener.port
            await a.directory.close()  # a dies (no goodbye); its sessions with it
            a.loop.cancel()
            a.listener.close()
            await until(lambda: a.member.id not in b.directory.alive() + c.directory.alive(), "a left out")
            c.sessions[dg] = "failed-over"  # the kiosk's new session, claimed at its home
            await until(lambda: any(n.directory.local._entries.get(dg) for n in (b, c)), "its entry")
            # a restarts with an empty directory, on a new pool port.
            trust = PeerTrust(frozenset(n.identity.fingerprint for n in nodes))
            a.directory = LanDirectory(
                a.member, PeerClient(a.identity, trust, a.key), ttl=1.0, warmup=0 if not first else None
            )
            a.listener = await PoolListener.start(
                "127.0.0.1", 0, a.identity, trust, a.directory.handle, key=a.key
            )
            a.lease = await a.directory.join(a.member, 1.0)
            now = {o.member.id: Peer(o.member, "127.0.0.1", o.listener.port) for o in nodes}
            if first:
                a.directory.set_peers([now[b.member.id]])
                for o in (b, c):
                    o.directory.set_peers([p for i, p in now.items() if i != o.member.id])
                a.loop = asyncio.get_running_loop().create_task(keep_alive(a, 1.0))
                await until(
                    lambda: a.member.id in b.directory.alive() and a.member.id in c.directory.alive(),
                    "b and c to see a",
                )
                assert a.directory.alive() == sorted(ids[:2])
                assert a.directory.home(dg) == b.member.id != b.directory.home(dg)
            else:
                a.directory.set_peers([now[b.member.id], now[c.member.id]])
                b.directory.set_peers([now[a.member.id], now[c.member.id]])
                c.directory.set_peers([Peer(a.member, "127.0.0.1", old_port), now[b.member.id]])
                a.loop = asyncio.get_running_loop().create_task(keep_alive(a, 1.0))
                await until(
                    lambda: a.directory.alive() == sorted(ids) == b.directory.alive(), "a and b to agree"
                )
                assert a.directory.home(dg) == a.member.id
            badge = Entry(dg, a.member.id, "", EntryState.PENDING)
            with pytest.raises(DirectoryError, match="not ready: ") as refused:
                claim = await a.directory.claim(badge, a.lease)
                assert claim.won is False, "the restarted member won the badge: a second session"
            assert "try again" in str(refused.value)
            # The members find each other: c claims its session at its home, and a's claim finds it.
            for o in nodes:
                o.directory.set_peers([p for i, p in now.items() if i != o.member.id])
            while True:
                try:
                    claim = await a.directory.claim(badge, a.lease)
                    break
                except DirectoryError as err:
                    assert "not ready" in str(err), err
                    await asyncio.sleep(0.1)
            assert not claim.won, "the restarted member won the badge: a second session"
            assert (claim.entry.member, claim.entry.session_id) == (c.member.id, "failed-over")
        finally:
            await shut(nodes)

    run(main())
