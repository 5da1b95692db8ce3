"""X11 in a session (issue 17 §4): the first X client's start, Xwayland started on demand included, to
its first frame; a second X client's, Xwayland already running; a key press to changed pixels in
xterm next to foot; the memory Xwayland adds to a session.

    .venv/bin/python -m bench.xwayland [--runs 3] [--keys 20]

In process: a SessionCompositor (1280x720, X11 on), real Xwayland, xterm and foot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from wayray.compositor.session import SessionCompositor
from wayray.compositor.testing import type_text

XTERM = ["xterm", "-fa", "monospace", "-fs", "11", "-bg", "white", "-fg", "black"]
FOOT = ["foot", "-o", "font=monospace:size=11"]


def memory(pid: int) -> tuple[float, float]:
    """RSS and PSS in MiB."""
    m = psutil.Process(pid).memory_full_info()
    return m.rss / 2**20, m.pss / 2**20


async def wait_window(comp: SessionCompositor, title: str, timeout: float = 60) -> float:
    """Seconds until a window titled ``title`` is mapped with content (its first frame composited)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        for w in comp.windows():
            if w.title == title:
                comp.core.composite()
                return time.perf_counter() - t0
        await asyncio.sleep(0.001)
    raise TimeoutError(title)


async def spawn(comp: SessionCompositor, argv: list[str]) -> asyncio.subprocess.Process:
    env = comp.client_env()
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


async def key_to_pixels(comp: SessionCompositor, title: str, keys: int) -> list[float]:
    """Milliseconds from a typed character to changed pixels in the focused window ``title``."""
    win = next(w for w in comp.windows() if w.title == title)
    r = win.rect
    out = []
    for i in range(keys):
        await asyncio.sleep(0.15)
        comp.core.composite()
        before = np.array(comp.framebuffer[r.y : r.y2, r.x : r.x2])
        t0 = time.perf_counter()
        await type_text(comp, "x" if i % 2 == 0 else "\b", delay=0)
        while True:
            comp.core.composite()
            if not np.array_equal(before, comp.framebuffer[r.y : r.y2, r.x : r.x2]):
                out.append((time.perf_counter() - t0) * 1000)
                break
            if time.perf_counter() - t0 > 5:
                break
            await asyncio.sleep(0.0005)
    return out


async def one_run(keys: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="wayray-xbench-") as runtime:
        os.chmod(runtime, 0o700)
        comp = SessionCompositor(size=(1280, 720), runtime_dir=Path(runtime), x11=True)
        await comp.start()
        procs = []
        try:
            await asyncio.sleep(1)
            before = memory(os.getpid())
            procs.append(await spawn(comp, [*XTERM, "-T", "first"]))
            first = await wait_window(comp, "first")
            procs.append(await spawn(comp, [*XTERM, "-T", "second"]))
            second = await wait_window(comp, "second")
            await asyncio.sleep(2)
            xw = comp.core.xwayland
            assert xw is not None and xw.pid is not None
            result: dict[str, object] = {
                "first": first,
                "second": second,
                "xwayland": memory(xw.pid),
                "compositor_before": before,
                "compositor_after": memory(os.getpid()),
                "xterm_keys": await key_to_pixels(comp, "second", keys),
            }
            procs.append(await spawn(comp, [*FOOT, "-T", "foot-bench", "sh"]))
            await wait_window(comp, "foot-bench")
            await asyncio.sleep(1)
            result["foot_keys"] = await key_to_pixels(comp, "foot-bench", keys)
            return result
        finally:
            for p in procs:
                if p.returncode is None:
                    p.terminate()
                    await p.wait()
            await comp.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keys", type=int, default=20)
    args = p.parse_args()
    runs = [asyncio.run(one_run(args.keys)) for _ in range(args.runs)]
    ms = [r["first"] * 1000 for r in runs]  # type: ignore[operator]
    ms2 = [r["second"] * 1000 for r in runs]  # type: ignore[operator]
    print(
        f"first X client (xterm) to its first frame, Xwayland started on demand: {[round(v) for v in ms]} ms"
    )
    print(f"second X client (Xwayland running): {[round(v) for v in ms2]} ms")
    for r in runs:
        rss, pss = r["xwayland"]  # type: ignore[misc]
        b, a = r["compositor_before"], r["compositor_after"]  # type: ignore[misc]
        print(
            f"Xwayland with two xterms: RSS {rss:.1f} MiB, PSS {pss:.1f} MiB; "
            f"compositor RSS {b[0]:.1f} -> {a[0]:.1f} MiB"
        )
    for name in ("xterm_keys", "foot_keys"):
        values = [v for r in runs for v in r[name]]  # type: ignore[attr-defined]
        q = statistics.quantiles(values, n=10)
        print(
            f"key -> pixels, {name[:-5]}: median {statistics.median(values):.1f} ms, "
            f"p90 {q[-1]:.1f} ms (n={len(values)})"
        )


if __name__ == "__main__":
    main()
