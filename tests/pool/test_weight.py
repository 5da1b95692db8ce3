"""A member's placement weight (docs/pools.md §5, `[server.NAME] weight`, `--pool-weight`) with real
members: it is announced (`wradm pool` shows it at the other member), and a member of weight 0 gets
no new session, whichever member the badges reach, while it stays in the pool."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Harness, eventually
from tests.pool.netns import Lan
from tests.pool.rig import member, member_identity, sharing
from tests.pool.test_drain_failover import holder, one_shot

pytestmark = pytest.mark.slow


def test_a_member_of_weight_zero_gets_no_new_session_and_weights_are_announced(
    harness: Harness, net: Lan
) -> None:
    hosts = [net.add("srva"), net.add("srvb")]
    pins = [member_identity(harness, h) for h in hosts]
    a = member(
        harness, hosts[0], extra=[*sharing(harness, pins), "--pool-weight", "0"], command=["sleep", "3600"]
    )
    b = member(
        harness, hosts[1], extra=[*sharing(harness, pins), "--pool-weight", "300"], command=["sleep", "3600"]
    )

    def weights(m: object) -> dict[str, int] | None:
        rows = m.admin("pool")["members"]  # type: ignore[attr-defined]
        if not all(r["answers"] for r in rows) or len(rows) != 2:
            return None
        return {r["name"].split(" on ")[-1]: r["weight"] for r in rows}

    for m in (a, b):
        assert eventually(lambda m=m: weights(m), "the members to see each other") == {
            "srva": 0,
            "srvb": 300,
        }
    kiosk = net.add("kiosk")
    for n, reached in enumerate((a, b, a, a)):
        got = one_shot(harness, kiosk, reached, f"weight-badge-{n}")
        assert holder([a, b], got["session_id"]) is b, f"badge {n} landed on the member of weight 0"
    assert a.sessions() == [] and len(b.sessions()) == 4
