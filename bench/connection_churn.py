"""wrsrvd's memory under connection churn: does it leak per connection? (review finding L8)

    .venv/bin/python -m bench.connection_churn [--rounds 20] [--burst 200]

Starts ``wrsrvd --standalone -- foot`` under ``tracemalloc`` (``--frames``, 10 by default) and
sends it rounds of ``--burst`` connections at once, in three kinds, as the review's leak check did:
QUIC+TLS handshakes that never send a Hello (closed by the server's handshake timeout), Hellos cut
short or garbled, and viewers all presenting the same token (they take the session from one
another). After each round, once every connection is gone, it records wrsrvd's RSS and a tracemalloc
snapshot (wrsrvd writes it on SIGUSR2). At the end it prints the RSS per round and what the Python
heap grew by between the second round and the last, by allocation site: a leak shows as a site that
grows with every round.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import pickle
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
FOOT = ["foot", "--window-size-chars=80x24", "sh"]


# --- inside wrsrvd ------------------------------------------------------------------------------------


def serve(snapshot_dir: Path, argv: list[str]) -> int:
    """wrsrvd's own main, with a SIGUSR2 handler that writes what its memory holds: a tracemalloc
    snapshot (when tracing), and glibc's malloc figures, the QUIC connections still alive (draining)
    and the RSS, before and (when the driver asks, with a ``trim`` file) after ``malloc_trim``."""
    from wayray.server.cli import main

    count = 0

    def dump(_sig: int, _frame: object) -> None:
        nonlocal count
        count += 1
        from aioquic.quic.connection import QuicConnection

        gc.collect()
        stats: dict[str, Any] = {
            "rss_kib": rss_kib(os.getpid()),
            "malloc": mallinfo(),
            "quic_connections": sum(1 for o in gc.get_objects() if isinstance(o, QuicConnection)),
        }
        if (snapshot_dir / "trim").exists():
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            stats["rss_kib_after_trim"] = rss_kib(os.getpid())
            stats["malloc_after_trim"] = mallinfo()
        path = snapshot_dir / f"snap-{count:03d}.pickle"
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
            )
            stats["python_heap"] = sum(s.size for s in snap.statistics("filename"))
            with open(f"{path}.tmp", "wb") as f:
                pickle.dump(snap, f)
            os.replace(f"{path}.tmp", path)
        else:
            path.touch()
        (snapshot_dir / f"stats-{count:03d}.json").write_text(json.dumps(stats))

    signal.signal(signal.SIGUSR2, dump)
    return main(argv)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )  # fmt: skip
    ]


def mallinfo() -> dict[str, int]:
    """glibc's heap: bytes in use (uordblks), free in the arenas (fordblks), in mmap'd blocks."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return {}
    fn.restype = _MallInfo2
    m = fn()
    return {"in_use": m.uordblks, "free_in_arenas": m.fordblks, "arenas": m.arena, "mmapped": m.hblkhd}


# --- the load -------------------------------------------------------------------------------------------


async def silent(port: int) -> None:
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["wayray"], verify_mode=ssl.CERT_NONE)
    async with connect("127.0.0.1", port, configuration=cfg, wait_connected=True) as quic:
        await quic.wait_closed()  # the server's handshake timeout


async def garbled(port: int, n: int) -> None:
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["wayray"], verify_mode=ssl.CERT_NONE)
    async with connect("127.0.0.1", port, configuration=cfg, wait_connected=True) as quic:
        stream = quic._quic.get_next_available_stream_id(is_unidirectional=True)
        # The control channel, then a Hello cut short (odd n) or one with a garbage body (even n).
        body = b"\x01\x00\x00" if n % 2 else os.urandom(40)
        quic._quic.send_stream_data(stream, b"\x00" + len(body).to_bytes(4, "little") + b"\x01\x00" + body)
        quic.transmit()
        await quic.wait_closed()


async def same_token(port: int, fingerprint: str, key: str) -> None:
    from wayray.transport import ClientSettings, ConnectionClosedError, PinnedFingerprint, connect
    from wayray.wire import HelloParams, TokenKind

    settings = ClientSettings(trust=PinnedFingerprint(fingerprint), connect_timeout=60)
    hello = HelloParams(
        token="churn-token",
        token_kind=TokenKind.SOFTWARE,
        screen_width=640,
        screen_height=480,
        access_key=key,  # a standalone server asks for its access key, on loopback too
    )
    try:
        conn = await connect("127.0.0.1", port, settings, hello)
    except (ConnectionClosedError, OSError, TimeoutError):
        return  # moved away before the ServerHello: one of many
    await conn.aclose()


async def burst(port: int, fingerprint: str, key: str, size: int) -> None:
    jobs: list[Any] = []
    for i in range(size):
        kind = i % 3
        if kind == 0:
            job = silent(port)
        elif kind == 1:
            job = garbled(port, i)
        else:
            job = same_token(port, fingerprint, key)
        jobs.append(asyncio.wait_for(job, 120))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, ConnectionError)]
    if errors:
        print(
            f"  ({len(errors)} connections ended with {type(errors[0]).__name__}: {errors[0]})", flush=True
        )


# --- the driver ----------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def memory(rss: int, m: dict[str, int]) -> str:
    in_use, free = m.get("in_use", 0) / MiB, m.get("free_in_arenas", 0) / MiB
    return f"RSS {rss / 1024:6.1f} MiB, malloc in use {in_use:5.1f}, free in arenas {free:5.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--burst", type=int, default=200)
    p.add_argument("--top", type=int, default=15)
    p.add_argument(
        "--frames", type=int, default=10, help="tracemalloc's traceback depth (0: RSS only, no tracemalloc)"
    )
    if sys.argv[1:2] == ["--serve"]:  # inside: --serve SNAPSHOT_DIR WRSRVD_ARGS...
        return serve(Path(sys.argv[2]), sys.argv[3:])
    args = p.parse_args()

    from wayray.server.admin import AdminClient

    work = Path(tempfile.mkdtemp(prefix="wr-churn-"))
    run = work / "run"
    run.mkdir(mode=0o700)
    snaps = work / "snapshots"
    snaps.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "HOME": str(work), "WAYRAY_LOG_LEVEL": "WARNING"}
    traced = ["-X", f"tracemalloc={args.frames}"] if args.frames else []
    argv = [sys.executable, *traced, "-m", "bench.connection_churn", "--serve", str(snaps),
            "--standalone", "--port", "0", "--listen", "127.0.0.1", "--state-dir", str(work / "state"),
            "--runtime-dir", str(run / "srv"), *(["--allow-root"] if os.geteuid() == 0 else []),
            "--", *FOOT]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        line = proc.stdout.readline()
        if not line:
            print("wrsrvd did not start", file=sys.stderr)
            return 1
        banner += line
    port = int(banner.split("udp 127.0.0.1:")[1].split()[0])
    fingerprint = banner.split("fingerprint")[1].split()[0]
    admin = run / "srv" / "admin.sock"
    key = (work / "state" / "access.key").read_text().strip()

    def quiet() -> None:
        """Every connection of the round is gone: no viewer, and the server no longer tracks one."""
        while True:
            with AdminClient(admin) as c:
                if c.request("status")["viewers"] == 0:
                    return
            time.sleep(0.2)

    try:
        for r in range(1, args.rounds + 1):
            started = time.monotonic()
            asyncio.run(burst(port, fingerprint, key, args.burst))
            quiet()
            if r == args.rounds:
                (snaps / "trim").touch()  # the last round: also what malloc_trim gives back
            os.kill(proc.pid, signal.SIGUSR2)
            stats_file = snaps / f"stats-{r:03d}.json"
            while not stats_file.exists():
                time.sleep(0.05)
            st = json.loads(stats_file.read_text())
            heap = f", Python heap {st['python_heap'] / MiB:5.1f}" if "python_heap" in st else ""
            print(f"round {r:3d}: {r * args.burst:6d} connections ({time.monotonic() - started:5.1f} s): "
                  f"{memory(st['rss_kib'], st['malloc'])}{heap} MiB; {st['quic_connections']} QUIC "
                  "connections still draining", flush=True)  # fmt: skip
            if "rss_kib_after_trim" in st:
                print(f"after malloc_trim: {memory(st['rss_kib_after_trim'], st['malloc_after_trim'])} MiB")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    files = sorted(snaps.glob("snap-*.pickle"))
    if len(files) >= 3 and args.frames:
        with open(files[1], "rb") as f:
            first = pickle.load(f)
        with open(files[-1], "rb") as f:
            last = pickle.load(f)
        total = sum(s.size for s in last.statistics("filename")) - sum(
            s.size for s in first.statistics("filename")
        )
        print(f"\nPython heap (tracemalloc) round 2 → round {len(files)}: {total / 1024:+.1f} KiB")
        for stat in last.compare_to(first, "traceback")[: args.top]:
            where = stat.traceback.format()[-1].strip()
            print(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}")
            for line in stat.traceback.format()[-6:-1]:
                print(f"{'':36}{line.strip()}")
    print(f"\nsnapshots in {snaps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
