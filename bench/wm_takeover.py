"""The session's window manager (issue 18 §1): wr-wm-tiling's start to its binding, and, with three
foot windows tiled, a SIGKILL of it to the built-in WM managing them (fallback) and to the restarted
WM bound again (takeover, after the compositor's restart delay).

    .venv/bin/python -m bench.wm_takeover [--kills 3]

In process: a SessionCompositor (1024x768) started with wr-wm-tiling (the installed entry point).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wayray.compositor import wm_protocol
from wayray.compositor.session import SessionCompositor

WR_WM_TILING = str(Path(sys.executable).parent / "wr-wm-tiling")
FOOT = ["foot", "-o", "font=monospace:size=11"]


async def until(check: Callable[[], object], timeout: float = 120.0) -> float:
    """Seconds until ``check()`` is true."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def run(kills: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp, "run")
        runtime.mkdir(mode=0o700)
        config = Path(tmp, "wm-tiling.toml")
        config.write_text("")
        comp = SessionCompositor((1024, 768), runtime_dir=runtime)
        await comp.start()
        service = comp.core.wm_service
        procs = []
        try:
            start = time.monotonic()
            comp.start_window_manager((WR_WM_TILING, "--config", str(config)))
            await until(lambda: service.active)
            print(f"wr-wm-tiling started to bound: {time.monotonic() - start:.2f} s")
            env = comp.client_env()
            for _ in range(3):
                procs.append(await asyncio.create_subprocess_exec(*FOOT, env=env))
            await until(lambda: sum(1 for w in comp.windows() if w.rect.x == 563) == 2)
            for i in range(kills):
                wm = comp.wm_process
                assert wm is not None and wm.proc is not None
                delay = wm_protocol.RESTART_DELAYS[min(i, len(wm_protocol.RESTART_DELAYS) - 1)]
                os.kill(wm.proc.pid, signal.SIGKILL)
                fallback = await until(lambda: not service.active)
                back = fallback + await until(lambda: service.active)
                print(
                    f"kill {i + 1}: built-in WM in {fallback * 1000:.0f} ms; "
                    f"wr-wm-tiling bound again in {back:.2f} s (restart delay {delay:g} s)"
                )
        finally:
            for p in procs:
                p.terminate()
                await p.wait()
            await comp.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=3)
    asyncio.run(run(p.parse_args().kills))


if __name__ == "__main__":
    main()
