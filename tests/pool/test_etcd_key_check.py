"""The members' key check with an etcd directory (docs/pools.md §3.3), against a real etcd from
Debian's etcd-server: the pool's members share one token key, and a member whose key differs would
digest every badge differently from the others (each of its badges a second session). etcd holds the
pool token key's check record; a member whose key does not match it uses the directory for nothing
and says why (naming its key file, never a byte of the key), while the members that hold the key go
on as before. A rotation moves the record on: members left on the previous key stop making new
claims at once (their claims are conditional on the record) but keep their sessions' entries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pool.etcd_rig import EtcdCluster, etcd_cluster
from wayray.pool.directory import Entry, EntryState, Lease, Member
from wayray.pool.etcd import EtcdDirectory, KeyRefused, parse_endpoints
from wayray.pool.etcd_key import KeyCheck


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with etcd_cluster(Path(tmp_path_factory.mktemp("etcd")), 1) as cluster:
        yield cluster


def member(n: int) -> Member:
    return Member(f"{n:016x}", f"lab-{n}", f"10.0.0.{n}", 7100, "sha256:" + "ef" * 32)


def digest(n: int) -> str:
    return hashlib.sha256(f"etcd-key-check-{n}".encode()).hexdigest()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 300))


def directory(etcd: EtcdCluster, pool: str, n: int, key: KeyCheck) -> EtcdDirectory:
    return EtcdDirectory(member(n), pool, parse_endpoints(etcd.url), etcd.context(), key=key)


def secret_bytes_in(text: str, *keys: bytes) -> list[str]:
    """Which of ``keys`` show up in ``text`` in any of the forms a log could carry them."""
    found = []
    for key in keys:
        for form in (key.hex(), base64.b64encode(key).decode(), repr(key)[2:-1]):
            if form in text:
                found.append(form[:6] + "…")
    return found


def test_a_member_with_another_token_key_is_refused_and_says_why(
    etcd: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    pool = f"k{secrets.token_hex(4)}"
    right, wrong = secrets.token_bytes(32), secrets.token_bytes(32)
    right_file, wrong_file = Path("/etc/wayray/pool-lab.key"), Path("/etc/wayray/pool-lab-copy.key")

    async def main() -> None:
        a = directory(etcd, pool, 1, KeyCheck(right, right_file))
        b = directory(etcd, pool, 2, KeyCheck(right, right_file))
        m = directory(etcd, pool, 3, KeyCheck(wrong, wrong_file))
        la, lb = await a.join(member(1), 30), await b.join(member(2), 30)
        assert (await a.claim(Entry(digest(1), la.member, "s1"), la)).won
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="wayray.pool"):
            # Everything the mis-keyed member would do with the directory is refused.
            with pytest.raises(KeyRefused):
                await m.join(member(3), 30)
            none = Lease("", member(3).id, 30)  # what wrsrvd holds when its join was refused
            for attempt in (
                m.claim(Entry(digest(2), member(3).id, "", EntryState.PENDING), none),
                m.claim(Entry(digest(1), member(3).id, "s9"), none),
                m.lookup(digest(1)),
                m.entries(),
            ):
                with pytest.raises(KeyRefused):
                    await attempt
            await m.keep_alive_round()  # checks again, never joins
        said = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(said) == 1, [r.getMessage() for r in said]  # once, not every attempt
        message = said[0].getMessage()
        assert str(wrong_file) in message and "is not the pool's" in message, message
        assert f"copy the pool's token key file from a member of pool {pool}" in message, message
        assert (
            f"/wayray/pool/{pool}/key-check" in message
            and f"member lab-1 (10.0.0.1, id {member(1).id})" in message
        )
        assert m.refusal is not None and str(wrong_file) in m.refusal
        assert not secret_bytes_in(caplog.text, right, wrong)
        # Nothing of it reached etcd: no member record, no entry; the others see one holder.
        assert {x.id for x in await a.members()} == {member(1).id, member(2).id}
        assert [e.member for e in await b.entries()] == [member(1).id]
        # The members with the pool's key go on as before: b is told a holds the badge.
        claim = await b.claim(Entry(digest(1), lb.member, "", EntryState.PENDING), lb)
        assert not claim.won and claim.entry.member == member(1).id
        await b.keep_alive_round()
        assert b.proven(member(1).id) and not b.proven(member(3).id)
        for d in (a, b, m):
            await d.close()

    run(main())


def test_a_rotation_stops_new_claims_of_members_left_behind_and_keeps_their_sessions(
    etcd: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    pool = f"r{secrets.token_hex(4)}"
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    key_file = Path("/etc/wayray/pool-lab.key")

    async def main() -> None:
        a = directory(etcd, pool, 1, KeyCheck(old, key_file))  # not restarted yet
        la = await a.join(member(1), 30)
        assert (await a.claim(Entry(digest(1), la.member, "s1"), la)).won  # its session, from before
        # b is restarted with the new key and the old one as its previous: the pool moves on.
        b = directory(etcd, pool, 2, KeyCheck(new, key_file, old))
        with caplog.at_level(logging.INFO, logger="wayray.pool"):
            await b.join(member(2), 30)
        assert "the pool token key is rotated" in caplog.text
        # a has not looked since: its very next new claim is refused all the same (the claim is
        # conditional on the record it checked), and it says which member must be restarted.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="wayray.pool"), pytest.raises(KeyRefused):
            await a.claim(Entry(digest(2), la.member, "", EntryState.PENDING), la)
        assert "is the pool's previous key" in caplog.text and str(key_file) in caplog.text
        assert "restart it" in caplog.text
        assert not secret_bytes_in(caplog.text, old, new)
        assert await b.lookup(digest(2)) is None  # nothing was claimed by a
        # Its session stays reachable: its entry is kept (claimed again, say after a new lease), and b
        # finds it under the previous key's digest (what a badge's lookup does during a rotation).
        assert (await a.claim(Entry(digest(1), la.member, "s1"), la)).won
        await a.keep_alive_round()
        found = await b.lookup(digest(1))
        assert found is not None and found.member == member(1).id
        await b.keep_alive_round()
        assert b.peer(member(1).id) is not None  # a redirect target for its sessions
        assert not b.proven(member(1).id)  # never chosen for a new session
        # a restarted with the new key: a member of the pool again.
        await a.close()
        a2 = directory(etcd, pool, 1, KeyCheck(new, key_file, old))
        la2 = await a2.join(member(1), 30)
        assert (await a2.claim(Entry(digest(3), la2.member, "", EntryState.PENDING), la2)).won
        await b.keep_alive_round()
        assert b.proven(member(1).id)
        await a2.close()
        await b.close()

    run(main())


def test_two_first_members_with_different_keys_at_once_one_key_is_the_pools(etcd: EtcdCluster) -> None:
    """The record is made once, by create-if-absent: of two members of a new pool with different keys
    checking at the same instant, exactly one key becomes the pool's, the other member is refused."""

    async def main() -> None:
        for n in range(20):
            pool = f"f{secrets.token_hex(4)}"
            a = directory(etcd, pool, 1, KeyCheck(secrets.token_bytes(32), Path("/k/a.key")))
            m = directory(etcd, pool, 2, KeyCheck(secrets.token_bytes(32), Path("/k/m.key")))
            states = await asyncio.gather(a.check_key(), m.check_key())
            assert sorted(states) == ["foreign", "ok"], f"round {n}: {states}"
            for d in (a, m):
                await d.close()

    run(main())


def test_a_malformed_key_check_record_refuses_with_what_to_do(
    etcd: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    pool = f"g{secrets.token_hex(4)}"

    async def main() -> None:
        a = directory(etcd, pool, 1, KeyCheck(secrets.token_bytes(32), Path("/k/a.key")))
        await a._call(
            "/v3/kv/put",
            {
                "key": base64.b64encode(a.key_check_key.encode()).decode(),
                "value": base64.b64encode(b"{").decode(),
            },
        )
        with caplog.at_level(logging.INFO, logger="wayray.pool"), pytest.raises(KeyRefused):
            await a.lookup(digest(1))
        assert "is malformed" in caplog.text and f"etcdctl del /wayray/pool/{pool}/key-check" in caplog.text
        await a.close()

    run(main())
