"""One session's sound to one headless viewer on loopback: bytes, CPU per side, capture-to-viewer latency.

    .venv/bin/python -m bench.audio_stream [--seconds 20]

Real processes: ``wrsrvd --standalone`` (policy.audio_bitrate's default, 96 kbit/s), a session whose
command plays a tone under a chirp with ``paplay``, a ``wrclient --headless --audio-wav``. Measured
over the same wall time twice, silent and playing:

- CPU (user + system) of the session process, its PulseAudio, its ``parec`` and the viewer, from
  /proc (psutil), in percent of one core;
- what the viewer received (its ``--stats``): frames, bytes, and capture-to-viewer latency (the
  session's and the viewer's CLOCK_MONOTONIC are one here, so the difference is the real delay:
  capture, 20 ms framing, encoding, link, wrsrvd, QUIC, decoding). The kiosk's playback buffer and
  sink come on top: ``bench/audio_mouth_to_ear.py`` measures the whole way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import psutil

RATE = 48000


def write_signal(path: Path, seconds: float) -> None:
    t = np.arange(int(RATE * seconds)) / RATE
    mono = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 100 * (t % 5)) * t)
    pcm = (np.stack([mono, mono * 0.8], 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def cpu_seconds(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out = {}
    for name, group in procs.items():
        total = 0.0
        for p in group:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        out[name] = total
    return out


def main() -> None:
    from tests.e2e.harness import Harness, eventually

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wayray-audio-bench-"))
    h = Harness(tmp)
    try:
        sound = tmp / "sound.wav"
        write_signal(sound, args.seconds + 10)
        script = h.write_script(
            "session.sh",
            '#!/bin/sh\nwhile [ ! -e "$HOME/go" ]; do sleep 0.05; done\n'
            f'paplay "{sound}" &\nexec sleep 3600\n',
        )
        script.chmod(0o755)
        srv = h.server([str(script)])
        stats = tmp / "stats.json"
        viewer = h.start_client(srv, "--audio-wav", str(tmp / "heard.wav"), "--stats", str(stats))
        session = srv.wait_linked()
        comp = psutil.Process(session["pid"])

        def named(name: str) -> list[psutil.Process]:
            return [c for c in comp.children(recursive=True) if c.name() == name]

        eventually(lambda: named("parec"), "the session's capture")
        procs = {
            "session process": [comp],
            "pulseaudio": named("pulseaudio"),
            "parec": named("parec"),
            "viewer": [psutil.Process(viewer.proc.pid)],
        }
        results = {}
        for phase in ("silent", "playing"):
            if phase == "playing":
                (h.home / "go").touch()
                time.sleep(1.0)  # paplay's start
            before, t0 = cpu_seconds(procs), time.monotonic()
            time.sleep(args.seconds)
            after, wall = cpu_seconds(procs), time.monotonic() - t0
            results[phase] = {k: 100 * (after[k] - before[k]) / wall for k in before}
        viewer.signal(signal.SIGINT)
        viewer.wait()
        audio = json.loads(stats.read_text())["audio"]
        print(f"{platform.node()} {platform.machine()} {os.cpu_count()} cores; 96 kbit/s")
        for phase, cpu in results.items():
            print(f"{phase:8} CPU % of a core: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
        per_frame = 6 + 4 + 4 + 8 + 4  # frame header and AudioFrame's fields around the Opus packet
        frames, opus = audio["frames"], audio["bytes"]
        wire = (opus + per_frame * frames) / args.seconds
        print(
            f"received {frames} frames, {opus} bytes of Opus ({opus / max(1, frames):.0f} per frame; with "
            f"the wire's {per_frame} bytes a frame: {wire:.0f} B/s while playing); "
            f"{audio['silent_frames']} silent frames not sent"
        )
        median, p95 = audio["latency_ms_median"], audio["latency_ms_p95"]
        print(f"capture → viewer latency: median {median} ms, p95 {p95} ms")
    finally:
        h.cleanup()


if __name__ == "__main__":
    main()
