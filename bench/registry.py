"""The registry's part of badge-in latency: token lookup + decision + durable commit.

Measures ``Registry.present`` (RESUMED and MOVED, each a SQLite transaction with its audit event) in
a registry holding many sessions, with the chosen ``synchronous=NORMAL`` side by side with
``synchronous=FULL``, and the token hash (HMAC-SHA256) side by side with scrypt, the slow hash it was
chosen over. Run: ``.venv/bin/python -m bench.registry``.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wayray.server.model import Endpoint
from wayray.server.policy import SessionPolicy
from wayray.server.registry import Outcome, Registry
from wayray.server.tokens import SessionTokenKind, TokenHasher

SESSIONS = 2000
ROUNDS = 2000


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100)
    median, p90, p99 = statistics.median(s) * 1e6, q[89] * 1e6, q[98] * 1e6
    return f"median {median:8.1f} µs   p90 {p90:8.1f} µs   p99 {p99:8.1f} µs"


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_present(synchronous: str) -> tuple[list[float], list[float]]:
    hasher = TokenHasher(b"k" * 32)
    with tempfile.TemporaryDirectory() as d:
        now = 1_700_000_000.0
        reg = Registry.open(Path(d) / "r.sqlite", policy=SessionPolicy(), now=now)
        reg._db.execute(f"PRAGMA synchronous={synchronous}")
        tokens = [hasher.ref(SessionTokenKind.BADGE, f"badge-{i}") for i in range(SESSIONS)]
        for i, token in enumerate(tokens):
            g = reg.create_greeter(token, None, Endpoint(launcher_session=f"g{i}"), now)
            reg.logged_in(g.id, f"user{i}", Endpoint(launcher_session=f"u{i}"), now)
        resumed, moved = [], []
        for i in range(ROUNDS):
            token = tokens[i % SESSIONS]
            now += 1
            t = time.perf_counter()
            r = reg.present(token, "kiosk-a", now)  # detached → shown on kiosk A
            resumed.append(time.perf_counter() - t)
            assert r.outcome is Outcome.RESUMED, r
            t = time.perf_counter()
            r = reg.present(token, "kiosk-b", now)  # hot-desk to kiosk B
            moved.append(time.perf_counter() - t)
            assert r.outcome is Outcome.MOVED, r
            reg.viewer_left("kiosk-b", now)
        reg.close()
    return resumed, moved


def main() -> None:
    print(f"Registry.present with {SESSIONS} sessions, {ROUNDS} rounds (WAL)")
    for sync in ("NORMAL", "FULL"):
        resumed, moved = bench_present(sync)
        print(f"  synchronous={sync:6}  resume: {percentiles(resumed)}")
        print(f"  synchronous={sync:6}  move:   {percentiles(moved)}")
    hasher = TokenHasher(b"k" * 32)
    print("token hash per badge-in")
    hmac_times = timed(lambda: hasher.ref(SessionTokenKind.BADGE, "04:A2:19:7C"), 5000)
    print(f"  HMAC-SHA256 (used)     {percentiles(hmac_times)}")
    scrypt = timed(lambda: hashlib.scrypt(b"04:A2:19:7C", salt=b"k" * 16, n=2**14, r=8, p=1), 50)
    print(f"  scrypt n=2^14 r=8 p=1  {percentiles(scrypt)}")


if __name__ == "__main__":
    main()
