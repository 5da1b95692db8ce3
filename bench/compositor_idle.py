"""Frame pacing and idle throttling: weston-simple-shm's frame rate while the session is viewed
(target 60 Hz) and while nobody views it (idle 1 Hz), and how often a frame consumer is woken.

    .venv/bin/python -m bench.compositor_idle [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

from wayray.compositor.session import SessionCompositor


async def run(seconds: float) -> None:
    runtime = tempfile.mkdtemp(prefix="wayray-bench-")
    os.chmod(runtime, 0o700)
    async with SessionCompositor(size=(640, 480), runtime_dir=runtime) as comp:
        wakes = 0

        def woke() -> None:
            nonlocal wakes
            wakes += 1

        comp.consumer(on_change=woke)
        proc = await asyncio.create_subprocess_exec("weston-simple-shm", env=comp.client_env())
        try:
            for viewed in (True, False, True):
                comp.viewed = viewed
                await asyncio.sleep(1.5)  # let the new pace settle
                seq, wakes = comp.frame_seq, 0
                await asyncio.sleep(seconds)
                state = "viewed" if viewed else "not viewed"
                print(
                    f"{state:11s} composited frames/s {(comp.frame_seq - seq) / seconds:6.1f}   "
                    f"consumer wake-ups/s {wakes / seconds:6.1f}"
                )
        finally:
            proc.terminate()
            await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
