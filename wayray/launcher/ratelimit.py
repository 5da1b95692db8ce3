"""Failed-login rate limiting, sans-IO: the caller passes the time in and gets decisions out.

Each key (a token reference, a user name) may fail ``max_failures`` times within ``window_s``; each
further failure inside the window blocks the key for ``base_delay_s`` doubled per extra failure, up
to ``max_delay_s``. A success clears the key. Memory is bounded: at most ``max_keys`` keys are
tracked. When the table is full, keys that only failed go first (least recently failed first), so
an attacker spraying failures with made-up names cannot make wrsessd forget a block; only when
every other key is blocked does the block that ends first make room (never the key failing now, or
nobody new could be limited).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RateLimitSettings:
    max_failures: int = 5
    window_s: float = 900.0
    base_delay_s: float = 30.0
    max_delay_s: float = 900.0
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("rate_limit.max_failures must be at least 1")
        if self.window_s <= 0 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("rate_limit: need window_s > 0 and 0 <= base_delay_s <= max_delay_s")
        if self.max_keys < 1:
            raise ValueError("rate_limit.max_keys must be at least 1")


@dataclass
class _KeyState:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        #: Keys that have failed but were not blocked at their last failure, least recent first.
        self._failing: OrderedDict[str, _KeyState] = OrderedDict()
        #: Keys blocked at their last failure (their history decides the next, doubled, delay).
        self._blocked: dict[str, _KeyState] = {}

    def _get(self, key: str) -> _KeyState | None:
        return self._blocked.get(key) or self._failing.get(key)

    def retry_after(self, keys: Iterable[str], now: float) -> float | None:
        """Seconds until every one of ``keys`` may try again, or None when none is blocked."""
        wait = 0.0
        for key in keys:
            state = self._get(key)
            if state is not None and state.blocked_until > now:
                wait = max(wait, state.blocked_until - now)
        return wait if wait > 0 else None

    def failed(self, keys: Iterable[str], now: float) -> None:
        s = self.settings
        touched = set()
        for key in keys:
            touched.add(key)
            state = self._blocked.pop(key, None) or self._failing.pop(key, None) or _KeyState()
            while state.failures and state.failures[0] <= now - s.window_s:
                state.failures.popleft()
            state.failures.append(now)
            excess = len(state.failures) - s.max_failures
            if excess >= 0:
                delay = min(s.max_delay_s, s.base_delay_s * (2 ** min(excess, 30)))
                state.blocked_until = max(state.blocked_until, now + delay)
            # Keep at most max_failures + a few timestamps: enough to compute the backoff.
            while len(state.failures) > s.max_failures + 32:
                state.failures.popleft()
            if state.blocked_until > now:
                self._blocked[key] = state
            else:
                self._failing[key] = state  # most recently failed last
        while len(self) > s.max_keys and self._evict(touched):
            pass

    def _evict(self, keep: set[str]) -> bool:
        for key in self._failing:
            if key not in keep:
                del self._failing[key]
                return True
        candidates = [(st.blocked_until, k) for k, st in self._blocked.items() if k not in keep]
        if not candidates:
            return False
        del self._blocked[min(candidates)[1]]
        return True

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failing.pop(key, None)
            self._blocked.pop(key, None)

    def __len__(self) -> int:
        return len(self._failing) + len(self._blocked)


def token_key(token: str | None) -> list[str]:
    return [f"token:{token}"] if token else []


def user_key(user: str | None) -> list[str]:
    return [f"user:{user}"] if user else []
