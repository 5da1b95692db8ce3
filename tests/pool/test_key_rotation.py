"""Rotating the pool's token key (docs/pools.md §3.3) with real members: a badge whose session was
recorded under the old key, presented after every member restarted with a new key and the old one as
`--pool-previous-key-file`, still finds its session — redirected to its member when it reached the
other — and a badge new since the rotation gets its session under the new key."""

from __future__ import annotations

import os
import secrets
import signal

import pytest

from tests.e2e.harness import Harness, eventually
from tests.pool.netns import Lan
from tests.pool.rig import member, member_identity, sharing
from tests.pool.test_drain_failover import holder, one_shot

pytestmark = pytest.mark.slow


def test_badges_in_flight_find_their_sessions_across_a_token_key_rotation(
    harness: Harness, net: Lan
) -> None:
    hosts = [net.add("srva"), net.add("srvb")]
    pins = [member_identity(harness, h) for h in hosts]
    a, b = (member(harness, h, extra=sharing(harness, pins), command=["sleep", "3600"]) for h in hosts)
    members = [a, b]

    def both_answer() -> bool:
        return all(any(r["answers"] and not r["this"] for r in m.admin("pool")["members"]) for m in members)

    eventually(both_answer, "the members to share the directory")
    kiosk = net.add("kiosk")
    before = one_shot(harness, kiosk, a, "rotated-badge")
    owner = holder(members, before["session_id"])
    other = b if owner is a else a
    # The rotation: the old key becomes the previous one, a new key is made, every member restarts.
    key = harness.tmp / "pool-token.key"
    previous = harness.tmp / "pool-token.previous.key"
    key.rename(previous)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, secrets.token_bytes(32))
    os.close(fd)
    for m in members:
        m.signal(signal.SIGTERM)  # the server stops; its sessions keep running for the next one
        m.wait()
        m.extra = [*m.extra, "--pool-previous-key-file", str(previous)]
        m.start()
    eventually(both_answer, "the restarted members to share the directory again")
    eventually(
        lambda: [s["id"] for s in owner.sessions()] == [before["session_id"]],
        "the session to be served again by its restarted wrsrvd",
    )
    # The badge of before reaches the member that does not hold its session: redirected to it.
    moved = one_shot(harness, kiosk, other, "rotated-badge")
    assert moved["redirects"] == 1
    assert moved["session_id"] == before["session_id"]
    assert other.sessions() == [], "a second session was started for the badge under the new key"
    # And at its own member, directly.
    direct = one_shot(harness, kiosk, owner, "rotated-badge")
    assert (direct["session_id"], direct["redirects"]) == (before["session_id"], 0)
    assert len(owner.sessions()) == 1
    # A badge new since the rotation: one session, found again at the other member.
    new = one_shot(harness, kiosk, a, "new-badge")
    again = one_shot(harness, kiosk, b, "new-badge")
    assert again["session_id"] == new["session_id"]
    assert sum(len(m.sessions()) for m in members) == 2
