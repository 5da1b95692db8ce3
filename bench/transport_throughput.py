"""WayRay's wire + QUIC transport against plain aioquic, on loopback, server in another process.

    .venv/bin/python -m bench.transport_throughput [--quick]

Measures (medians and percentiles printed):
  codec      encode + decode cost of typical messages, in-process, no network
  connect    QUIC + TLS + Retry + Hello/ServerHello, fresh connection each time
  input RTT  Key from viewer → server answers → viewer (what a keypress costs before any drawing)
  frames     FrameUpdates as fast as the credit window allows, the viewer acking each on receipt
  peer       plain aioquic (no WayRay layer): 64-byte echo RTT and one-way bulk throughput on one stream
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol
from aioquic.asyncio import connect as aioquic_connect
from aioquic.asyncio import serve as aioquic_serve
from aioquic.quic import events as qe

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


# --- the plain aioquic peer (child process) --------------------------------------------------------


class RawServer(QuicConnectionProtocol):
    """Echoes stream 0 data back; counts bytes on other streams and answers 'done' at FIN."""

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        if isinstance(event, qe.StreamDataReceived):
            if event.stream_id == 0:
                self._quic.send_stream_data(0, event.data)
            elif event.end_stream:
                self._quic.send_stream_data(event.stream_id, b"done", end_stream=True)
            self.transmit()


async def raw_server(state: Path) -> None:
    identity = ServerIdentity.load_or_create(state)
    cfg = QuicSettings().configuration(is_client=False)
    cfg.alpn_protocols = ["raw"]
    cfg.certificate, cfg.private_key = identity.certificate, identity.private_key
    server = await aioquic_serve("127.0.0.1", 0, configuration=cfg, create_protocol=RawServer)
    print(f"{server._transport.get_extra_info('sockname')[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


class RawClient(QuicConnectionProtocol):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        if isinstance(event, qe.StreamDataReceived):
            if event.stream_id == 0:
                self.queue.put_nowait(event.data)
            elif event.end_stream and not self.done.done():
                self.done.set_result(None)


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


async def bench_raw(port: int, quick: bool) -> None:
    cfg = QuicSettings().configuration(is_client=True)
    cfg.alpn_protocols = ["raw"]
    cfg.verify_mode = ssl.CERT_NONE
    async with aioquic_connect("127.0.0.1", port, configuration=cfg, create_protocol=RawClient) as proto:
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
        show("plain aioquic: 64 B echo RTT", rtts)
        size = (5 if quick else 20) * 1024 * 1024
        sid = client._quic.get_next_available_stream_id(is_unidirectional=False)
        t0 = time.perf_counter()
        chunk = os.urandom(64 * 1024)
        for _ in range(size // len(chunk)):
            client._quic.send_stream_data(sid, chunk)
        client._quic.send_stream_data(sid, b"", end_stream=True)
        client.transmit()
        await client.done
        elapsed = time.perf_counter() - t0
        print(f"  plain aioquic: {size >> 20} MiB one way, one stream: {size / elapsed / 1e6:6.2f} MB/s")


def spawn(kind: str, state: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.transport_throughput", f"--serve-{kind}", str(state)],
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
    args = ap.parse_args()
    if args.serve_wayray:
        asyncio.run(wayray_server(args.serve_wayray))
        return
    if args.serve_raw:
        asyncio.run(raw_server(args.serve_raw))
        return

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
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
            asyncio.run(bench_raw(int(line), args.quick))
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
