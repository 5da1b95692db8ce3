"""The session directory's contract (docs/pools.md §3), for every backend: one claim of a digest wins,
however many race; a lease that is not kept alive takes its member's entries with it; a member
releases only its own entries. Backends other than the in-process one join ``BACKENDS``; the etcd one
runs against a real three-member etcd cluster (tests/pool/etcd_rig.py) with real time."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pool.etcd_rig import POOL_KEY, EtcdCluster, etcd_cluster
from wayray.pool.directory import (
    PLACED,
    Directory,
    Entry,
    EntryState,
    LeaseExpired,
    LocalDirectory,
    Member,
    placed_on,
)
from wayray.pool.etcd import EtcdDirectory, parse_endpoints


class Clock:
    """The in-process backend's clock; a backend with a store of its own (``real``) lets real time
    pass instead, and the tests wait for what the store does in its time."""

    def __init__(self, real: bool = False) -> None:
        self.now = 1000.0
        self.real = real

    def __call__(self) -> float:
        return self.now


def local(clock: Clock) -> Directory:
    return LocalDirectory(clock)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with etcd_cluster(Path(tmp_path_factory.mktemp("etcd")), 3) as cluster:
        yield cluster


def etcd_backend(cluster: EtcdCluster) -> Callable[[Clock], Directory]:
    def make(clock: Clock) -> Directory:
        clock.real = True
        # A pool of its own per test: the tests' digests do not meet.
        return EtcdDirectory(
            member(1),
            f"t{secrets.token_hex(4)}",
            parse_endpoints(cluster.url),
            cluster.context(),
            key=POOL_KEY,
        )

    return make


BACKENDS: dict[str, Callable[[Clock], Directory]] = {"local": local}


def digest(n: int) -> str:
    return hashlib.sha256(f"badge-{n}".encode()).hexdigest()


def member(n: int) -> Member:
    return Member(f"{n:016x}", f"lab-{n}", f"10.0.0.{n}", 7100, "sha256:" + "ab" * 32)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture(params=[*sorted(BACKENDS), "etcd"])
def make(request: pytest.FixtureRequest) -> Callable[[Clock], Directory]:
    if request.param == "etcd":
        return etcd_backend(request.getfixturevalue("etcd"))
    return BACKENDS[request.param]


async def wait_gone(d: Directory, dg: str, keep: Any, timeout: float = 60.0) -> None:
    """Real time: wait until ``dg``'s entry is gone, renewing ``keep`` every second meanwhile."""
    end = time.monotonic() + timeout
    while await d.lookup(dg) is not None:
        assert time.monotonic() < end, f"the entry outlived its lease by far ({timeout} s)"
        await d.keep_alive(keep)
        await asyncio.sleep(1)


def test_fifty_simultaneous_claims_of_one_badge_make_one_session(make: Callable[[Clock], Directory]) -> None:
    """Two members (or fifty) claim the same digest at the same instant, fifty times over: each time
    exactly one wins and every other claimant is told the winner's entry (whom to redirect to)."""

    async def main() -> None:
        d = make(Clock())
        members = [member(i) for i in range(1, 7)]
        # Leases kept alive between rounds, as members do every second: fifty rounds on a loaded
        # machine take longer than a lease lives, and an expired lease frees the digest mid-round.
        leases = [await d.join(m, 30) for m in members]
        for n in range(50):
            for lease in leases:
                await d.keep_alive(lease)
            dg = digest(n)
            claims = await asyncio.gather(
                *(d.claim(Entry(dg, lease.member, f"s{n}-{i}"), lease) for i, lease in enumerate(leases))
            )
            won = [c for c in claims if c.won]
            assert len(won) == 1, f"round {n}: {len(won)} claims won"
            assert {c.entry for c in claims} == {won[0].entry}, "a loser was not told the winner"
            assert await d.lookup(dg) == won[0].entry
        assert len(await d.entries()) == 50
        await d.close()

    run(main())


def test_a_dead_members_entries_expire_with_its_lease(make: Callable[[Clock], Directory]) -> None:
    async def main() -> None:
        clock = Clock()
        d = make(clock)
        a, b = await d.join(member(1), 4), await d.join(member(2), 4)
        assert (await d.claim(Entry(digest(1), a.member, "sa"), a)).won
        assert (await d.claim(Entry(digest(2), b.member, "sb"), b)).won
        clock.now += 3
        await d.keep_alive(b)  # b is alive; a stopped renewing
        clock.now += 2
        if clock.real:
            await wait_gone(d, digest(1), b)
        assert await d.lookup(digest(1)) is None, "the dead member's entry outlived its lease"
        assert (await d.lookup(digest(2))) is not None
        assert [m.id for m in await d.members()] == [member(2).id]
        with pytest.raises(LeaseExpired):
            await d.keep_alive(a)
        with pytest.raises(LeaseExpired):
            await d.claim(Entry(digest(3), a.member, "late"), a)
        # The badge of the dead member's session can now be placed elsewhere.
        assert (await d.claim(Entry(digest(1), b.member, "sb2"), b)).won
        await d.close()

    run(main())


def test_release_removes_only_the_members_own_entry(make: Callable[[Clock], Directory]) -> None:
    async def main() -> None:
        d = make(Clock())
        a, b = await d.join(member(1), 10), await d.join(member(2), 10)
        await d.claim(Entry(digest(1), a.member, "sa"), a)
        await d.release(digest(1), b)
        assert (await d.lookup(digest(1))) is not None, "another member's release removed the entry"
        await d.release(digest(1), a)
        assert await d.lookup(digest(1)) is None
        await d.close()

    run(main())


def test_a_pending_placement_becomes_the_chosen_members_session(make: Callable[[Clock], Directory]) -> None:
    """Placement promises a badge to a member (pending); that member's claim of its session wins,
    keeping the original claim time, and any other member is sent to it meanwhile."""

    async def main() -> None:
        clock = Clock()
        d = make(clock)
        a, b = await d.join(member(1), 10), await d.join(member(2), 10)
        first = await d.claim(Entry(digest(1), a.member, "", EntryState.PENDING), a)
        assert first.won
        clock.now += 1
        other = await d.claim(Entry(digest(1), b.member, "sb"), b)
        assert not other.won and other.entry.member == a.member
        mine = await d.claim(Entry(digest(1), a.member, "sa"), a)
        assert mine.won and mine.entry.state is EntryState.SESSION
        assert mine.entry.claimed_at == first.entry.claimed_at
        await d.close()

    run(main())


def test_entries_hold_digests_only() -> None:
    with pytest.raises(ValueError, match="64 hex"):
        Entry("badge-1234", member(1).id, "s")
    with pytest.raises(ValueError, match="16 hex"):
        Member("lab-a", "lab-a", "10.0.0.1", 7100, "sha256:00")


def test_a_placement_is_taken_over_by_the_member_it_names_and_nobody_else(
    make: Callable[[Clock], Directory],
) -> None:
    """The member a badge reached places its new session on another member (a pending entry naming
    it): that member's claim takes it over; a third member is sent there."""

    async def main() -> None:
        d = make(Clock())
        a, b, c = [await d.join(member(i), 10) for i in (1, 2, 3)]
        placed = await d.claim(Entry(digest(7), a.member, PLACED + b.member, EntryState.PENDING), a)
        assert placed.won and placed_on(placed.entry) == b.member
        third = await d.claim(Entry(digest(7), c.member, "sc"), c)
        assert not third.won and placed_on(third.entry) == b.member
        taken = await d.claim(Entry(digest(7), b.member, "sb"), b)
        assert taken.won and taken.entry.member == b.member and taken.taken_over
        again = await d.claim(Entry(digest(7), b.member, "sb"), b)
        assert again.won and not again.taken_over
        await d.release(digest(7), a)  # the placing member's lease no longer holds it
        assert (await d.lookup(digest(7))) == taken.entry
        await d.close()

    run(main())


def test_of_two_members_sessions_for_one_badge_the_earlier_keeps_the_entry(
    make: Callable[[Clock], Directory],
) -> None:
    """Two members each started a session for one badge (a partition, or two homes for a moment):
    when both claim it, the session that started first holds the entry, whichever claims first;
    the later one's claims lose from then on (docs/pools.md §3.2)."""

    async def main() -> None:
        d = make(Clock())
        a, b = await d.join(member(1), 10), await d.join(member(2), 10)
        later = await d.claim(Entry(digest(5), b.member, "sb", since=2_000_000_100.0), b)
        assert later.won
        first = await d.claim(Entry(digest(5), a.member, "sa", since=2_000_000_000.0), a)
        assert first.won and first.entry.session_id == "sa" and not first.taken_over
        again = await d.claim(Entry(digest(5), b.member, "sb", since=2_000_000_100.0), b)
        assert not again.won and again.entry.session_id == "sa"
        assert (await d.lookup(digest(5))) == first.entry
        await d.release(digest(5), b)  # the later member's release leaves the earlier's entry
        assert (await d.lookup(digest(5))) == first.entry
        # A pending claim (a badge-in, no session yet) never displaces a session.
        pending = await d.claim(Entry(digest(5), b.member, "", EntryState.PENDING, since=1.0), b)
        assert not pending.won
        await d.close()

    run(main())
