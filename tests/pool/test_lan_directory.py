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


async def keep_alive(node: Node, ttl: float) -> None:
    """What the server's membership does: a keep-alive round every ttl/4."""
    while True:
        await node.directory.keep_alive_round()
        await asyncio.sleep(ttl / 4)


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
        assert (await d.claim(Entry(digest(1), node.member.id, "", EntryState.PENDING), lease)).won
        await d.close()

    run(main())
