"""Mouth to ear on loopback: from the session's sink to the kiosk's speaker, median and p95.

    .venv/bin/python -m bench.audio_mouth_to_ear [--clicks 40]

Real processes: ``wrsrvd --standalone``, a session whose command plays clicks (20 ms tones every 500 ms,
each click a pitch of its own among 25, so a late click is never taken for the next one; under them a
quiet continuous tone, so the sound never stops) with ``paplay``, a ``wrclient --headless --play-audio``
whose sound server is a PulseAudio of its own (tests/e2e/kiosk_sound.py: a null sink "speaker"). Two
``parec`` at 10 ms record the session's sink
("mouth": what the session plays, when it plays it) and the kiosk's speaker ("ear") at once, each chunk
stamped on arrival with this host's CLOCK_MONOTONIC; a click's latency is the arrival time of its
first sample at the ear minus at the mouth (the two recorders' own latencies are the same and cancel).
What it covers: capture (10 ms), 20 ms framing, Opus, link, wrsrvd, QUIC, the jitter buffer, pacat and
the kiosk sink's buffer. The load average is printed with it: the machine is shared.

With ``--peers tunnel,xpra`` the same clicks go the same way through PulseAudio's own network tunnel
(``module-tunnel-sink``) and through xpra's sound forwarding (bench/audio_peers.py), each into a fresh
kiosk sound server, and the figures are printed side by side. For every system, besides mouth to ear:
CPU (user + system, % of one core) over ``--seconds`` of silence and then of playing, by process
group, and the bytes per second on the link, counted by a relay in this process (WayRay: every UDP
datagram of the viewer's QUIC connection, so the picture's frames and keep-alives too — the session
is a shell script with no window; the peers: their TCP connection).

``--warmup S``: WayRay's kiosk plays the silent session for S seconds before the clicks. Its sink
buffer starts at 100 ms and comes down a third after every 15 s without an underrun (docs/audio.md
§3): the figure with a warm-up is what a calm kiosk plays with; without one, what a kiosk plays with
in its first seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.relays import Traffic

RATE = 48000
PERIOD_S = 0.5


#: Click k is 20 ms of a tone of its own (600 Hz + 200 Hz * (k mod 25)), so that a click heard late is
#: still told from the next one: a peer whose latency grows past the period is measured, not mismatched.
TONES = 25
CLICK_S = 0.02
BED = 0.02


def tone_of(k: int) -> float:
    return 600.0 + 200.0 * (k % TONES)


def write_clicks(path: Path, count: int) -> None:
    n = int(RATE * PERIOD_S)
    t = np.arange(int(RATE * CLICK_S)) / RATE
    fade = np.minimum(1.0, np.minimum(t, CLICK_S - t) / 0.002)
    # Under the clicks a quiet bed (150 Hz at -34 dBFS, far below the clicks' detection level): the sound
    # never stops, as with music or a call, so every system codes and sends all the time it plays.
    mono = BED * np.sin(2 * np.pi * 150 * np.arange(n * count) / RATE)
    for k in range(count):
        mono[k * n : k * n + t.size] = 0.5 * fade * np.sin(2 * np.pi * tone_of(k) * t)
    pcm = (np.stack([mono, mono], 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


class Recorder:
    """``parec`` at 10 ms from ``device``; each chunk's samples stamped with the time it arrived."""

    def __init__(self, env: dict[str, str], device: str) -> None:
        self.proc = subprocess.Popen(
            ["parec", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=2", "--latency-msec=10",
             "-d", device],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.chunks: list[tuple[float, bytes]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while data := self.proc.stdout.read1(1920):  # type: ignore[attr-defined]
            self.chunks.append((time.monotonic(), data))

    def onsets(self) -> list[tuple[float, int]]:
        """Arrival time of the first sample of each click, and which click (its tone, mod TONES)."""
        times, level, carry = [], [], b""
        for t, data in self.chunks:
            data = carry + data
            usable = len(data) // 4 * 4
            carry = data[usable:]
            x = np.frombuffer(data[:usable], "<i2").reshape(-1, 2).mean(axis=1) / 32768.0
            times.append(np.full(x.size, t))
            level.append(x)
        if not level:
            return []
        signal, when = np.concatenate(level), np.concatenate(times)
        loud = np.flatnonzero(np.abs(signal) > 0.1)
        n = int(RATE * CLICK_S)
        onsets, last = [], -(10**9)
        for i in loud:
            if i - last > RATE * PERIOD_S / 2:
                piece = signal[i : i + n]
                spectrum = np.abs(np.fft.rfft(piece * np.hanning(piece.size), 8 * n))
                freq = float(np.argmax(spectrum)) * RATE / (8 * n)
                onsets.append((float(when[i]), round((freq - tone_of(0)) / 200.0) % TONES))
            last = int(i)
        return onsets

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def latencies(said: list[tuple[float, int]], heard: list[tuple[float, int]]) -> list[float]:
    """Each click's arrival at the ear minus at the mouth, in ms: the first click of the same tone heard
    after it, within WINDOW_S (a click not heard: none)."""
    lat = []
    for t, k in said:
        after = [u for u, j in heard if j == k and 0 <= u - t < WINDOW_S]
        if after:
            lat.append((after[0] - t) * 1000)
    return sorted(lat)


#: How late a click may be heard and still count (tones repeat every TONES clicks: 12.5 s at 0.5 s).
WINDOW_S = 11.0
#: After the player is done: the slowest path's last clicks still to come.
TAIL_S = 8.0


def wayray_run(
    tmp: Path, clicks: Path, kiosk: Any, seconds: float, stats: Path, warmup: float = 0.0
) -> dict[str, Any]:
    from bench.audio_peers import phases, tree
    from bench.relays import UdpRelay
    from tests.e2e.harness import Client, Harness, eventually

    h = Harness(tmp)
    recorders: list[Recorder] = []
    try:
        script = h.write_script(
            "session.sh",
            '#!/bin/sh\nenv > "$HOME/session-env.txt"\n'
            'while [ ! -e "$HOME/go" ]; do sleep 0.05; done\n'
            f'paplay "{clicks}"; touch "$HOME/done"\nexec sleep 3600\n',
        )
        script.chmod(0o755)
        srv = h.server([str(script)])
        traffic = Traffic()
        front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        front.bind(("127.0.0.1", 0))
        UdpRelay(front, srv.port, traffic).start()
        argv = h.client_argv(srv, "--play-audio", "--stats", str(stats))
        argv[1] = f"127.0.0.1:{front.getsockname()[1]}"
        with open(tmp / "viewer.out", "wb") as out, open(tmp / "viewer.err", "wb") as err:
            proc = subprocess.Popen(
                argv, env={**h.env, **kiosk.env}, cwd=h.home, stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True,
            )  # fmt: skip
        viewer = Client(proc, tmp / "viewer.out", tmp / "viewer.err")
        h.clients.append(viewer)
        session = srv.wait_linked()
        env_file = h.home / "session-env.txt"
        text = str(eventually(lambda: env_file.exists() and env_file.read_text(), "the session's command"))
        session_env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        mouth = Recorder({"PULSE_SERVER": session_env["PULSE_SERVER"]}, "wayray.monitor")
        ear = Recorder(kiosk.env, "speaker.monitor")
        recorders += [mouth, ear]
        eventually(lambda: kiosk.players() == 1, "the kiosk to play")
        time.sleep(1.0 + warmup)  # both recorders running (and the kiosk calm for --warmup)
        comp = session["pid"]
        groups = {
            "session process (capture, Opus), parec": lambda: tree(comp, lambda n: n not in SESSION_OTHERS),
            "session PulseAudio": lambda: tree(comp, lambda n: n == "pulseaudio"),
            "wrclient (decode, buffer), pacat": lambda: tree(proc.pid),
            "kiosk PulseAudio": lambda: [kiosk._server.pid],
        }  # fmt: skip
        result = phases(groups, traffic, seconds, lambda: (h.home / "go").touch())
        eventually(lambda: (h.home / "done").exists(), "paplay to finish", timeout=CLICKS_TIMEOUT)
        time.sleep(TAIL_S)  # the last clicks through the slowest path
        result["said"], result["heard"] = mouth.onsets(), ear.onsets()
        result["codec"] = "Opus (PyAV), 96 kbit/s CBR, 20 ms frames"
        viewer.signal(2)
        viewer.wait()
        return result
    finally:
        for r in recorders:
            r.stop()
        h.cleanup()


CLICKS_TIMEOUT = 600.0
#: What the session's own command runs (not WayRay's part of the CPU).
SESSION_OTHERS = {"pulseaudio", "sh", "paplay", "sleep"}


def report(name: str, r: dict[str, Any]) -> None:
    lat = latencies(r["said"], r["heard"])
    heard = f"{len(lat)} heard within {WINDOW_S:g} s"
    print(f"{name}: {len(r['said'])} clicks played, {heard}; codec: {r['codec']}")
    if lat:
        p95 = lat[round(0.95 * (len(lat) - 1))]
        print(
            f"  mouth to ear: median {statistics.median(lat):.0f} ms, p95 {p95:.0f} ms, "
            f"min {lat[0]:.0f} ms, max {lat[-1]:.0f} ms"
        )
    for phase in ("silent", "playing"):
        cpu = r[f"cpu_{phase}"]
        total = sum(cpu.values())
        parts = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        print(f"  CPU {phase:7} {total:5.1f} % of a core: {parts}")
        if f"bytes_per_s_{phase}" in r:
            print(
                f"  link {phase:7} {r[f'bytes_per_s_{phase}'] / 1000:.1f} kB/s to the kiosk, "
                f"{r[f'bytes_per_s_{phase}_back'] / 1000:.1f} kB/s back"
            )


def main() -> None:
    global PERIOD_S  # noqa: PLW0603 - the clicks' spacing (--period), read by write_clicks, Recorder, latencies
    from bench.audio_peers import tunnel_run, xpra_run
    from tests.e2e.kiosk_sound import KioskSound

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clicks", type=int, default=40)
    p.add_argument(
        "--seconds", type=float, default=10.0, help="of silence, then of playing, for CPU and bytes"
    )
    p.add_argument(
        "--period",
        type=float,
        default=PERIOD_S,
        help="seconds between clicks: twice the largest latency to see",
    )
    p.add_argument("--warmup", type=float, default=0.0, metavar="S", help="WayRay: seconds of silence first")
    p.add_argument("--peers", default="", help="tunnel,xpra,xpra-opus: the same clicks through them too")
    p.add_argument("--only-peers", action="store_true", help="the peers without WayRay's run")
    args = p.parse_args()
    PERIOD_S = args.period
    runs: list[tuple[str, Callable[..., dict[str, Any]]]] = []
    if not args.only_peers:

        def wayray(tmp: Path, clicks: Path, kiosk: Any) -> dict[str, Any]:
            return wayray_run(tmp, clicks, kiosk, args.seconds, tmp / "stats.json", args.warmup)

        runs.append(("WayRay", wayray))
    for peer in filter(None, args.peers.split(",")):
        peers = {"tunnel": tunnel_run, "xpra": xpra_run, "xpra-opus": partial(xpra_run, codec="opus+mka")}
        fn = peers.get(peer)
        if fn is None:
            raise SystemExit(f"--peers: unknown peer {peer!r} (tunnel, xpra: its default codec, xpra-opus)")
        runs.append((peer, lambda tmp, clicks, kiosk, fn=fn: fn(tmp, clicks, kiosk, Recorder, args.seconds)))
    print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores; {args.clicks} clicks at 48 kHz")
    for name, run in runs:
        tmp = Path(tempfile.mkdtemp(prefix=f"wayray-m2e-{name.lower()}-"))
        clicks = tmp / "clicks.wav"
        write_clicks(clicks, args.clicks)
        kiosk = KioskSound(tmp / "kiosk").start()
        load = os.getloadavg()[0]
        try:
            result = run(tmp, clicks, kiosk)
        finally:
            kiosk.stop()
        print(f"load average {load:.1f} (end {os.getloadavg()[0]:.1f})")
        report(name, result)


if __name__ == "__main__":
    main()
