"""WayRay's wire + QUIC transport against plain aioquic, on loopback, server in another process.

    .venv/bin/python -m bench.transport_throughput [--quick]

Measures (medians and percentiles printed):
  codec      encode + decode cost of typical messages, in-process, no network
  connect    QUIC + TLS + Retry + Hello/ServerHello, fresh connection each time
  input RTT  Key from viewer → server answers → viewer (what a keypress costs before any drawing)
  frames     FrameUpdates as fast as the credit window allows, the viewer acking each on receipt
  peer       plain aioquic (no WayRay layer): 64-byte echo RTT and one-way bulk throughput on one stream

``--peer-lib aioquic,qh3 --rounds 5`` runs only the peer part, alternating the QUIC libraries (qh3:
the aioquic fork with a native core, installed in a separate venv, see docs/benchmarks.md), and
prints per library the median and p95 over the rounds, with the CPU both processes spent per MB.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import platform
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wayray.transport import (
    ClientSettings,
    PinnedFingerprint,
    QuicSettings,
    ServerConnection,
    ServerIdentity,
    ServerSettings,
    WireServer,
    connect,
)
from wayray.wire import (
    ClipboardText,
    FrameAck,
    FrameUpdate,
    HelloParams,
    Key,
    KeyState,
    Region,
    RegionEncoding,
    Selection,
    TokenKind,
    WireConfig,
    decode_message,
    encode_message,
    spec_of,
)
from wayray.wire.framing import HEADER_SIZE

WIRE = WireConfig(frame_window=4)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def show(label: str, values: list[float], unit: str = "ms", scale: float = 1000.0) -> None:
    v = [x * scale for x in values]
    print(
        f"  {label:<44} median {statistics.median(v):8.3f} {unit}   p95 {pct(v, 95):8.3f}   "
        f"p99 {pct(v, 99):8.3f}   (n={len(v)})"
    )


# --- codec -----------------------------------------------------------------------------------------


def frame(seq: int, size: int) -> FrameUpdate:
    region = Region(0, 0, 64, 64, RegionEncoding.RAW_ZSTD, os.urandom(size))
    return FrameUpdate(seq=seq, width=1920, height=1080, keyframe=False, regions=(region,), checksum=seq)


def bench_codec(quick: bool) -> None:
    print("codec (encode + decode one message, in-process)")
    cases: list[tuple[str, Any]] = [
        ("Key", Key(code=30, state=KeyState.PRESSED, time_ms=1)),
        ("ClipboardText 1 KiB", ClipboardText(selection=Selection.CLIPBOARD, text="x" * 1024)),
        ("FrameUpdate, one 10 KiB region", frame(1, 10 * 1024)),
        ("FrameUpdate, one 175 KiB region", frame(1, 175 * 1024)),
        ("FrameUpdate, 64 regions of 2 KiB", None),
    ]
    regions = tuple(Region(i, 0, 8, 8, RegionEncoding.RAW_ZSTD, os.urandom(2048)) for i in range(64))
    cases[-1] = (
        cases[-1][0],
        FrameUpdate(seq=1, width=1, height=1, keyframe=False, regions=regions, checksum=0),
    )
    for label, msg in cases:
        spec = spec_of(msg)
        n = 200 if quick else 2000
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            data = encode_message(msg)
            decode_message(spec.channel, spec.number, data[HEADER_SIZE:])
            times.append(time.perf_counter() - t0)
        show(label, times, "µs", 1e6)


# --- the WayRay server (child process) -------------------------------------------------------------


async def wayray_server(state: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        mode = conn.hello.token
        conn.accept(session_id=mode, output_width=1920, output_height=1080)
        if mode.startswith("frames:"):
            _, size, count = mode.split(":")
            payload = os.urandom(int(size))
            for seq in range(1, int(count) + 1):
                await conn.wait_frame_credit()
                region = Region(0, 0, 64, 64, RegionEncoding.RAW_ZSTD, payload)
                conn.send(
                    FrameUpdate(
                        seq=seq, width=1920, height=1080, keyframe=False, regions=(region,), checksum=0
                    )
                )
        async for msg in conn:
            if isinstance(msg, Key):
                conn.send(ClipboardText(selection=Selection.CLIPBOARD, text="k"))

    identity = ServerIdentity.load_or_create(state)
    settings = ServerSettings(identity=identity, host="127.0.0.1", port=0, wire=WIRE)
    server = await WireServer.start(settings, handle)
    print(f"{server.port} {identity.fingerprint}", flush=True)
    await asyncio.Event().wait()


# --- the plain QUIC peer (child process): aioquic, or qh3 with the same API -----------------------


def quic_lib(name: str) -> dict[str, Any]:
    """The parts of aioquic (or of qh3, which kept aioquic's module layout) the peer uses."""
    return {
        "protocol": importlib.import_module(f"{name}.asyncio").QuicConnectionProtocol,
        "serve": importlib.import_module(f"{name}.asyncio").serve,
        "connect": importlib.import_module(f"{name}.asyncio").connect,
        "events": importlib.import_module(f"{name}.quic.events"),
        "configuration": importlib.import_module(f"{name}.quic.configuration").QuicConfiguration,
        "version": importlib.import_module(name).__version__,
    }


def raw_configuration(lib: dict[str, Any], *, is_client: bool) -> Any:
    """WayRay's QUIC settings (QuicSettings), in the given library's configuration class."""
    q = QuicSettings()
    return lib["configuration"](
        is_client=is_client,
        alpn_protocols=["raw"],
        idle_timeout=q.idle_timeout,
        max_datagram_size=q.max_datagram_size,
        max_data=q.max_data,
        max_stream_data=q.max_stream_data,
    )


def raw_classes(lib: dict[str, Any]) -> tuple[type, type]:
    qe = lib["events"]
    base: Any = lib["protocol"]

    class RawServer(base):
        """Echoes stream 0 data back; counts bytes on other streams and answers 'done' at FIN."""

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, qe.StreamDataReceived):
                if event.stream_id == 0:
                    self._quic.send_stream_data(0, event.data)
                elif event.end_stream:
                    self._quic.send_stream_data(event.stream_id, b"done", end_stream=True)
                self.transmit()

    class RawClient(base):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.queue: asyncio.Queue[bytes] = asyncio.Queue()
            self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, qe.StreamDataReceived):
                if event.stream_id == 0:
                    self.queue.put_nowait(event.data)
                elif event.end_stream and not self.done.done():
                    self.done.set_result(None)

    return RawServer, RawClient


async def raw_server(state: Path, name: str) -> None:
    lib = quic_lib(name)
    identity = ServerIdentity.load_or_create(state)
    cfg = raw_configuration(lib, is_client=False)
    if name == "qh3":  # qh3 has its own (native) certificate and key types: hand it PEM
        from cryptography.hazmat.primitives import serialization as ser

        cfg.load_cert_chain(
            identity.certificate.public_bytes(ser.Encoding.PEM),
            identity.private_key.private_bytes(
                ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()
            ),
        )
    else:
        cfg.certificate, cfg.private_key = identity.certificate, identity.private_key
    server = await lib["serve"]("127.0.0.1", 0, configuration=cfg, create_protocol=raw_classes(lib)[0])
    print(f"{server._transport.get_extra_info('sockname')[1]}", flush=True)
    await asyncio.Event().wait()


# --- client-side measurements ----------------------------------------------------------------------


def hello(mode: str) -> HelloParams:
    return HelloParams(token=mode, token_kind=TokenKind.SOFTWARE, screen_width=1920, screen_height=1080)


async def bench_wayray(port: int, fp: str, quick: bool) -> dict[str, float]:
    settings = ClientSettings(trust=PinnedFingerprint(fp), wire=WIRE)
    out: dict[str, float] = {}
    times = []
    for _ in range(5 if quick else 20):
        t0 = time.perf_counter()
        conn = await connect("127.0.0.1", port, settings, hello("idle"))
        times.append(time.perf_counter() - t0)
        await conn.aclose()
    show("connect (QUIC+TLS+Retry+Hello)", times)
    out["connect"] = statistics.median(times)

    conn = await connect("127.0.0.1", port, settings, hello("echo"))
    rtts = []
    for i in range(100 if quick else 500):
        t0 = time.perf_counter()
        conn.send(Key(code=30, state=KeyState.PRESSED, time_ms=i))
        await conn.receive()
        rtts.append(time.perf_counter() - t0)
    await conn.aclose()
    show("input RTT (Key → answer)", rtts)
    out["rtt"] = statistics.median(rtts)

    for size, count in (
        (10 * 1024, 300 if quick else 2000),
        (175 * 1024, 50 if quick else 300),
        (1024 * 1024, 10 if quick else 60),
    ):
        conn = await connect("127.0.0.1", port, settings, hello(f"frames:{size}:{count}"))
        t0 = time.perf_counter()
        gaps = []
        last = t0
        for _ in range(count):
            msg = await conn.receive()
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            conn.send(FrameAck(seq=msg.seq, decode_us=0))
        elapsed = time.perf_counter() - t0
        await conn.aclose()
        fps = count / elapsed
        mbps = count * size / elapsed / 1e6
        print(
            f"  frames of {size // 1024:>5} KiB, window 4: {fps:8.1f} frames/s  {mbps:6.2f} MB/s   "
            f"(gap median {statistics.median(gaps) * 1000:.2f} ms, p95 {pct(gaps, 95) * 1000:.2f} ms)"
        )
        out[f"frames{size}"] = mbps
    return out


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of this process (pid None) or of a child, from /proc (Linux)."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_raw(
    port: int, quick: bool, name: str = "aioquic", server_pid: int | None = None
) -> dict[str, Any]:
    lib = quic_lib(name)
    cfg = raw_configuration(lib, is_client=True)
    cfg.verify_mode = ssl.CERT_NONE
    out: dict[str, Any] = {}
    async with lib["connect"](
        "127.0.0.1", port, configuration=cfg, create_protocol=raw_classes(lib)[1]
    ) as proto:
        client: Any = proto
        rtts = []
        for _ in range(100 if quick else 500):
            t0 = time.perf_counter()
            client._quic.send_stream_data(0, b"x" * 64)
            client.transmit()
            got = 0
            while got < 64:
                got += len(await client.queue.get())
            rtts.append(time.perf_counter() - t0)
        show(f"plain {name}: 64 B echo RTT", rtts)
        out["rtts"] = rtts
        size = (5 if quick else 20) * 1024 * 1024
        sid = client._quic.get_next_available_stream_id(is_unidirectional=False)
        cpu0 = cpu_seconds(), cpu_seconds(server_pid) if server_pid else 0.0
        t0 = time.perf_counter()
        chunk = os.urandom(64 * 1024)
        for _ in range(size // len(chunk)):
            client._quic.send_stream_data(sid, chunk)
        client._quic.send_stream_data(sid, b"", end_stream=True)
        client.transmit()
        await client.done
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0[0], (cpu_seconds(server_pid) - cpu0[1]) if server_pid else 0.0
        mb = size / 1e6
        out["mbps"] = mb / elapsed
        out["cpu_per_mb"] = (cpu[0] + cpu[1]) / mb
        print(
            f"  plain {name}: {size >> 20} MiB one way, one stream: {out['mbps']:6.2f} MB/s   CPU "
            f"{out['cpu_per_mb'] * 1000:.1f} ms/MB (sender {cpu[0] * 1000 / mb:.1f}, receiver "
            f"{cpu[1] * 1000 / mb:.1f})"
        )
    return out


def compare_peers(names: list[str], rounds: int, quick: bool) -> None:
    """The plain-QUIC peer on each library, alternating, ``rounds`` times; medians and p95 over rounds."""
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                version = quic_lib(name)["version"]
                print(f"round {r + 1}, {name} {version}, load average {os.getloadavg()[0]:.2f}")
                proc, line = spawn("raw", Path(tmp) / "r", name)
                try:
                    results[name].append(asyncio.run(bench_raw(int(line), quick, name, proc.pid)))
                finally:
                    proc.kill()
                    proc.wait()
    print(f"summary over {rounds} rounds (alternating), load average now {os.getloadavg()[0]:.2f}")
    for name, runs in results.items():
        rtt = [x for run in runs for x in run["rtts"]]
        mbps = [run["mbps"] for run in runs]
        cpu = [run["cpu_per_mb"] * 1000 for run in runs]
        print(
            f"  {name:<8} echo RTT median {statistics.median(rtt) * 1000:.3f} ms "
            f"p95 {pct(rtt, 95) * 1000:.3f} ms"
            f" | bulk median {statistics.median(mbps):.2f} MB/s (min {min(mbps):.2f}, max {max(mbps):.2f})"
            f" | CPU median {statistics.median(cpu):.1f} ms/MB (p95 {pct(cpu, 95):.1f})"
        )


def spawn(kind: str, state: Path, lib: str = "aioquic") -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.transport_throughput",
            f"--serve-{kind}",
            str(state),
            "--peer-lib",
            lib,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--serve-wayray", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--serve-raw", type=Path, help=argparse.SUPPRESS)
    ap.add_argument(
        "--peer-lib",
        help="only the plain-QUIC peer, on these libraries (comma-separated: aioquic,qh3), alternating",
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds of --peer-lib (default 5)")
    args = ap.parse_args()
    if args.peer_lib and not (args.serve_wayray or args.serve_raw):
        for name in args.peer_lib.split(","):
            if name not in ("aioquic", "qh3") or importlib.util.find_spec(name) is None:
                sys.exit(
                    f"--peer-lib: '{name}' is not an installed QUIC library here (aioquic or qh3; qh3 "
                    "is not a WayRay dependency: install it pinned in a throwaway venv, see "
                    "docs/benchmarks.md)"
                )
    if args.serve_wayray:
        asyncio.run(wayray_server(args.serve_wayray))
        return
    if args.serve_raw:
        asyncio.run(raw_server(args.serve_raw, args.peer_lib or "aioquic"))
        return

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if args.peer_lib:
        compare_peers(args.peer_lib.split(","), args.rounds, args.quick)
        return
    bench_codec(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        print("WayRay wire over QUIC (server in another process, 127.0.0.1)")
        proc, line = spawn("wayray", Path(tmp) / "w")
        try:
            port, fp = line.split()
            asyncio.run(bench_wayray(int(port), fp, args.quick))
        finally:
            proc.kill()
            proc.wait()
        print("peer: plain aioquic, same machine, same process layout")
        proc, line = spawn("raw", Path(tmp) / "r")
        try:
            asyncio.run(bench_raw(int(line), args.quick, "aioquic", proc.pid))
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
