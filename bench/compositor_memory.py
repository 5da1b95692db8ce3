"""Memory of an idle session with one terminal: `wrsrvd compositor --size 1920x1080 -- foot`,
measured after the terminal has been idle; weston's headless backend with the same foot is the peer.

    .venv/bin/python -m bench.compositor_memory [--idle 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def memory(pid: int) -> dict[str, int]:
    """VmRSS and Pss in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            out["pss"] = int(line.split()[1])
    return out


def wait_socket(runtime: str, timeout: float = 30) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in Path(runtime).iterdir():
            if p.is_socket():
                return p.name
        time.sleep(0.05)
    raise TimeoutError("no Wayland socket appeared")


def measure_wayray(idle: float) -> dict[str, int]:
    runtime = tempfile.mkdtemp(prefix="wayray-bench-")
    os.chmod(runtime, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, LANG="C.UTF-8")
    proc = subprocess.Popen(
        [str(VENV_BIN / "wrsrvd"), "compositor", "--size", "1920x1080", "--", "foot", "sh"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_socket(runtime)
        time.sleep(idle)
        return memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(runtime, ignore_errors=True)


def measure_weston(idle: float) -> dict[str, int] | None:
    if shutil.which("weston") is None:
        return None
    runtime = tempfile.mkdtemp(prefix="weston-bench-")
    os.chmod(runtime, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, LANG="C.UTF-8")
    proc = subprocess.Popen(
        [
            "weston",
            "--backend=headless-backend.so",
            "--width=1920",
            "--height=1080",
            "--socket=wl-bench",
            "--idle-time=0",
            "--no-config",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    foot = None
    try:
        wait_socket(runtime)
        foot = subprocess.Popen(
            ["foot", "sh"],
            env=dict(env, WAYLAND_DISPLAY="wl-bench"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(idle)
        return memory(proc.pid)
    finally:
        if foot is not None:
            foot.terminate()
            foot.wait(30)
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(runtime, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=5.0, help="seconds to let the session go idle")
    idle = parser.parse_args().idle
    ours = measure_wayray(idle)
    rss, pss = ours["rss"] / 1024, ours["pss"] / 1024
    print(f"wrsrvd compositor 1920x1080 + foot, idle: RSS {rss:6.1f} MiB  PSS {pss:6.1f} MiB")
    peer = measure_weston(idle)
    if peer is not None:
        print(
            f"peer: weston headless 1920x1080 + foot:  RSS {peer['rss'] / 1024:6.1f} MiB  "
            f"PSS {peer['pss'] / 1024:6.1f} MiB"
        )


if __name__ == "__main__":
    main()
