"""What WayRay's supervision costs at boot and at every start of a server instance.

- the generator (runs at boot and at every `systemctl daemon-reload`), side by side with systemd's
  own generators written in C on the same machine, and with a bare `python3 -I -c pass` (the
  interpreter start-up floor);
- `wradm check --quiet --instance main` (SMF's start method runs it before every start of an
  instance; under systemd wrsrvd makes the same check in-process);
- loading the configuration in-process (what each daemon does at start and on SIGHUP).

Run: .venv/bin/python -m bench.supervisor [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PEERS = ("systemd-getty-generator", "systemd-fstab-generator", "systemd-run-generator")


def measure(fn: Callable[[], None], runs: int) -> list[float]:
    fn()  # warm the page cache
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(name: str, samples: list[float]) -> None:
    q = statistics.quantiles(samples, n=20)
    med = statistics.median(samples)
    print(f"{name:<46} median {med:7.1f} ms   p90 {q[17]:7.1f} ms   min {min(samples):6.1f} ms")


def run_generator(argv: list[str], env: dict[str, str]) -> Callable[[], None]:
    def once() -> None:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([*argv, out, out, out], env=env, check=True, capture_output=True)

    return once


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    cpus = os.cpu_count()
    print(
        f"machine: {platform.node()} {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
    )
    env = {"PATH": "/usr/bin:/bin", "WAYRAY_ROOT": str(REPO)}
    report(
        "wayray-generator (shipped examples)",
        measure(run_generator([str(BIN / "wayray-generator")], env), args.runs),
    )
    for peer in PEERS:
        path = Path("/usr/lib/systemd/system-generators") / peer
        if path.exists():
            report(
                f"{peer} (C, peer)",
                measure(run_generator([str(path)], {"PATH": "/usr/bin:/bin"}), args.runs),
            )
    for label, python in (("system python3", "/usr/bin/python3"), ("venv python", sys.executable)):
        if Path(python).exists():
            floor = measure(
                lambda python=python: subprocess.run([python, "-I", "-c", "pass"], check=True), args.runs
            )
            report(f"{label} -I -c pass (interpreter floor)", floor)
    report(
        "wradm check --quiet --instance main",
        measure(
            lambda: subprocess.run(
                [str(BIN / "wradm"), "--root", str(REPO), "check", "--quiet", "--instance", "main"],
                check=True,
            ),
            args.runs,
        ),
    )

    from wayray.config import load

    report("wayray.config.load() in-process", measure(lambda: load(REPO) and None, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
