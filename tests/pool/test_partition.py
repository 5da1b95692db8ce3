"""A network partition between two members (docs/pools.md §3.2), made by cutting the link between
their namespaces (a blackhole route each way; the kiosk still reaches both): on each side the other
member is dead, and one badge presented on both sides gets a session on each — the price of a LAN
directory, which is no consensus store. When the link comes back the members find both sessions, and
the earlier one keeps the badge: the badge at the later session's member is redirected to it, and
the later session is left detached (not killed under its user)."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Harness, eventually
from tests.pool.netns import Lan, link
from tests.pool.rig import MemberServer, member, member_identity, sharing
from tests.pool.test_drain_failover import holder, one_shot

pytestmark = pytest.mark.slow


def answers(srv: MemberServer) -> bool | None:
    rows = [r for r in srv.admin("pool")["members"] if not r["this"]]
    return rows[0]["answers"] if rows else None


def test_a_healed_partition_keeps_the_earlier_of_two_sessions_for_one_badge(
    harness: Harness, net: Lan
) -> None:
    hosts = [net.add("srva"), net.add("srvb")]
    pins = [member_identity(harness, h) for h in hosts]
    a, b = (member(harness, h, extra=sharing(harness, pins), command=["sleep", "3600"]) for h in hosts)
    eventually(lambda: answers(a) is True and answers(b) is True, "the members to share the directory")
    kiosk = net.add("kiosk")
    link(*hosts, up=False)
    eventually(lambda: answers(a) is False and answers(b) is False, "each member to find the other dead")
    first = one_shot(harness, kiosk, a, "split-badge")
    assert holder([a, b], first["session_id"]) is a
    second = one_shot(harness, kiosk, b, "split-badge")
    assert holder([a, b], second["session_id"]) is b, "B reached A across the cut"
    assert second["session_id"] != first["session_id"]
    link(*hosts, up=True)
    eventually(lambda: answers(a) is True and answers(b) is True, "the members to answer each other again")
    eventually(lambda: "started earlier" in b.log_text(), "B to yield the badge to A's earlier session")
    again = one_shot(harness, kiosk, b, "split-badge")
    assert (again["session_id"], again["redirects"]) == (first["session_id"], 1)
    direct = one_shot(harness, kiosk, a, "split-badge")
    assert (direct["session_id"], direct["redirects"]) == (first["session_id"], 0)
    # The later session is left alone, detached: its user's work is not killed.
    assert [(s["id"], s["state"]) for s in b.sessions()] == [(second["session_id"], "detached")]
    assert "started earlier" not in a.log_text()
