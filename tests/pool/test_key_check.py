"""The members' key check (docs/pools.md §3.3, §8) with real members in network namespaces: a member
whose certificate the pool trusts but whose pool token key is another one is refused in its first
pool message by every member, with a log line that says why; it is never a home of the directory nor
a target of placement or redirect, and the members that share the key carry on (redirects between
them work, each badge gets one session)."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Harness, eventually
from tests.pool.netns import Lan
from tests.pool.rig import MemberServer, member, member_identity, sharing, wradm, wradm_until
from tests.pool.test_drain_failover import QUIET, holder, one_shot
from tests.pool.test_etcd_pool import refused_at

pytestmark = pytest.mark.slow


def answers(srv: MemberServer, other: MemberServer) -> bool | None:
    """Whether ``srv`` lists ``other`` as a member that answers it (None: not listed yet)."""
    for row in srv.admin("pool")["members"]:
        if not row["this"] and row["fingerprint"] == other.fingerprint:
            return bool(row["answers"])
    return None


def test_a_member_without_the_pool_key_is_refused_and_the_pool_carries_on(
    harness: Harness, net: Lan
) -> None:
    hosts = [net.add(n) for n in ("srva", "srvb", "srvc")]
    pins = [member_identity(harness, h) for h in hosts]
    opts = sharing(harness, pins)
    a, b = (member(harness, h, extra=opts, command=QUIET) for h in hosts[:2])
    # C: a certificate the pool pins, but another token key (a wrong file copied, a host that was
    # never given the key); it would take nearly every new session by its weight if it were a member.
    wrong = harness.tmp / "another-pool-token.key"
    c_opts = [str(wrong) if o == str(harness.tmp / "pool-token.key") else o for o in opts]
    c = member(harness, hosts[2], extra=[*c_opts, "--pool-weight", "10000"], command=QUIET)
    eventually(lambda: answers(a, b) and answers(b, a), "A and B to share the directory")
    for srv in (a, b):
        eventually(
            lambda s=srv: "the pool token key differs" in s.log_text(),
            f"{srv.host.name} to log why it refuses C",
        )
        # Refused when it asked; left out once this member's own key check of it failed too.
        eventually(lambda s=srv: answers(s, c) is False, f"{srv.host.name} to list C as not answering")
    eventually(lambda: "the pool token key differs" in c.log_text(), "C to log that it is refused")

    # B takes no new session: every new badge at B is placed by weighted choice among the others,
    # and C (weight 10000) must never be one of them.
    b.admin("drain", draining=True)
    eventually(
        lambda: any(r["state"] == "drain" for r in a.admin("pool")["members"] if not r["this"]),
        "A to see B drained",
    )
    kiosk = net.add("kiosk")
    for n in range(3):
        shot = one_shot(harness, kiosk, b, f"keycheck-badge-{n}")
        assert shot["redirects"] == 1, shot
        assert holder([a, b, c], shot["session_id"]) is a
    assert c.sessions() == [], "a member without the pool's key got a session placed on it"
    # The members that share the key still find each other's sessions: the badge at A, directly.
    again = one_shot(harness, kiosk, a, "keycheck-badge-0")
    assert holder([a, b, c], again["session_id"]) is a and len(a.sessions()) == 3
    assert answers(a, b) and answers(b, a)
    assert answers(a, c) is False and answers(b, c) is False, "C was taken into the pool after all"
    # C, left out, takes no badge itself either: a kiosk that reaches it (a pool kiosk may dial it
    # first, it announces room) is told to try another server; before, C gave badge 0 a second session.
    told = refused_at(harness, kiosk, c, "keycheck-badge-0")
    assert "its pool token key is not the pool's" in told, told[-3000:]
    assert c.sessions() == [] and len(a.sessions()) == 3
    # What an operator reads: on C, that it takes no badges, why and what to do (wradm pool and
    # wradm status); on A and B, that C is refused and which member it is.
    c_id = c.admin("status")["pool"]["member"]
    for view in ("pool", "status"):
        told = wradm_until(harness, c, view, "takes no badges")
        assert f"the pool token key in {wrong} is not theirs" in told, told
        assert f"copy the pool's token key file from a member of pool lab to {wrong}" in told, told
    for srv in (a, b):
        listed = wradm(harness, srv, "pool")
        assert f"member standalone on srvc ({c_id}) is refused" in listed, listed
        assert "the pool token key differs" in listed, listed
        status = wradm(harness, srv, "status")
        assert f"standalone on srvc ({c_id}): refused at the members' key check" in status, status
        assert "takes no badges" not in listed + status
    for srv in (a, b, c):
        assert "keycheck-badge" not in srv.log_text()
