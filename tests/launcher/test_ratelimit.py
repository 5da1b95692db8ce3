"""Failed-login rate limiting (sans-IO: the tests pass the time in)."""

from __future__ import annotations

import pytest

from wayray.launcher.ratelimit import RateLimiter, RateLimitSettings, token_key, user_key

S = RateLimitSettings(max_failures=3, window_s=100.0, base_delay_s=10.0, max_delay_s=60.0, max_keys=4)


def test_blocks_after_max_failures_with_doubling_delays() -> None:
    rl = RateLimiter(S)
    keys = [*token_key("t"), *user_key("alice")]
    rl.failed(keys, 0.0)
    rl.failed(keys, 1.0)
    assert rl.retry_after(keys, 1.0) is None
    rl.failed(keys, 2.0)  # the third failure blocks for 10 s
    assert rl.retry_after(keys, 2.0) == 10.0
    assert rl.retry_after(user_key("alice"), 7.0) == 5.0
    assert rl.retry_after(keys, 12.0) is None
    rl.failed(keys, 12.0)  # the fourth within the window: 20 s
    assert rl.retry_after(keys, 12.0) == 20.0
    rl.failed(keys, 32.0)
    rl.failed(keys, 72.0)
    assert rl.retry_after(keys, 72.0) == 60.0  # capped at max_delay_s


def test_failures_outside_the_window_are_forgotten() -> None:
    rl = RateLimiter(S)
    rl.failed(["k"], 0.0)
    rl.failed(["k"], 50.0)
    rl.failed(["k"], 150.0)  # the first one is older than the window
    assert rl.retry_after(["k"], 150.0) is None


def test_success_clears_and_keys_are_independent() -> None:
    rl = RateLimiter(S)
    for t in range(3):
        rl.failed(["a", "b"], float(t))
    assert rl.retry_after(["a"], 3.0) and rl.retry_after(["b"], 3.0)
    assert rl.retry_after(["c"], 3.0) is None
    rl.succeeded(["a"])
    assert rl.retry_after(["a"], 3.0) is None
    assert rl.retry_after(["b"], 3.0) is not None


def test_memory_is_bounded() -> None:
    rl = RateLimiter(S)
    for i in range(100):
        rl.failed([f"user:{i}"], float(i))
    assert len(rl) == 4
    for i in range(3):
        rl.failed(["user:99"], 100.0 + i)
    assert rl.retry_after(["user:99"], 103.0) is not None  # the newest keys are kept


def test_keys_are_namespaced() -> None:
    assert token_key("x") != user_key("x")
    assert token_key(None) == [] and user_key(None) == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        RateLimitSettings(max_failures=0)
    with pytest.raises(ValueError, match="base_delay_s"):
        RateLimitSettings(base_delay_s=100.0, max_delay_s=10.0)


def test_blocked_keys_outlive_a_spray_of_other_failures() -> None:
    """Failures with other names (a spray) evict failure-only keys first: a blocked user stays blocked
    however many other keys fail after it, until the blocked keys alone fill the table."""
    rl = RateLimiter(S)
    for t in range(3):
        rl.failed(["user:victim"], float(t))
    assert rl.retry_after(["user:victim"], 3.0) == 9.0
    for i in range(1000):
        rl.failed([f"token:spray-{i}", f"user:spray-{i}"], 3.0)
    assert len(rl) == 4
    assert rl.retry_after(["user:victim"], 3.0) == 9.0
    # Other keys still count while the victim's block holds its place.
    for t in range(3):
        rl.failed(["user:other"], 3.0 + t)
    assert rl.retry_after(["user:other"], 6.0) is not None
    assert rl.retry_after(["user:victim"], 6.0) is not None


def test_when_only_blocked_keys_are_left_the_one_expiring_first_goes() -> None:
    """A full table of blocked keys still tracks a new failing key (or nobody new could be limited):
    the block that ends first makes room, never the key that is failing now."""
    rl = RateLimiter(S)
    for key, start in (("a", 0.0), ("b", 0.5), ("c", 1.0), ("d", 1.5)):
        for t in range(3):
            rl.failed([key], start + t)  # blocked until 12, 12.5, 13 and 13.5
    for t in range(3):
        rl.failed(["e"], 4.0 + t)
    assert len(rl) == 4
    assert rl.retry_after(["e"], 6.0) == 10.0
    assert rl.retry_after(["a"], 6.0) is None  # its block was the first to end
    assert [rl.retry_after([k], 6.0) is not None for k in "bcd"] == [True, True, True]
