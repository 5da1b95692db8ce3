"""The pool port (docs/pools.md §2, §8): members talk over QUIC with mutual TLS on loopback here.
A member that presents a certificate of the pool gets answers; a peer with another certificate never
gets a request through (the handler is never called: it learns nothing, not whether a token exists);
garbage, oversized, stale and replayed requests are refused with a reason and the port carries on."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from wayray.pool.peers import (
    MAX_REQUEST,
    MAX_SKEW,
    NONCE_MEMORY,
    NotAMember,
    PeerClient,
    PeerError,
    PeerTrust,
    PoolKey,
    PoolListener,
    ReplayGuard,
    RequestRefused,
)
from wayray.transport.identity import ServerIdentity


def identity(tmp: Path, name: str) -> ServerIdentity:
    return ServerIdentity.load_or_create(tmp / name, name=name)


POOL_KEY = bytes(range(32))


def key(member_id: str, secret: bytes = POOL_KEY, previous: bytes | None = None) -> PoolKey:
    return PoolKey("lab", member_id, secret, previous)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.a, self.b, self.stranger = (identity(tmp, n) for n in ("a", "b", "stranger"))
        self.trust = PeerTrust(frozenset({self.a.fingerprint, self.b.fingerprint}))
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.key_a, self.key_b = key("a" * 16), key("b" * 16)

    async def handler(self, peer: str, request: dict[str, Any]) -> dict[str, Any]:
        self.asked.append((peer, request))
        return {"ok": True, "echo": request.get("type")}


def run(tmp: Path, test: Any) -> None:
    async def main() -> None:
        rig = Rig(tmp)
        listener = await PoolListener.start("127.0.0.1", 0, rig.a, rig.trust, rig.handler, key=rig.key_a)
        try:
            await test(rig, listener)
        finally:
            listener.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def frame(obj: Any) -> bytes:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def test_a_member_is_answered_and_knows_who_asked(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = PeerClient(rig.b, rig.trust, rig.key_b)
        try:
            answer = await client.request("127.0.0.1", listener.port, {"type": "lookup"})
            assert answer == {"ok": True, "echo": "lookup"}
            assert rig.asked[0][0] == rig.b.fingerprint
        finally:
            await client.close()

    run(tmp_path, test)


def test_a_stranger_gets_no_request_through(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        # It trusts the member, but the member does not trust it: refused at the handshake.
        client = PeerClient(rig.stranger, PeerTrust(frozenset({rig.a.fingerprint})), rig.key_b)
        try:
            with pytest.raises(PeerError):
                await client.request("127.0.0.1", listener.port, {"type": "lookup", "digest": "0" * 64})
        finally:
            await client.close()
        assert rig.asked == [], "a stranger's request reached the member"

    run(tmp_path, test)


def test_a_member_does_not_ask_a_listener_it_does_not_trust(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = PeerClient(rig.b, PeerTrust(frozenset({rig.b.fingerprint})), rig.key_b)  # not a's
        try:
            with pytest.raises(PeerError, match="not among the pool's fingerprints"):
                await client.request("127.0.0.1", listener.port, {"type": "lookup"})
        finally:
            await client.close()
        assert rig.asked == []

    run(tmp_path, test)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (frame(b"\xff\xfe not json"), "malformed request"),
        (frame([1, 2, 3]), "malformed request"),
        (struct.pack(">I", MAX_REQUEST + 1) + b"x" * 100, f"request too large: {MAX_REQUEST + 1} bytes"),
        (frame({"type": "lookup", "nonce": "ab" * 16, "time": 1.0}), "stale request"),
        (frame({"type": "lookup", "time": time.time()}), "'nonce' must be 32 hex digits"),
    ],
    ids=["garbage", "not-an-object", "oversized", "stale", "no-nonce"],
)
def test_bad_requests_are_refused_with_a_reason_and_the_port_carries_on(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = PeerClient(rig.b, rig.trust, rig.key_b)
        try:
            answer = await client.send_raw("127.0.0.1", listener.port, data)
            assert answer["ok"] is False and reason in answer["error"], answer
            assert rig.asked == []
            assert (await client.request("127.0.0.1", listener.port, {"type": "after"}))["ok"]
        finally:
            await client.close()

    run(tmp_path, test)


def test_a_replayed_request_is_refused(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = PeerClient(rig.b, rig.trust, rig.key_b)
        data = frame({"type": "claim", "nonce": "cd" * 16, "time": time.time()})
        try:
            assert (await client.send_raw("127.0.0.1", listener.port, data))["ok"] is True
            again = await client.send_raw("127.0.0.1", listener.port, data)
            assert again == {"ok": False, "error": "replayed request: this nonce was used already"}
            assert len(rig.asked) == 1
        finally:
            await client.close()

    run(tmp_path, test)


def test_nonces_are_remembered_as_long_as_a_replay_could_pass_the_clock_check() -> None:
    now = [1000.0]
    guard = ReplayGuard(lambda: now[0])
    request = {"nonce": "ef" * 16, "time": 1000.0}
    guard.check(request)
    now[0] += MAX_SKEW  # still within the clock check: the nonce must still be known
    with pytest.raises(RequestRefused, match="replayed"):
        guard.check(request)
    now[0] += NONCE_MEMORY  # forgotten now, and refused by the clock check instead
    with pytest.raises(RequestRefused, match="stale"):
        guard.check(request)
    for n in range(1000):
        guard.check({"nonce": f"{n:032x}", "time": now[0]})
    now[0] += NONCE_MEMORY + 1
    guard.check({"nonce": "aa" * 16, "time": now[0]})
    assert len(guard._seen) == 1, "old nonces were not dropped"


# --- the members' key check (docs/pools.md §3.3, §8) -------------------------------------------------


class NoKeyCheck(PeerClient):
    """A peer that holds a pinned certificate but skips the key check (a host without the pool's
    key, or older code): its first request is whatever it sends."""

    async def _key_check(self, *args: Any) -> None:
        return None


async def refused_and_closed(client: PeerClient, port: int, data: bytes, reason: str) -> None:
    """``data`` is answered with a refusal naming ``reason`` and the connection is closed with it."""
    answer = await client.send_raw("127.0.0.1", port, data)
    assert answer["ok"] is False and reason in answer["error"], answer
    protocol = client._conns[("127.0.0.1", port)][1]
    await asyncio.wait_for(protocol.wait_closed(), 10)
    assert reason in (getattr(protocol, "closed_because", None) or ""), "closed without the reason"


@pytest.mark.parametrize(
    ("secret", "previous", "reason"),
    [
        (b"\x01" * 32, None, "the pool token key differs from this member's"),
        (b"\x01" * 32, POOL_KEY, "holds a newer key, whose previous key is this member's"),
    ],
    ids=["another-key", "newer-key"],
)
def test_a_member_without_the_pool_key_gets_no_request_through(
    tmp_path: Path, secret: bytes, previous: bytes | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = PeerClient(rig.b, rig.trust, key("b" * 16, secret, previous))
        try:
            with pytest.raises(NotAMember, match=reason):
                await client.request("127.0.0.1", listener.port, {"type": "lookup", "digest": "0" * 64})
            # Not dialled again at once (a refused peer would cost a handshake every round).
            with pytest.raises(NotAMember, match=reason):
                await client.request("127.0.0.1", listener.port, {"type": "lookup"})
        finally:
            await client.close()
        assert rig.asked == [], "a request of a member without the pool's key reached the member"
        # The port carries on for the members that hold the key.
        good = PeerClient(rig.b, rig.trust, rig.key_b)
        try:
            assert (await good.request("127.0.0.1", listener.port, {"type": "lookup"}))["ok"]
        finally:
            await good.close()

    run(tmp_path, test)
    refusals = [r.getMessage() for r in caplog.records if "refused the peer" in r.getMessage()]
    assert len(refusals) == 1 and reason in refusals[0], refusals


def test_a_peer_that_skips_the_key_check_is_refused_and_its_connection_closed(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = NoKeyCheck(rig.b, rig.trust, rig.key_b)
        data = frame({"type": "lookup", "digest": "0" * 64, "nonce": "12" * 16, "time": time.time()})
        try:
            await refused_and_closed(
                client, listener.port, data, "the first request must be the members' key check"
            )
        finally:
            await client.close()
        assert rig.asked == []

    run(tmp_path, test)


def test_a_replayed_key_check_is_refused(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        hello = frame(rig.key_b.hello(rig.b.fingerprint, rig.a.fingerprint))
        first, second = NoKeyCheck(rig.b, rig.trust, rig.key_b), NoKeyCheck(rig.b, rig.trust, rig.key_b)
        try:
            answer = await first.send_raw("127.0.0.1", listener.port, hello)
            assert answer["ok"] is True and answer["member_id"] == "a" * 16, answer
            await refused_and_closed(second, listener.port, hello, "replayed request")
        finally:
            await first.close()
            await second.close()
        assert rig.asked == []

    run(tmp_path, test)


def test_a_member_does_not_ask_a_peer_that_cannot_prove_the_pool_key(tmp_path: Path) -> None:
    class Careless(PoolKey):
        """A listener without the pool's key that takes any hello (a host that copied a member's
        certificate but not the key)."""

        def check_hello(self, request: dict[str, Any], sender: str, receiver: str) -> str:
            return str(request["member_id"])

    async def main() -> None:
        rig = Rig(tmp_path)
        rogue = Careless("lab", "a" * 16, b"\x02" * 32)
        listener = await PoolListener.start("127.0.0.1", 0, rig.a, rig.trust, rig.handler, key=rogue)
        client = PeerClient(rig.b, rig.trust, rig.key_b)
        try:
            with pytest.raises(NotAMember, match="does not prove this member's key"):
                await client.request("127.0.0.1", listener.port, {"type": "lookup", "digest": "0" * 64})
            assert rig.asked == [], "a digest was sent to a peer without the pool's key"
        finally:
            await client.close()
            listener.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_key_check_names_a_member_left_on_the_previous_key_and_another_pool() -> None:
    new, old = b"\x05" * 32, b"\x06" * 32
    here = PoolKey("lab", "a" * 16, new, old)
    hello = PoolKey("lab", "b" * 16, old).hello("fp-b", "fp-a")
    with pytest.raises(RequestRefused, match="still holds the previous key; restart it"):
        here.check_hello(hello, "fp-b", "fp-a")
    other_pool = PoolKey("office", "b" * 16, new).hello("fp-b", "fp-a")
    with pytest.raises(RequestRefused, match="member of pool 'office'"):
        here.check_hello(other_pool, "fp-b", "fp-a")
    # Bound to both certificates: a hello made for another member, or by another certificate, fails.
    good = PoolKey("lab", "b" * 16, new).hello("fp-b", "fp-a")
    assert here.check_hello(good, "fp-b", "fp-a") == "b" * 16
    with pytest.raises(RequestRefused, match="key differs"):
        here.check_hello(good, "fp-b", "fp-c")
    with pytest.raises(RequestRefused, match="key differs"):
        here.check_hello(good, "fp-x", "fp-a")


def test_dialling_a_member_that_is_gone_leaves_no_unretrieved_error_in_the_log(tmp_path: Path) -> None:
    """A member that dials a dead one says so once ("does not answer"), and asyncio does not add
    "Future exception was never retrieved: ConnectionError" to its log: aioquic's connect waiter,
    left behind when the dial gives up, is read."""

    async def main() -> None:
        rig = Rig(tmp_path)
        loop = asyncio.get_running_loop()
        unhandled: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
            silent.bind(("127.0.0.1", 0))
            client = PeerClient(rig.b, rig.trust, rig.key_b)
            try:
                with pytest.raises(PeerError, match="does not answer"):
                    await client.request("127.0.0.1", silent.getsockname()[1], {"type": "lookup"})
            finally:
                await client.close()
        for _ in range(20):  # the closed connection's last events, then its futures collected
            await asyncio.sleep(0.05)
            gc.collect()
        assert not unhandled, [str(c.get("message")) + " " + repr(c.get("exception")) for c in unhandled]

    asyncio.run(asyncio.wait_for(main(), 60))
