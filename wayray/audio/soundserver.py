"""The session's own sound server: PulseAudio with a sink "WayRay" and a source "WayRay microphone".

Started by the session process before the session's command, so it runs as the session's user and in
the session's process group (it ends with the session). Everything it keeps is in a private directory
(mode 0700) under the session's runtime directory; its socket admits anonymous clients, so the
directory's mode is the access control. Once started it loads no more modules: a program of the session
cannot open the sound server to the network. docs/audio.md §1 says why PulseAudio and not PipeWire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from wayray.audio import realtime
from wayray.common.xdg import session_sound_dir, session_sound_environment

log = logging.getLogger("wayray.audio")

#: What programs of the session see.
SINK = "wayray"
SINK_DESCRIPTION = "WayRay"
SOURCE = "wayray_microphone"
SOURCE_DESCRIPTION = "WayRay microphone"
#: The FIFO (in the private directory) that the source "WayRay microphone" reads: the session process
#: writes the viewer's microphone, or silence, into it (wayray.audio.microphone).
MIC_FIFO = "microphone"
RATE = 48000
CHANNELS = 2
#: How long the sound server may take to answer after it was started.
START_TIMEOUT = 15.0
STOP_GRACE = 3.0
#: PulseAudio's realtime priority (its default): above the threads of ours that feed it.
PULSE_RT_PRIORITY = 5


class SoundServerError(Exception):
    """The sound server could not be started; the session goes on without sound."""


def _script(directory: Path) -> str:
    """PulseAudio's start-up script: exactly these modules, nothing from default.pa."""
    return "\n".join(
        [
            f"load-module module-native-protocol-unix socket={directory / 'native'} auth-anonymous=1 "
            "auth-cookie-enabled=0",
            f"load-module module-null-sink sink_name={SINK} rate={RATE} channels={CHANNELS} "
            f"sink_properties=device.description={SINK_DESCRIPTION}",
            # A pipe source has no clock of its own: it hands its recorders what the session process
            # writes, when it writes it (a null sink's monitor played into by pacat had a clock of its
            # own, took 2 s of sound ahead at its start, and left a gap wherever pacat came late).
            f"load-module module-pipe-source source_name={SOURCE} file={directory / MIC_FIFO} "
            f"format=s16le rate={RATE} channels={CHANNELS} "
            f"source_properties=\"device.description='{SOURCE_DESCRIPTION}'\"",
            f"set-default-sink {SINK}",
            f"set-default-source {SOURCE}",
            "",
        ]
    )


class SoundServer:
    """One session's PulseAudio: :meth:`start`, :meth:`client_env` for its programs, :meth:`stop`."""

    def __init__(self, runtime_dir: Path, wayland_display: str) -> None:
        self.directory = session_sound_dir(runtime_dir, wayland_display)
        self._environment = session_sound_environment(runtime_dir, wayland_display)
        self.server = self._environment["PULSE_SERVER"]
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def microphone_fifo(self) -> Path:
        """Where the source "WayRay microphone" reads its sound (wayray.audio.microphone writes it)."""
        return self.directory / MIC_FIFO

    def environment(self) -> dict[str, str]:
        """What a client of this sound server needs (``PULSE_SERVER``, a cookie path in the private
        directory, so libpulse writes nothing into the home directory)."""
        return dict(self._environment)

    def client_env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with this sound server for its programs (and no autospawn of another)."""
        return {**base, **self.environment()}

    async def start(self) -> None:
        """Start PulseAudio and wait until it answers with its sink and source; raises SoundServerError."""
        binary = shutil.which("pulseaudio")
        if binary is None:
            raise SoundServerError("pulseaudio is not installed (Debian: apt install pulseaudio)")
        d = self.directory
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        for leftover in ("native", "pid", "cookie", MIC_FIFO):  # of a session process that was killed
            with contextlib.suppress(FileNotFoundError):
                (d / leftover).unlink()
        script = d / "wayray.pa"
        script.write_text(_script(d), encoding="utf-8")
        # Not the user's D-Bus session: this server is the session's, not the desktop's of the host.
        # Not the link's variables either: where wrsrvd's link is is the compositor's business only.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PULSE_", "DBUS_SESSION_BUS", "WAYRAY_LINK", "WAYRAY_WAYLAND_DISPLAY"))
        }
        env.update(PULSE_RUNTIME_PATH=str(d), PULSE_STATE_PATH=str(d), PULSE_COOKIE=str(d / "cookie"))
        argv = [
            binary,
            "-n",
            "-F",
            str(script),
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--disallow-module-loading",
            # Its sink's and source's threads at realtime priority (5, PulseAudio's own default, with
            # its 200 ms RLIMIT_RTTIME), and nice -11, where the session may have them: a starved sound
            # server cuts holes into the session's sound and its microphone (docs/audio.md §7).
            f"--realtime={'yes' if realtime.allowed(PULSE_RT_PRIORITY) else 'no'}",
            f"--high-priority={'yes' if realtime.nice_allowed() else 'no'}",
            "--disable-shm=yes",
            "--log-target=stderr",
            "--log-level=warning",
        ]
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.DEVNULL, cwd=str(d)
            )
        except OSError as err:
            raise SoundServerError(f"cannot run {binary}: {err.strerror or err}") from None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._wait_ready)
        except SoundServerError:
            await self.stop()
            raise
        log.info(
            "sound server up (pid %d): sink %r, source %r at %s",
            self.proc.pid,
            SINK_DESCRIPTION,
            SOURCE_DESCRIPTION,
            self.server,
        )

    def _wait_ready(self) -> None:
        """Connect with pulsectl until the server answers and has the sink and source (a thread)."""
        import pulsectl

        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            proc = self.proc
            if proc is None or proc.returncode is not None:
                raise SoundServerError(
                    f"pulseaudio exited at start (status {proc.returncode if proc else '?'}); "
                    "its messages are in the session's log"
                )
            try:
                with pulsectl.Pulse("wayray-session", server=self.server, connect=True) as pulse:
                    sinks = {s.name for s in pulse.sink_list()}
                    sources = {s.name for s in pulse.source_list()}
                if SINK in sinks and SOURCE in sources:
                    return
                last = f"sinks {sorted(sinks)}, sources {sorted(sources)}"
            except pulsectl.PulseError as err:
                last = str(err)
            time.sleep(0.05)
        raise SoundServerError(f"pulseaudio did not come up within {START_TIMEOUT:g} s ({last})")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
