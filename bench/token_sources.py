"""The token source's part of badge-in latency: from "a reader program says a badge is in" to the
BadgeInserted event in wrclient's hands (and the same for removal).

Side by side: the token file watched with inotify (Linux) and polled (what illumos gets), and the token
socket. Run: ``.venv/bin/python -m bench.token_sources``.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from wayray.client.tokens import BadgeInserted, BadgeRemoved, FileTokenSource, FileWatch, SocketTokenSource
from wayray.client.tokens.source import TokenSource


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100)
    median, p90, p99 = statistics.median(s) * 1e3, q[89] * 1e3, q[98] * 1e3
    return f"median {median:7.2f} ms   p90 {p90:7.2f} ms   p99 {p99:7.2f} ms"


async def rounds(
    source: TokenSource,
    insert: Callable[[str], Awaitable[None]],
    remove: Callable[[], Awaitable[None]],
    n: int,
    phase: float = 0.0,
) -> tuple[list[float], list[float]]:
    """``n`` insert/remove rounds; ``phase``: wait up to that long at random before each change, so a
    badge arrives at any point of a poll period, as a real one does."""
    ins, rem = [], []
    for i in range(n):
        await asyncio.sleep(random.uniform(0, phase))
        t = time.perf_counter()
        await insert(f"badge{i:06d}")
        event = await anext(source)
        ins.append(time.perf_counter() - t)
        assert isinstance(event, BadgeInserted)
        await asyncio.sleep(random.uniform(0, phase))
        t = time.perf_counter()
        await remove()
        event = await anext(source)
        rem.append(time.perf_counter() - t)
        assert isinstance(event, BadgeRemoved)
    return ins, rem


async def bench_file(watch: FileWatch, n: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "badge"
        tmp = Path(d) / ".badge.tmp"

        async def insert(token: str) -> None:
            tmp.write_text(token + "\n")
            os.replace(tmp, path)

        async def remove() -> None:
            path.unlink()

        async with FileTokenSource(path, watch=watch) as source:
            phase = source.poll_interval if watch is FileWatch.POLL else 0.0
            return await rounds(source, insert, remove, n, phase)


async def bench_socket(n: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "badge.sock"
        async with SocketTokenSource(path) as source:
            reader, writer = await asyncio.open_unix_connection(os.fspath(path))

            async def send(line: str) -> None:
                writer.write(line.encode())
                await writer.drain()

            async def insert(token: str) -> None:
                await send(f"insert {token}\n")

            async def remove() -> None:
                await send("remove\n")

            try:
                return await rounds(source, insert, remove, n)
            finally:
                writer.close()


async def main() -> None:
    cases: list[tuple[str, Awaitable[tuple[list[float], list[float]]]]] = [
        ("token file, inotify", bench_file(FileWatch.INOTIFY, 500)),
        ("token file, polled (0.1 s)", bench_file(FileWatch.POLL, 100)),
        ("token socket", bench_socket(500)),
    ]
    for name, case in cases:
        ins, rem = await case
        print(f"{name:<28} insert: {percentiles(ins)}")
        print(f"{'':<28} remove: {percentiles(rem)}")


if __name__ == "__main__":
    asyncio.run(main())
