"""The LAN session directory's cost (docs/pools.md §3): a lookup and a claim of a badge's digest, as
the member a kiosk reached makes them, in a pool of 3 and of 30 members.

The members are simulated in this one process: each has its own TLS identity, its own pool port
(QUIC with mutual TLS on 127.0.0.1) and its own :class:`~wayray.pool.lan.LanDirectory`, exactly as in
wrsrvd, but no mDNS (each is told the others) and no sessions. Digests are spread over the homes by
rendezvous hashing, so about 1/N of the operations are answered locally and the rest cost one request
to the home over an already open connection. Run: ``.venv/bin/python -m bench.pool_lookup``
(``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from wayray.pool.directory import Entry, EntryState, Member
from wayray.pool.lan import LanDirectory, Peer
from wayray.pool.peers import PeerClient, PeerTrust, PoolKey, PoolListener
from wayray.transport.identity import ServerIdentity


def ms(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"median {statistics.median(s) * 1e3:6.2f} ms   p95 {p95 * 1e3:6.2f} ms"


async def pool(size: int, tmp: Path) -> tuple[list[LanDirectory], list[PoolListener]]:
    identities = [ServerIdentity.load_or_create(tmp / f"m{n}", name=f"m{n}") for n in range(size)]
    trust = PeerTrust(frozenset(i.fingerprint for i in identities))
    directories, listeners = [], []
    for n, identity in enumerate(identities):
        me = Member(f"{n + 1:016x}", f"m{n}", "127.0.0.1", 7100, identity.fingerprint)
        key = PoolKey("bench", me.id, b"\x07" * 32)  # the pool's token key, the same for every member
        d = LanDirectory(me, PeerClient(identity, trust, key), warmup=0)
        listeners.append(await PoolListener.start("127.0.0.1", 0, identity, trust, d.handle, key=key))
        await d.join(me, 30.0)
        directories.append(d)
    for d in directories:
        d.set_peers(
            [Peer(o.me, "127.0.0.1", listeners[i].port) for i, o in enumerate(directories) if o is not d]
        )
    return directories, listeners


async def measure(size: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directories, listeners = await pool(size, Path(tmp))
        reached = directories[0]
        lease = reached._own
        assert lease is not None
        digests = [hashlib.sha256(f"bench-{size}-{n}".encode()).hexdigest() for n in range(rounds)]
        for d in digests[: size * 2]:  # open the connections to every home first
            await reached.lookup(d)
        lookups, claims = [], []
        for d in digests:
            t = time.perf_counter()
            await reached.lookup(d)
            lookups.append(time.perf_counter() - t)
            t = time.perf_counter()
            claim = await reached.claim(Entry(d, reached.me.id, "", EntryState.PENDING), lease)
            claims.append(time.perf_counter() - t)
            assert claim.won
        local = sum(1 for d in digests if reached.home(d) == reached.me.id)
        print(f"{size:3d} members  lookup {ms(lookups)}   claim {ms(claims)}   ({local} of {rounds} local)")
        for listener in listeners:
            listener.close()
        for d in directories:
            await d.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    rounds = 50 if args.quick else 500
    for size in (3, 30):
        asyncio.run(measure(size, rounds))


if __name__ == "__main__":
    main()
