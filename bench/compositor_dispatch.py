"""Request dispatch rate: a client floods wl_surface.damage and we time until the compositor has
handled them all (a roundtrip). The client is a separate process (pywayland), so the figure is the
compositor's: libwayland demarshalling, our typed decode and the Python handler.

    .venv/bin/python -m bench.compositor_dispatch [--requests 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

from wayray.compositor.session import SessionCompositor

BATCH = 2000


def client(n: int) -> None:
    from pywayland.client import Display
    from pywayland.protocol.wayland import WlCompositor

    display = Display()
    display.connect()
    found = {}
    registry = display.get_registry()
    registry.dispatcher["global"] = lambda reg, name, iface, ver: (
        found.__setitem__("c", reg.bind(name, WlCompositor, 4)) if iface == "wl_compositor" else None
    )
    display.roundtrip()
    surface = found["c"].create_surface()
    display.roundtrip()
    rates = []
    for _ in range(n // BATCH):
        t0 = time.perf_counter()
        for i in range(BATCH):
            surface.damage(i & 255, 0, 8, 8)
            if i % 200 == 199:
                display.flush()  # keep the socket buffer from filling
        display.roundtrip()
        rates.append(BATCH / (time.perf_counter() - t0))
    print(f"{statistics.median(rates):.0f} {min(rates):.0f} {max(rates):.0f}", flush=True)
    os._exit(0)


async def run(n: int) -> None:
    runtime = tempfile.mkdtemp(prefix="wayray-bench-")
    os.chmod(runtime, 0o700)
    async with SessionCompositor(size=(640, 480), runtime_dir=runtime) as comp:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.compositor_dispatch",
            "--client",
            str(n),
            env=comp.client_env(),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
    median, low, high = (float(x) for x in out.split())
    print(f"{n} wl_surface.damage requests in batches of {BATCH} + roundtrip")
    print(
        f"requests/s  median {median:8.0f}  min {low:8.0f}  max {high:8.0f}  ({1e6 / median:.1f} µs/request)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client)
    else:
        asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
