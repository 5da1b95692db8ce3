"""Admission's decisions (wayray.server.admission) and output fitting (wayray.common.sizes), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayray.common.sizes import fit_output
from wayray.server.admission import (
    MAX_BUCKETS,
    Admission,
    Holding,
    Kind,
    Limits,
    MiB,
    estimate,
    memory_budget,
    source_of,
)


@settings(deadline=None, max_examples=500)
@given(st.integers(1, 65535), st.integers(1, 65535), st.integers(64_000, 16384 * 16384), st.integers(1, 4))
def test_fitted_outputs_keep_to_the_budget_and_the_shape(w: int, h: int, cap: int, scale: int) -> None:
    fw, fh = fit_output(w, h, cap, scale=scale)
    if w * h <= cap:
        assert (fw, fh) == (w, h)
        return
    assert fw * fh <= cap and fw <= w and fh <= h
    # Sides a multiple of the scale, except one asked smaller than the scale (kept as asked).
    assert (fw % scale == 0 or fw == w < scale) and (fh % scale == 0 or fh == h < scale)
    # Each side is scaled by the same factor (within the rounding to a multiple of the scale), so the
    # shape is kept and the budget used.
    factor = (cap / (w * h)) ** 0.5
    if min(w * factor, h * factor) >= scale:
        assert w * factor - scale <= fw <= w * factor and h * factor - scale <= fh <= h * factor


def test_a_side_smaller_than_the_scale_is_never_made_larger() -> None:
    assert fit_output(2, 32001, 64000, scale=3) == (2, 31998)  # found by Hypothesis: was (3, 21333)


def test_sources() -> None:
    assert source_of("192.0.2.7:50123") == "192.0.2.7"
    assert source_of("[2001:db8:1:2:aaaa::7]:50123") == "2001:db8:1:2::/64"
    assert source_of("[2001:db8:1:2:bbbb::9]:1") == "2001:db8:1:2::/64"  # one host, one source
    assert source_of("[::ffff:192.0.2.7]:1") == "192.0.2.7"
    assert source_of("[::1]:1") == "::1"
    assert source_of("192.0.2.7:1", "CN=kiosk-7") == "certificate CN=kiosk-7"


def test_unused_sessions_per_source_and_used_ones_do_not_count() -> None:
    adm = Admission(Limits(new_per_minute=100, unused_per_source=2))
    held = [Holding("a", Kind.LOGIN_SCREEN, MiB, used=False), Holding("a", Kind.SESSION, MiB, used=True)]
    assert adm.admit("a", Kind.LOGIN_SCREEN, MiB, held, now=0) is None
    held.append(Holding("a", Kind.LOGIN_SCREEN, MiB, used=False))
    refusal = adm.admit("a", Kind.LOGIN_SCREEN, MiB, held, now=0)
    assert refusal is not None and "a already has 2 login screens or unused sessions" in refusal
    assert adm.admit("b", Kind.LOGIN_SCREEN, MiB, held, now=0) is None  # another source


def test_rate_per_source_refills_over_the_minute() -> None:
    adm = Admission(Limits(new_per_minute=3, unused_per_source=100))
    assert [adm.admit("a", Kind.SESSION, 1, [], now=0) for _ in range(3)] == [None, None, None]
    refusal = adm.admit("a", Kind.SESSION, 1, [], now=1)
    assert refusal is not None and "try again in 19 s" in refusal
    assert adm.admit("b", Kind.SESSION, 1, [], now=1) is None
    assert adm.admit("a", Kind.SESSION, 1, [], now=20) is None  # one back every 20 s
    assert adm.admit("a", Kind.SESSION, 1, [], now=21) is not None


def test_memory_budget_and_a_sources_share() -> None:
    adm = Admission(Limits(new_per_minute=100, unused_per_source=100, memory_budget=400 * MiB))
    held = [Holding("a", Kind.SESSION, 90 * MiB, used=False)]
    refusal = adm.admit("a", Kind.SESSION, 20 * MiB, held, now=0)
    assert refusal is not None and "90 MiB of the 100 MiB one source may have" in refusal
    held = [Holding(s, Kind.SESSION, 95 * MiB, used=True) for s in "abcd"]
    refusal = adm.admit("e", Kind.SESSION, 30 * MiB, held, now=0)
    assert refusal is not None and "memory budget for sessions is taken (380 MiB of 400 MiB" in refusal
    assert adm.admit("e", Kind.SESSION, 20 * MiB, held, now=0) is None


def test_the_rate_limiter_forgets_sources_so_it_stays_small() -> None:
    adm = Admission(Limits(new_per_minute=1, unused_per_source=100))
    for n in range(MAX_BUCKETS + 50):
        assert adm.admit(f"s{n}", Kind.SESSION, 1, [], now=float(n) / 1000) is None
    assert len(adm._buckets) <= MAX_BUCKETS


def test_estimates_and_budgets() -> None:
    assert estimate(Kind.SESSION, 1920, 1080) == 96 * MiB + 16 * 1920 * 1080
    assert estimate(Kind.LOGIN_SCREEN, 3840, 2160) > estimate(Kind.SESSION, 3840, 2160)
    assert memory_budget(50, 4 * 1024 * MiB) == 2 * 1024 * MiB
    assert (memory_budget(50, None) or 0) > 0  # half of this machine's memory


@pytest.mark.parametrize("bad", [0, -1])
def test_fit_output_of_nothing_is_nothing(bad: int) -> None:
    assert fit_output(bad, 100, 1000) == (bad, 100)
