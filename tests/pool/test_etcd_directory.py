"""The etcd directory (docs/pools.md §11) against a real three-member etcd cluster from Debian's
etcd-server: two servers (each its own client, each talking to another etcd member first) claim the
same badge at the same instant fifty times over, and one etcd member is killed halfway: every round
still makes exactly one holder, and nothing claimed before the kill is lost. A client without the
pool's client certificate gets no answer at all."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pool.etcd_rig import POOL_KEY, EtcdCluster, etcd_cluster
from wayray.pool.directory import Claim, DirectoryError, Entry, EntryState, Member
from wayray.pool.etcd import EtcdDirectory, parse_endpoints


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    with etcd_cluster(tmp_path, 3) as cluster:
        yield cluster


def member(n: int) -> Member:
    return Member(f"{n:016x}", f"lab-{n}", f"10.0.0.{n}", 7100, "sha256:" + "cd" * 32)


def digest(n: int) -> str:
    return hashlib.sha256(f"etcd-double-badge-{n}".encode()).hexdigest()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 300))


def test_fifty_double_badges_make_one_holder_each_and_an_etcd_member_dies_losing_nothing(
    etcd: EtcdCluster,
) -> None:
    async def main() -> None:
        endpoints = parse_endpoints(etcd.url)
        # Each server asks another etcd member first (the gateway forwards writes to the leader).
        a = EtcdDirectory(member(1), "lab", endpoints, etcd.context(), key=POOL_KEY)
        b = EtcdDirectory(member(2), "lab", endpoints[1:] + endpoints[:1], etcd.context(), key=POOL_KEY)
        la, lb = await a.join(member(1), 10), await b.join(member(2), 10)
        keep = asyncio.get_running_loop().create_task(_keep(a, la, b, lb))
        holders: dict[str, str] = {}
        try:
            for n in range(50):
                if n == 25:
                    etcd.kill(etcd.members[0])  # a's first endpoint, and maybe the leader
                dg = digest(n)
                ca, cb = await asyncio.gather(
                    a.claim(Entry(dg, la.member, "", EntryState.PENDING), la),
                    b.claim(Entry(dg, lb.member, "", EntryState.PENDING), lb),
                )
                assert ca.won != cb.won, f"round {n}: {'both' if ca.won else 'neither'} claim won"
                assert ca.entry == cb.entry, f"round {n}: the loser was not told the winner"
                holders[dg] = ca.entry.member
                # The winner starts its session: its pending entry becomes a session entry.
                winner, lease = (a, la) if ca.won else (b, lb)
                started = await winner.claim(Entry(dg, lease.member, f"s{n}"), lease)
                assert started.won and started.entry.state is EntryState.SESSION
            # Nothing lost: every badge still has its one holder, read through either server.
            for d in (a, b):
                found = {e.digest: e.member for e in await d.entries()}
                assert found == holders
            assert {m.id for m in await b.members()} == {member(1).id, member(2).id}
        finally:
            keep.cancel()
            await a.close()
            await b.close()

    run(main())


async def _keep(a: EtcdDirectory, la: Any, b: EtcdDirectory, lb: Any) -> None:
    while True:
        await asyncio.sleep(2)
        await asyncio.gather(a.keep_alive(la), b.keep_alive(lb))


def test_a_badge_in_rides_out_an_etcd_that_stops_answering_for_a_while(tmp_path: Path) -> None:
    """Between an etcd leader's death and the next election, or while a member is too loaded to
    answer, no endpoint answers: the claim of a kiosk's badge must wait for etcd rather than fail the
    badge-in. The member is frozen (SIGSTOP) and thawed only once the directory has said that it
    keeps trying, so the order is certain whatever the machine's speed."""
    with etcd_cluster(tmp_path, 1) as cluster:
        (only,) = cluster.members
        assert only.proc is not None
        pid = only.proc.pid

        class Thaw(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "trying again" in record.getMessage():
                    os.kill(pid, signal.SIGCONT)

        async def main() -> None:
            d = EtcdDirectory(
                member(1), "lab", parse_endpoints(cluster.url), cluster.context(), key=POOL_KEY, timeout=1.0
            )
            lease = await d.join(member(1), 30)
            thaw = Thaw()
            logging.getLogger("wayray.pool").addHandler(thaw)
            os.kill(pid, signal.SIGSTOP)
            try:
                claim = await d.claim(Entry(digest(7), lease.member, "s7"), lease)
            finally:
                os.kill(pid, signal.SIGCONT)
                logging.getLogger("wayray.pool").removeHandler(thaw)
            assert claim.won and claim.entry.session_id == "s7"
            assert (found := await d.lookup(digest(7))) is not None and found.session_id == "s7"
            await d.close()

        run(main())


def _leader(cluster: EtcdCluster, asking: list[int]) -> int | None:
    """The index of the member that the members ``asking`` (all of them) call their leader, if they
    agree on one."""
    said = set()
    ids = {}
    for i, m in enumerate(cluster.members):
        if i not in asking:
            continue
        status = cluster.status(m)
        if status is None or not status.get("leader"):
            return None
        said.add(str(status["leader"]))
        ids[str(status["header"]["member_id"])] = i
    if len(said) != 1:
        return None
    return ids.get(said.pop())


def test_a_stalled_etcd_leader_costs_no_claim_while_the_others_elect_one(etcd: EtcdCluster) -> None:
    """etcd's leader stalls (SIGSTOP: a process starved by a loaded machine, not a dead one, whose
    connections stay open) while the two others answer. Until they elect a new leader, what they are
    asked fails (a write waits for the stalled leader; a read is told "etcdserver: leader changed"
    when the election ends). Claims and lookups go on without pause through the election: every one
    must be answered. Before, a member's error answer ended the request at once, and the member that
    gave it stayed the one asked first: a badge-in during an election was told the directory does not
    answer. The election's end is read from the members themselves, not waited for by a clock."""
    everyone = list(range(len(etcd.members)))
    while (leader := _leader(etcd, everyone)) is None:  # just started: they may still be electing
        pass
    others = [i for i in everyone if i != leader]
    stalled = etcd.members[leader]
    assert stalled.proc is not None
    # A follower first, the leader last: asked, the followers forward to the stalled leader.
    endpoints = tuple(etcd.members[i].endpoint for i in [*others, leader])

    async def main() -> None:
        d = EtcdDirectory(member(1), "lab", endpoints, etcd.context(), key=POOL_KEY)
        lease = await d.join(member(1), 120)  # the test is about answers, not the lease's keep-alive
        made: list[str] = []
        os.kill(stalled.proc.pid, signal.SIGSTOP)
        try:
            loop = asyncio.get_running_loop()
            n = 0
            elected = False
            while True:
                # Two badges at once and a lookup: writes and linearizable reads, as badge-ins make them.
                batch = [digest(100 + n + i) for i in range(2)]
                claims = await asyncio.gather(
                    *(d.claim(Entry(dg, lease.member, "", EntryState.PENDING), lease) for dg in batch),
                    d.lookup(digest(100)),
                )
                for dg, claim in zip(batch, claims[:2], strict=True):
                    assert isinstance(claim, Claim) and claim.won, dg
                    made.append(dg)
                n += 2
                if elected:
                    break  # one more round after the new leader was seen
                elected = await loop.run_in_executor(
                    None, lambda: _leader(etcd, others) not in (None, leader)
                )
        finally:
            os.kill(stalled.proc.pid, signal.SIGCONT)
        found = {e.digest for e in await d.entries()}
        assert set(made) <= found, "a claim answered as won is not in etcd"
        await d.close()

    run(main())


class AnswerLosingProxy:
    """Between the directory and etcd: TLS ends here (with etcd's own certificate) so each request is
    seen whole; etcd gets every request, but while ``losing`` the first answer to each distinct
    request is lost (the connection is cut instead), as when an etcd too slow for the request's
    timeout answers after the directory gave up. Which answer is lost is decided by the request, not
    by a clock."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        self.losing = False
        self.lost = 0
        self._seen: set[bytes] = set()
        self._etcd = httpx.AsyncClient(verify=cluster.context(), trust_env=False)
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cluster.server.cert), str(self.cluster.server.key))
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                answer = await self._etcd.post(self.cluster.members[0].endpoint + path, content=body)
                if self.losing and body not in self._seen:
                    self._seen.add(body)
                    self.lost += 1
                    return  # etcd did it; its answer is lost
                writer.write(
                    b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                    % (answer.status_code, len(answer.content))
                    + answer.content
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._etcd.aclose()


def test_a_claim_whose_answers_are_lost_is_won_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """etcd made the claim but its answer did not come back (etcd was slower than the request's
    timeout, or the connection broke): the repeated request finds the entry this claim wrote and takes
    it as won. Before, it took its own entry over again, another write whose answer could be lost as
    well: on a loaded machine a badge's claim ended "kept changing under us" and the kiosk got no
    session. Here every first answer is lost, for a new badge and for its session starting."""
    with etcd_cluster(tmp_path, 1) as cluster:

        async def main() -> None:
            proxy = AnswerLosingProxy(cluster)
            d = EtcdDirectory(member(1), "lab", (await proxy.start(),), cluster.context(), key=POOL_KEY)
            try:
                lease = await d.join(member(1), 60)
                proxy.losing = True
                pending = await d.claim(Entry(digest(3), lease.member, "", EntryState.PENDING), lease)
                assert pending.won and pending.entry.state is EntryState.PENDING
                started = await d.claim(Entry(digest(3), lease.member, "s3"), lease)
                assert started.won and started.entry.session_id == "s3"
                assert proxy.lost >= 2, "no answer was lost: the test shows nothing"
                proxy.losing = False
                assert (found := await d.lookup(digest(3))) is not None
                assert (found.member, found.session_id) == (lease.member, "s3")
            finally:
                await d.close()
                await proxy.close()

        with caplog.at_level(logging.INFO, logger="wayray.pool"):
            run(main())
    assert "kept changing" not in caplog.text


def test_a_client_without_the_pools_certificate_learns_nothing(etcd: EtcdCluster) -> None:
    """etcd requires a client certificate from its CA: without one the handshake fails, and the
    directory says it cannot reach etcd rather than answering anything about a badge."""

    async def main() -> None:
        good = EtcdDirectory(member(1), "lab", parse_endpoints(etcd.url), etcd.context(), key=POOL_KEY)
        lease = await good.join(member(1), 10)
        assert (await good.claim(Entry(digest(1), lease.member, "s1"), lease)).won
        bare = ssl.create_default_context(cafile=str(etcd.ca.path))  # trusts etcd, no certificate
        stranger = EtcdDirectory(member(9), "lab", parse_endpoints(etcd.url), bare, key=POOL_KEY)
        with pytest.raises(DirectoryError, match="no etcd endpoint answers"):
            await stranger.lookup(digest(1))
        with pytest.raises(DirectoryError, match="no etcd endpoint answers"):
            await stranger.entries()
        await stranger.close()
        await good.close()

    run(main())


def test_etcd_urls_are_checked() -> None:
    assert parse_endpoints("etcd://10.0.0.1:2379,[2001:db8::1]:2379") == (
        "https://10.0.0.1:2379",
        "https://[2001:db8::1]:2379",
    )
    for bad in ("http://10.0.0.1:2379", "etcd://10.0.0.1", "etcd://", "etcd://h:2379/x", "etcd://h:99999"):
        with pytest.raises(ValueError):
            parse_endpoints(bad)
