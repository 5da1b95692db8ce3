"""Mouth to ear on loopback: from the session's sink to the kiosk's speaker, median and p95.

    .venv/bin/python -m bench.audio_mouth_to_ear [--clicks 40] [--warmup S]

Real processes: ``wrsrvd --standalone``, a session whose command plays clicks (5 ms of 1 kHz every
1 s) with ``paplay``, a ``wrclient --headless --play-audio`` whose sound server is a PulseAudio of its
own (tests/e2e/kiosk_sound.py: a null sink "speaker"). Two ``parec`` at 10 ms record the session's sink
("mouth": what the session plays, when it plays it) and the kiosk's speaker ("ear") at once, each chunk
stamped on arrival with this host's CLOCK_MONOTONIC; a click's latency is the arrival time of its
first sample at the ear minus at the mouth (the two recorders' own latencies are the same and cancel).
What it covers: capture (10 ms), 20 ms framing, Opus, link, wrsrvd, QUIC, the jitter buffer, pacat and
the kiosk sink's buffer. The load average is printed with it: the machine is shared.

``--warmup S``: the kiosk plays the silent session for S seconds before the clicks. Its sink buffer
starts at 100 ms and comes down a third after every 15 s without an underrun (docs/audio.md §3): a
kiosk that has been calm for a minute plays with 30 ms, and the figure with a warm-up is what it
plays with then; without one, what a kiosk plays with in its first seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

RATE = 48000
#: A click a second, and a click heard up to half a second after it was played counts (a kiosk whose
#: sink buffer grew to 240 ms under load plays them over 250 ms late: with clicks 0.5 s apart, as
#: before, those were not counted at all).
PERIOD_S = 1.0


def write_clicks(path: Path, count: int) -> None:
    n = int(RATE * PERIOD_S)
    click = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(RATE * 0.005)) / RATE)
    mono = np.zeros(n * count)
    for k in range(count):
        mono[k * n : k * n + click.size] = click
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

    def onsets(self) -> list[float]:
        """Arrival times of the first sample of each click."""
        times, level, carry = [], [], b""
        for t, data in self.chunks:
            data = carry + data
            usable = len(data) // 4 * 4
            carry = data[usable:]
            x = np.frombuffer(data[:usable], "<i2").reshape(-1, 2).mean(axis=1) / 32768.0
            times.append(np.full(x.size, t))
            level.append(np.abs(x))
        if not level:
            return []
        amp, when = np.concatenate(level), np.concatenate(times)
        loud = np.flatnonzero(amp > 0.1)
        onsets, last = [], -(10**9)
        for i in loud:
            if i - last > RATE * PERIOD_S / 2:
                onsets.append(float(when[i]))
            last = i
        return onsets

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    from tests.e2e.harness import Harness, eventually
    from tests.e2e.kiosk_sound import KioskSound

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clicks", type=int, default=40)
    p.add_argument("--warmup", type=float, default=0.0, metavar="S", help="seconds of silence first")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wayray-m2e-bench-"))
    h = Harness(tmp)
    kiosk = KioskSound(h.short / "kiosk").start()
    recorders: list[Recorder] = []
    try:
        clicks = tmp / "clicks.wav"
        write_clicks(clicks, args.clicks)
        script = h.write_script(
            "session.sh",
            '#!/bin/sh\nenv > "$HOME/session-env.txt"\n'
            'while [ ! -e "$HOME/go" ]; do sleep 0.05; done\n'
            f'paplay "{clicks}"; touch "$HOME/done"\nexec sleep 3600\n',
        )
        script.chmod(0o755)
        srv = h.server([str(script)])
        stats = tmp / "stats.json"
        viewer = h.start_client(srv, "--play-audio", "--stats", str(stats), env=kiosk.env)
        srv.wait_linked()
        env_file = h.home / "session-env.txt"
        text = eventually(lambda: env_file.exists() and env_file.read_text(), "the session's command")
        session_env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        mouth = Recorder({"PULSE_SERVER": session_env["PULSE_SERVER"]}, "wayray.monitor")
        ear = Recorder(kiosk.env, "speaker.monitor")
        recorders += [mouth, ear]
        eventually(lambda: kiosk.players() == 1, "the kiosk to play")
        time.sleep(1.0 + args.warmup)  # both recorders running (and the kiosk calm for a while)
        load = os.getloadavg()[0]
        (h.home / "go").touch()
        eventually(
            lambda: (h.home / "done").exists(), "paplay to finish", timeout=args.clicks * PERIOD_S + 60
        )
        time.sleep(1.0)
        said, heard = mouth.onsets(), ear.onsets()
        lat = []
        for t in said:
            after = [u for u in heard if 0 <= u - t < PERIOD_S / 2]
            if after:
                lat.append((after[0] - t) * 1000)
        viewer.signal(2)
        viewer.wait()
        lat.sort()
        end_load = os.getloadavg()[0]
        print(f"load average {load:.1f} (end {end_load:.1f}); {len(said)} clicks played, {len(lat)} heard")
        if lat:
            median, p95 = lat[len(lat) // 2], lat[int(0.95 * (len(lat) - 1))]
            p90 = lat[int(0.9 * (len(lat) - 1))]
            print(
                f"mouth to ear: median {median:.0f} ms, p90 {p90:.0f} ms, p95 {p95:.0f} ms, "
                f"min {lat[0]:.0f} ms, max {lat[-1]:.0f} ms"
            )
        print("viewer stats:", stats.read_text().split('"playback"', 1)[-1].replace("\n", " ")[:400])
    finally:
        for r in recorders:
            r.stop()
        kiosk.stop()
        h.cleanup()


if __name__ == "__main__":
    main()
