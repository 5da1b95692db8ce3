"""A kiosk's own sound server for the audio tests: a real PulseAudio (one null sink, "speaker", its
default) in a private directory, and a recorder of what that sink plays (its monitor, 10 ms fragments,
which also keeps the null sink rendering at a steady pace).

It runs as a kiosk's sound server does: its sink's thread at realtime priority and the daemon at nice
-11 (PulseAudio's defaults, which Debian's PulseAudio gets through rtkit; the tests' root takes them
itself). The null sink stands for the kiosk's sound card, which plays on whatever the machine does: a
sink thread starved here would be a test rig's fault, not a kiosk's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import numpy as np

from tests.e2e.harness import eventually

RATE = 48000


class KioskSound:
    def __init__(self, directory: Path, keep: Path | None = None) -> None:
        """``keep``: where to copy the speaker's recording when stopped (for a failed test's reader)."""
        self.dir = directory
        self.keep = keep
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {"PULSE_SERVER": f"unix:{self.dir / 'native'}", "PULSE_COOKIE": str(self.dir / "cookie")}
        self.recording = self.dir / "speaker.raw"
        self._server: subprocess.Popen[bytes] | None = None
        self._recorder: subprocess.Popen[bytes] | None = None

    def start(self) -> KioskSound:
        script = self.dir / "kiosk.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.dir / 'native'} auth-anonymous=1 "
            "auth-cookie-enabled=0\n"
            f"load-module module-null-sink sink_name=speaker rate={RATE} channels=2\n"
            "set-default-sink speaker\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DBUS_SESSION_BUS"))}
        env.update(PULSE_RUNTIME_PATH=str(self.dir), PULSE_STATE_PATH=str(self.dir))
        self._server = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1",
             "--use-pid-file=no", "--disable-shm=yes", "--realtime=yes", "--high-priority=yes",
             "--log-target=stderr", "--log-level=error"],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        eventually(lambda: self._pactl("info").returncode == 0, "the kiosk's sound server to answer")
        with open(self.recording, "wb") as out:
            self._recorder = subprocess.Popen(
                ["parec", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=2", "--latency-msec=10",
                 "-d", "speaker.monitor"],
                env={**os.environ, **self.env}, stdout=out, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def _pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30
        )

    def players(self) -> int:
        """How many streams play into the speaker now."""
        return self._pactl("list", "short", "sink-inputs").stdout.count("\n")

    def heard(self, since: int = 0) -> np.ndarray:
        """What the speaker has played so far (mono float), from sample ``since`` on."""
        with open(self.recording, "rb") as f:
            f.seek(since * 4)
            raw = f.read()
        return np.frombuffer(raw[: len(raw) // 4 * 4], "<i2").reshape(-1, 2).mean(axis=1) / 32768.0

    def samples(self) -> int:
        """How many samples the speaker has played so far (the recording's length)."""
        return self.recording.stat().st_size // 4

    def stop(self) -> None:
        for proc in (self._recorder, self._server):
            if proc is not None and proc.poll() is None:
                with suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if self.keep is not None and self.recording.exists():
            shutil.copy(self.recording, self.keep)
