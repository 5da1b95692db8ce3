"""Session audio (docs/audio.md) with real processes: a real wrsrvd, real sessions, a real PulseAudio
per session, real `paplay`/`parec` from pulseaudio-utils, real headless viewers."""

from __future__ import annotations

import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.e2e.harness import Harness, eventually

pytestmark = pytest.mark.slow

RATE = 48000


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """``samples``: float in [-1, 1], shape (n,) (mono, written as stereo) or (n, 2)."""
    if samples.ndim == 1:
        samples = np.stack([samples, samples], 1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def tone(seconds: float, hz: float = 440.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return level * np.sin(2 * np.pi * hz * t)


def session_script(h: Harness, body: str) -> list[str]:
    """A session command: writes its environment where the test reads it, then ``body``."""
    script = h.write_script(
        "session.sh", f'#!/bin/sh\nenv > "$HOME/session-env.txt"\n{body}\nexec sleep 3600\n'
    )
    script.chmod(0o755)
    return [str(script)]


def session_env(h: Harness) -> dict[str, str]:
    path = h.home / "session-env.txt"
    text = eventually(lambda: path.exists() and path.read_text(), "the session's command to start")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def sound_servers_of(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "pulseaudio"]


def record_monitor(env: dict[str, str], seconds: float) -> np.ndarray:
    """What the session's WayRay sink plays, as its monitor records it (mono float)."""
    pulse = {"PULSE_SERVER": env["PULSE_SERVER"], "PULSE_COOKIE": env["PULSE_COOKIE"]}
    out = subprocess.run(
        ["timeout", str(seconds), "parec", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=2",
         "-d", "wayray.monitor"],
        env={**os.environ, **pulse}, capture_output=True, timeout=seconds + 30,
    )  # fmt: skip
    pcm = np.frombuffer(out.stdout[: len(out.stdout) // 4 * 4], "<i2").reshape(-1, 2)
    return pcm.mean(axis=1) / 32768.0


def test_a_session_has_its_own_sound_server_and_paplay_reaches_the_wayray_sink(harness: Harness) -> None:
    wav = write_wav(harness.tmp / "tone.wav", tone(60.0))
    srv = harness.server(session_script(harness, f"paplay '{wav}' &"))
    harness.start_client(srv)
    session = srv.wait_linked()
    env = session_env(harness)
    # Every program of the session finds the session's sound server.
    runtime = Path(env["XDG_RUNTIME_DIR"])
    assert env["PULSE_SERVER"].startswith(f"unix:{runtime}/wayray-audio-")
    socket_dir = Path(env["PULSE_SERVER"].removeprefix("unix:")).parent
    assert (socket_dir.stat().st_mode & 0o777) == 0o700
    # One PulseAudio, a child of the session's process, as the session's user, in its process group.
    (server,) = eventually(lambda: sound_servers_of(session["pid"]), "the session's sound server")
    compositor = psutil.Process(session["pid"])
    assert server.uids().real == compositor.uids().real
    assert os.getpgid(server.pid) == os.getpgid(compositor.pid)

    # paplay in the session plays into the sink "WayRay": its monitor hears the tone.
    def loud() -> list[np.ndarray] | None:
        r = record_monitor(env, 1.0)
        return [r] if r.size and np.abs(r).max() > 0.3 else None

    (heard,) = eventually(loud, "the tone")
    spectrum = np.abs(np.fft.rfft(heard))
    peak = np.fft.rfftfreq(heard.size, 1 / RATE)[np.argmax(spectrum)]
    assert abs(peak - 440) <= 2 * RATE / heard.size, peak  # the 440 Hz tone, within two bins
    # The sink and the source have the names applications show.
    listing = subprocess.run(
        ["pactl", "list", "sinks"], env={**os.environ, "PULSE_SERVER": env["PULSE_SERVER"]},
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert "Description: WayRay\n" in listing
    sources = subprocess.run(
        ["pactl", "list", "sources"], env={**os.environ, "PULSE_SERVER": env["PULSE_SERVER"]},
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert "Description: WayRay microphone\n" in sources
    # Nothing was written into the user's home (cookies, state): all of it is in the private directory.
    assert not (harness.home / ".config" / "pulse").exists()
    # The sound server ends with the session.
    srv.admin("kill", session_id=session["id"])
    eventually(lambda: not psutil.pid_exists(server.pid) or server.status() == psutil.STATUS_ZOMBIE,
               "the sound server to end with the session")  # fmt: skip
    eventually(lambda: not socket_dir.exists(), "the session's sound directory to be removed")


def test_with_audio_off_a_session_starts_no_sound_server(harness: Harness) -> None:
    srv = harness.server(session_script(harness, ""), extra=["--audio", "off"])
    harness.start_client(srv)
    session = srv.wait_linked()
    env = session_env(harness)
    assert "PULSE_SERVER" not in env
    assert sound_servers_of(session["pid"]) == []
    assert not list(Path(env["XDG_RUNTIME_DIR"]).glob("wayray-audio-*"))
