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
