"""WayRay end to end next to waypipe, on the same clients over loopback: bytes on the wire, CPU, and
keypress-to-pixels latency; and WayRay's sustained frame rate on a 1080p full-screen change.

    .venv/bin/python -m bench.e2e_remote [--seconds 8] [--only scroll,shm,typing,prose,fullscreen]

**WayRay**: ``wrsrvd --standalone -- APP`` and a headless ``wrclient`` with a script, real QUIC on
127.0.0.1 through a UDP relay in this process that counts every datagram (both directions). CPU is
the processes' own user+system time (wrsrvd, the session compositor process (compositing included),
wrclient), sampled over the measurement window; the application's own CPU is not counted.

**waypipe** (Debian's 0.8.4): ``waypipe client`` connected to *our* session compositor (it needs a
compositor with a seat; running it in this process lets the benchmark inject keys and see
frames), ``waypipe server -- APP``, and a Unix-socket relay between the two halves counting bytes,
as waypipe-baseline.md measured. CPU: both waypipe halves and their helper processes (not the app,
not the display compositor).

Workloads: (a) ``scroll``: foot flooding (``seq`` in a loop), (b) ``shm``: weston-simple-shm,
(c) ``typing``: 40 characters typed into foot's shell 50 ms apart (``typing``: "x" 40 times;
``prose``: "the quick brown fox jumps over the lazy ", words) (WayRay: through wrclient;
waypipe: injected into the compositor), and ``fullscreen``: a 1920x1080 panning photo-like picture
(WayRay only: the frame rate a viewer sustains). Keypress to pixels: WayRay from the key leaving
wrclient to the changed frame shown by wrclient; waypipe from the key entering the compositor to the
frame with the echo composited there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VIDEO = str(REPO / "tests" / "e2e" / "clients" / "video.py")
TICK = os.sysconf("SC_CLK_TCK")
#: What each typing workload types, 40 keys: one letter again and again, or words (letters and
#: spaces only: the waypipe side presses keys without modifiers).
TYPED = {"typing": "x" * 40, "prose": "the quick brown fox jumps over the lazy d"[:40]}
#: video.py writes the CLOCK_MONOTONIC time its first frame was shown in the session here.
PLAYING = "video-playing"

SCROLL = "sleep 1; timeout {t} sh -c 'while :; do seq 1 1000000; done'; sleep 600"
APPS = {
    "scroll": lambda t: ["foot", "-W", "100x30", "sh", "-c", SCROLL.format(t=t + 4)],
    "shm": lambda t: ["weston-simple-shm"],
    "typing": lambda t: ["foot", "-W", "100x30", "sh"],
    "prose": lambda t: ["foot", "-W", "100x30", "sh"],
    # Plays well past the window (wrsrvd ends it); the window starts from its first frame (PLAYING).
    "fullscreen": lambda t: [sys.executable, VIDEO, str(t + 60), "1920", "1080"],
}


# --- measuring -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """A process's own user+system CPU time (all its threads; not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class CpuSampler(threading.Thread):
    """Samples the CPU time of a changing set of processes every 50 ms."""

    def __init__(self, pick: object) -> None:
        super().__init__(daemon=True)
        self.pick = pick  # () -> set of pids to count
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            pids = self.pick()  # type: ignore[operator]
            self.samples.append((time.monotonic(), sum(cpu_seconds(p) for p in pids)))
            time.sleep(0.05)

    def between(self, t0: float, t1: float) -> float:
        before = [c for t, c in self.samples if t <= t0]
        after = [c for t, c in self.samples if t >= t1]
        if not before or not after:
            return float("nan")
        return after[0] - before[-1]


@dataclass
class Traffic:
    """Datagrams or chunks seen by a relay: (monotonic time, to_viewer?, bytes)."""

    events: list[tuple[float, bool, int]] = field(default_factory=list)

    def bytes(self, t0: float, t1: float, to_viewer: bool | None = None) -> int:
        return sum(n for t, d, n in self.events if t0 <= t <= t1 and (to_viewer is None or d == to_viewer))


class UdpRelay(threading.Thread):
    def __init__(self, server_port: int) -> None:
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", server_port))
        self.traffic = Traffic()
        self.client: tuple[str, int] | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for s in ready:
                try:
                    if s is self.front:
                        data, self.client = self.front.recvfrom(65536)
                        self.back.send(data)
                        self.traffic.events.append((time.monotonic(), False, len(data)))
                    else:
                        data = self.back.recv(65536)
                        if self.client is not None:
                            self.front.sendto(data, self.client)
                        self.traffic.events.append((time.monotonic(), True, len(data)))
                except OSError:
                    pass


class UnixRelay(threading.Thread):
    """waypipe server (app side) → here → waypipe client (display side)."""

    def __init__(self, listen: Path, target: Path) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(listen))
        self.sock.listen(4)
        self.target = target
        self.traffic = Traffic()
        self.done = threading.Event()

    def run(self) -> None:
        pairs: dict[socket.socket, tuple[socket.socket, bool]] = {}
        while not self.done.is_set():
            ready, _, _ = select.select([self.sock, *pairs], [], [], 0.1)
            for s in ready:
                if s is self.sock:
                    app_side, _ = self.sock.accept()
                    display_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    display_side.connect(str(self.target))
                    pairs[app_side] = (display_side, True)
                    pairs[display_side] = (app_side, False)
                    continue
                if s not in pairs:  # closed above with its other half, in this same round
                    continue
                try:
                    data = s.recv(262144)
                except OSError:
                    data = b""
                if not data:
                    other, _ = pairs.pop(s)
                    pairs.pop(other, None)
                    s.close()
                    other.close()
                    continue
                other, to_display = pairs[s]
                try:
                    other.sendall(data)
                except OSError:
                    continue
                self.traffic.events.append((time.monotonic(), to_display, len(data)))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# --- WayRay -----------------------------------------------------------------------------------------


def _env(tmp: Path) -> dict[str, str]:
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_", "NOTIFY_"))}
    env.update(
        XDG_RUNTIME_DIR=str(xdg),
        HOME=str(tmp),
        XDG_STATE_HOME=str(tmp / "state-home"),
        XDG_CONFIG_HOME=str(tmp / "config-home"),
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        PS1="$ ",
        ENV="",
    )
    return env


def _script(workload: str, seconds: float, tmp: Path) -> str:
    ms = int(seconds * 1000)
    if workload in TYPED:
        lines = ["settle 1500", "wait 300"]
        for c in TYPED[workload]:
            lines += [f'type "{c}"', "wait 50"]
        return "\n".join(lines + ["settle 800", "wait 1"]) + "\n"
    if workload == "fullscreen":
        # Timed from the video's first frame, not from the viewer's first picture (the desktop):
        # building the 1080p picture takes the client seconds on a loaded machine, and the window
        # fell before the video had started (0.0 frames/s).
        return f"wait-for {tmp / PLAYING}\nwait 2500\nwait {ms}\nwait 1\n"
    return f"wait 3000\nwait {ms}\nwait 1\n"


def wayray_run(workload: str, seconds: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="wrb-", dir="/tmp"))
    env = _env(tmp)
    env["VIDEO_PLAYING_FILE"] = str(tmp / PLAYING)
    port = _free_port()
    srv = _start_wrsrvd(tmp, env, port, workload, seconds)
    client: subprocess.Popen[bytes] | None = None
    relay: UdpRelay | None = None
    samplers: list[CpuSampler] = []
    try:
        fingerprint = _fingerprint(srv, tmp)
        relay = UdpRelay(port)
        relay.start()
        stats = tmp / "stats.json"
        client = _start_wrclient(tmp, env, relay.port, fingerprint, workload, seconds, stats)
        watched = client
        samplers = [CpuSampler(_server_side(srv.pid, tmp)), CpuSampler(lambda: {watched.pid})]
        for sampler in samplers:
            sampler.start()
        if client.wait(300) != 0:
            raise RuntimeError((tmp / "wrclient.log").read_text()[-3000:])
        data = json.loads(stats.read_text())
        if workload in TYPED:
            return _typing_figures(data, relay.traffic, *samplers)
        figures = _stream_figures(data, relay.traffic, *samplers)
        if workload == "fullscreen":
            figures.update(_video_start(data, tmp / PLAYING))
        return figures
    finally:
        _stop_wayray(tmp, srv, client, relay, samplers)


def _start_wrsrvd(
    tmp: Path, env: dict[str, str], port: int, workload: str, seconds: float
) -> subprocess.Popen[str]:
    """``wrsrvd --standalone`` with the workload's application, its state and runtime in ``tmp``."""
    argv = [
        str(BIN / "wrsrvd"), "--standalone", "--port", str(port), "--listen", "127.0.0.1",
        "--state-dir", str(tmp / "state"), "--runtime-dir", str(tmp / "run"),
        *(["--allow-root"] if os.geteuid() == 0 else []), "--", *APPS[workload](seconds),
    ]  # fmt: skip
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=open(tmp / "wrsrvd.log", "wb"), text=True,  # noqa: SIM115
        start_new_session=True,
    )  # fmt: skip


def _fingerprint(srv: subprocess.Popen[str], tmp: Path) -> str:
    """The server's identity, from its banner (read up to its "Ctrl-C" line)."""
    banner = ""
    assert srv.stdout is not None
    while "Ctrl-C" not in banner:
        line = srv.stdout.readline()
        if not line:
            raise RuntimeError((tmp / "wrsrvd.log").read_text()[-2000:])
        banner += line
    m = re.search(r"fingerprint\s+(sha256:[0-9a-f]{64})", banner)
    assert m
    return m[1]


def _start_wrclient(
    tmp: Path, env: dict[str, str], port: int, fingerprint: str, workload: str, seconds: float, stats: Path
) -> subprocess.Popen[bytes]:
    """A headless ``wrclient`` through the relay at ``port``, playing the workload's script."""
    script = tmp / "script.txt"
    script.write_text(_script(workload, seconds, tmp))
    size = "1920x1080" if workload == "fullscreen" else "1280x720"
    return subprocess.Popen(
        [str(BIN / "wrclient"), f"127.0.0.1:{port}", "--fingerprint", fingerprint, "--headless",
         "--token", "bench", "--access-key-file", str(tmp / "state" / "access.key"), "--size", size,
         "--script", str(script), "--stats", str(stats), "--timeout", "120"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "wrclient.log", "wb"),  # noqa: SIM115
    )  # fmt: skip


def _server_side(srv_pid: int, tmp: Path) -> Callable[[], set[int]]:
    """The server's processes: wrsrvd and the session processes linked to it (by their environment)."""
    link = f"WAYRAY_LINK={tmp / 'run' / 'link.sock'}".encode()

    def pids() -> set[int]:
        found = {srv_pid}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if link in (entry / "environ").read_bytes().split(b"\0"):
                        found.add(int(entry.name))
                except OSError:
                    pass
        return found

    return pids


def _typing_figures(
    data: dict[str, Any], traffic: Traffic, server: CpuSampler, client: CpuSampler
) -> dict[str, float]:
    """Bytes and CPU per typed character, and keypress-to-pixels latency."""
    types = [m["monotonic"] for m in data["script_marks"] if m["command"] == "type"]
    t0, t1 = types[0], types[-1] + 0.3
    chars = len(types)
    lat = data["key_to_pixels_ms"]
    return {
        **_per_key(traffic, types, t1),
        "bytes_per_char": traffic.bytes(t0, t1, True) / chars,
        "bytes_per_char_up": traffic.bytes(t0, t1, False) / chars,
        "cpu_server": server.between(t0, t1),
        "cpu_client": client.between(t0, t1),
        "latency_median_ms": statistics.median(lat) if lat else float("nan"),
        "latency_p95_ms": percentile(lat, 95),
        "latency_samples": len(lat),
    }


def _stream_figures(
    data: dict[str, Any], traffic: Traffic, server: CpuSampler, client: CpuSampler
) -> dict[str, float]:
    """Bytes, frames and CPU per second over the measurement window (between the script's waits)."""
    waits = [m["monotonic"] for m in data["script_marks"] if m["command"] == "wait"]
    t0, t1 = waits[1], waits[2]
    shown = [t for t in data["shown_at"] if t0 <= t <= t1]
    return {
        "bytes_per_s": traffic.bytes(t0, t1, True) / (t1 - t0),
        "bytes_per_s_up": traffic.bytes(t0, t1, False) / (t1 - t0),
        "frames_per_s": len(shown) / (t1 - t0),
        "cpu_server": server.between(t0, t1) / (t1 - t0) * 10,
        "cpu_client": client.between(t0, t1) / (t1 - t0) * 10,
        "h264_regions": data["regions"].get("H264", 0),
        # Of the video pictures, those that came at half size (video-scaled; absent before it).
        "scaled_pictures": data.get("scaled_pictures", 0),
        **_per_second(shown, t0, t1),
        **_cpu_per_second(server, t0, t1),
    }


def _per_key(traffic: Traffic, pressed: list[float], t1: float) -> dict[str, float]:
    """Bytes to the viewer from each key to the next (the last: to ``t1``): median and p95 per key."""
    ends = [*pressed[1:], t1]
    per_key = [float(traffic.bytes(a, b - 1e-9, True)) for a, b in zip(pressed, ends, strict=True)]
    return {"char_bytes_median": statistics.median(per_key), "char_bytes_p95": percentile(per_key, 95)}


def _cpu_per_second(server: CpuSampler, t0: float, t1: float) -> dict[str, float]:
    """The server side's CPU in each whole second of the window: median and p95, in s per 10 s."""
    per_s = [server.between(t0 + i, t0 + i + 1) * 10 for i in range(int(t1 - t0))]
    per_s = [c for c in per_s if c == c]  # a second without a sample after it is left out (nan)
    return {
        "cpu_server_median": statistics.median(per_s) if per_s else float("nan"),
        "cpu_server_p95": percentile(per_s, 95),
    }


def _per_second(shown: list[float], t0: float, t1: float) -> dict[str, float]:
    """Frames shown in each whole second of the window (median, lowest) and the gaps between frames."""
    counts = [sum(1 for t in shown if t0 + i <= t < t0 + i + 1) for i in range(int(t1 - t0))]
    gaps = [(b - a) * 1000 for a, b in zip(shown, shown[1:], strict=False)]
    return {
        "fps_median": statistics.median(counts) if counts else float("nan"),
        "fps_lowest": min(counts, default=float("nan")),
        "gap_median_ms": statistics.median(gaps) if gaps else float("nan"),
        "gap_p95_ms": percentile(gaps, 95),
    }


def _video_start(data: dict[str, Any], playing: Path) -> dict[str, float]:
    """From the video's first frame in the session to the viewer showing a frame after it."""
    started = float(playing.read_text())
    after = [t for t in data["shown_at"] if t > started]
    return {"video_first_frame_s": (after[0] - started) if after else float("nan")}


def _stop_wayray(
    tmp: Path,
    srv: subprocess.Popen[str],
    client: subprocess.Popen[bytes] | None,
    relay: UdpRelay | None,
    samplers: list[CpuSampler],
) -> None:
    for sampler in samplers:
        sampler.done.set()
    if relay is not None:
        relay.done.set()
    if client is not None and client.poll() is None:
        client.kill()
    if srv.poll() is None:
        os.killpg(srv.pid, signal.SIGINT)
        try:
            srv.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- waypipe ----------------------------------------------------------------------------------------


async def waypipe_run(workload: str, seconds: float, compress: str) -> dict[str, float]:
    from wayray.compositor.session import SessionCompositor

    tmp = Path(tempfile.mkdtemp(prefix="wpb-", dir="/tmp"))
    env = _env(tmp)
    comp = SessionCompositor(size=(1280, 720), runtime_dir=tmp / "xdg")
    await comp.start()
    shown: list[float] = []
    consumer = comp.consumer(on_change=lambda: shown.append(time.monotonic()))
    drain = asyncio.get_running_loop().create_task(_drain(consumer))
    client_env = {**comp.client_env(base=env)}
    wp_client = await asyncio.create_subprocess_exec(
        "waypipe", "--socket", str(tmp / "wp.sock"), "--compress", compress, "--no-gpu", "client",
        env=client_env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    while not (tmp / "wp.sock").exists():
        await asyncio.sleep(0.02)
    relay = UnixRelay(tmp / "relay.sock", tmp / "wp.sock")
    relay.start()
    server_env = {k: v for k, v in env.items() if k != "WAYLAND_DISPLAY"}
    wp_server = await asyncio.create_subprocess_exec(
        "waypipe", "--socket", str(tmp / "relay.sock"), "--compress", compress, "--no-gpu", "server", "--",
        *APPS[workload](seconds), env=server_env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    app_names = {"foot", "weston-simple-shm", "sh", "seq", "timeout", "sleep", "python3", "python"}

    def tree_without_app(root: int) -> set[int]:
        return {root} | {p for p in descendants(root) if comm(p) not in app_names}

    sampler = CpuSampler(lambda: tree_without_app(wp_server.pid))  # the app side
    sampler_display = CpuSampler(lambda: tree_without_app(wp_client.pid))  # the display side
    sampler.start()
    sampler_display.start()
    try:
        if workload in TYPED:
            await _wait_windows(comp)
            await asyncio.sleep(1.8)
            keymap = comp.core.seat.keymap
            latencies = []
            presses: list[float] = []
            t0 = time.monotonic()
            for c in TYPED[workload]:
                code, _mods = keymap.keys_for_char(c)  # type: ignore[misc]
                pressed = time.monotonic()
                presses.append(pressed)
                comp.key(code, True)
                comp.key(code, False)
                await asyncio.sleep(0.05)
                after = [t for t in shown if t > pressed]
                if after:
                    latencies.append((after[0] - pressed) * 1000)
            t1 = time.monotonic() + 0.3 - 0.05
            await asyncio.sleep(0.5)  # past t1, so the CPU samplers have a sample after it
            return {
                **_per_key(relay.traffic, presses, t1),
                "bytes_per_char": relay.traffic.bytes(t0, t1, True) / 40,
                "bytes_per_char_up": relay.traffic.bytes(t0, t1, False) / 40,
                "cpu_server": sampler.between(t0, t1),
                "cpu_client": sampler_display.between(t0, t1),
                "latency_median_ms": statistics.median(latencies) if latencies else float("nan"),
                "latency_p95_ms": percentile(latencies, 95),
                "latency_samples": len(latencies),
            }
        await _wait_windows(comp)
        await asyncio.sleep(3.0)
        t0 = time.monotonic()
        frames0 = comp.frame_seq
        await asyncio.sleep(seconds)
        t1 = time.monotonic()
        await asyncio.sleep(0.2)  # the CPU samplers need a sample after t1
        return {
            "bytes_per_s": relay.traffic.bytes(t0, t1, True) / (t1 - t0),
            "bytes_per_s_up": relay.traffic.bytes(t0, t1, False) / (t1 - t0),
            "frames_per_s": (comp.frame_seq - frames0) / (t1 - t0),
            "cpu_server": sampler.between(t0, t1) / (t1 - t0) * 10,
            "cpu_client": sampler_display.between(t0, t1) / (t1 - t0) * 10,
            "h264_regions": 0,
            **_cpu_per_second(sampler, t0, t1),
        }
    finally:
        sampler.done.set()
        sampler_display.done.set()
        relay.done.set()
        for p in (wp_server, wp_client):
            if p.returncode is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL) if p is wp_server else p.kill()
                except ProcessLookupError:
                    pass
                await p.wait()
        drain.cancel()
        await comp.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def _drain(consumer: object) -> None:
    while True:
        await consumer.next_frame()  # type: ignore[attr-defined]


async def _wait_windows(comp: object) -> None:
    end = time.monotonic() + 30
    while not comp.windows() and time.monotonic() < end:  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)


# --- report -----------------------------------------------------------------------------------------


def _line(workload: str, name: str, r: dict[str, float]) -> str:
    cpu = f"CPU server {r['cpu_server']:.2f} s, client {r['cpu_client']:.2f} s"
    if workload in TYPED:
        return (
            f"to viewer {r['bytes_per_char']:7.0f} B/char, to server {r['bytes_per_char_up']:5.0f} B/char; "
            f"keypress→pixels median {r['latency_median_ms']:5.1f} ms, p95 {r['latency_p95_ms']:5.1f} ms "
            f"(n={r['latency_samples']:.0f}); {cpu} over the 40 keys"
            f"\n  {'':14s} bytes to the viewer per key: median {r['char_bytes_median']:.0f}, "
            f"p95 {r['char_bytes_p95']:.0f}"
        )
    per_frame = r["bytes_per_s"] / max(r["frames_per_s"], 1e-9)
    video = f"; H.264 regions {r['h264_regions']:.0f}" if name == "WayRay" else ""
    if r.get("scaled_pictures"):
        video += f" ({r['scaled_pictures']:.0f} at half size)"
    line = (
        f"to viewer {r['bytes_per_s'] / 1000:8.1f} kB/s ({per_frame:7.0f} B/frame), "
        f"to server {r['bytes_per_s_up'] / 1000:5.1f} kB/s; {r['frames_per_s']:5.1f} frames/s; "
        f"{cpu} per 10 s{video}"
    )
    if "cpu_server_median" in r:
        per_frame_ms = r["cpu_server"] / 10 / max(r["frames_per_s"], 1e-9) * 1000
        line += (
            f"\n  {'':14s} server side's CPU per second of the window: median "
            f"{r['cpu_server_median']:.2f} s, p95 {r['cpu_server_p95']:.2f} s (per 10 s); "
            f"{per_frame_ms:.2f} ms per frame"
        )
    if "fps_median" in r:
        line += (
            f"\n  {'':14s} frames per second of the window: median {r['fps_median']:.0f}, lowest "
            f"{r['fps_lowest']:.0f}; gap between frames median {r['gap_median_ms']:.1f} ms, "
            f"p95 {r['gap_p95_ms']:.1f} ms"
        )
    if "video_first_frame_s" in r:
        line += (
            f"\n  {'':14s} the video's first frame reached the viewer "
            f"{r['video_first_frame_s']:.2f} s after the session showed it"
        )
        if r["frames_per_s"] == 0:
            line += "\n  " + " " * 14 + "NO frame reached the viewer in the window (see the line above)"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement window per run (8)")
    parser.add_argument("--only", default="scroll,shm,typing,prose,fullscreen")
    parser.add_argument("--compress", default="lz4,zstd", help="waypipe's modes to run (lz4,zstd)")
    args = parser.parse_args()
    workloads = args.only.split(",")
    modes = [m for m in args.compress.split(",") if m]
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; window {args.seconds:g} s\n")
    for w in workloads:
        rows = [("WayRay", wayray_run(w, args.seconds))]
        if w != "fullscreen":
            for mode in modes:
                rows.append((f"waypipe {mode}", asyncio.run(waypipe_run(w, args.seconds, mode))))
        print(f"== {w}")
        for name, r in rows:
            print(f"  {name:14s} " + _line(w, name, r))
        print(flush=True)


if __name__ == "__main__":
    main()
