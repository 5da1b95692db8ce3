"""The pool port (docs/pools.md §2, §8): members talk over QUIC with mutual TLS on loopback here.
A member that presents a certificate of the pool gets answers; a peer with another certificate never
gets a request through (the handler is never called: it learns nothing, not whether a token exists);
garbage, oversized, stale and replayed requests are refused with a reason and the port carries on."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from wayray.pool.peers import (
    MAX_REQUEST,
    MAX_SKEW,
    NONCE_MEMORY,
    PeerClient,
    PeerError,
    PeerTrust,
    PoolListener,
    ReplayGuard,
    RequestRefused,
)
from wayray.transport.identity import ServerIdentity


def identity(tmp: Path, name: str) -> ServerIdentity:
    return ServerIdentity.load_or_create(tmp / name, name=name)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.a, self.b, self.stranger = (identity(tmp, n) for n in ("a", "b", "stranger"))
        self.trust = PeerTrust(frozenset({self.a.fingerprint, self.b.fingerprint}))
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def handler(self, peer: str, request: dict[str, Any]) -> dict[str, Any]:
        self.asked.append((peer, request))
        return {"ok": True, "echo": request.get("type")}


def run(tmp: Path, test: Any) -> None:
    async def main() -> None:
        rig = Rig(tmp)
        listener = await PoolListener.start("127.0.0.1", 0, rig.a, rig.trust, rig.handler)
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
        client = PeerClient(rig.b, rig.trust)
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
        client = PeerClient(rig.stranger, PeerTrust(frozenset({rig.a.fingerprint})))
        try:
            with pytest.raises(PeerError):
                await client.request("127.0.0.1", listener.port, {"type": "lookup", "digest": "0" * 64})
        finally:
            await client.close()
        assert rig.asked == [], "a stranger's request reached the member"

    run(tmp_path, test)


def test_a_member_does_not_ask_a_listener_it_does_not_trust(tmp_path: Path) -> None:
    async def test(rig: Rig, listener: PoolListener) -> None:
        client = PeerClient(rig.b, PeerTrust(frozenset({rig.b.fingerprint})))  # not a's
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
        client = PeerClient(rig.b, rig.trust)
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
        client = PeerClient(rig.b, rig.trust)
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
