"""The session's sound to its viewer: the WayRay sink's monitor recorded by ``parec`` (PulseAudio's own
tool), cut into 20 ms frames, silence skipped, the rest Opus-encoded and sent as AudioFrame.

Runs only while a viewer that negotiated ``audio`` is attached: a detached session's sound goes into the
null sink and is gone (nothing is kept for a later viewer). Sending never waits: a frame that the link
cannot take now would be late anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from wayray.audio import realtime
from wayray.audio.opus import CHANNELS, FRAME_BYTES, FRAME_US, RATE, OpusEncoder, is_silent
from wayray.audio.soundserver import SINK
from wayray.wire import AudioCodec, AudioFrame, AudioStart, AudioStop

log = logging.getLogger("wayray.audio")

#: What PulseAudio is asked to buffer before parec gets the samples (its fragment size).
CAPTURE_LATENCY_MS = 10
_stream_ids = itertools.count(1)
#: parec processes being reaped (a reference, so that their tasks are not collected half-way).
_reaping: set[asyncio.Task[None]] = set()


async def _reap(proc: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        log.warning("parec (pid %d) did not exit after SIGKILL within 10 s", proc.pid)
    finally:
        _reaping.discard(asyncio.current_task())


@dataclass
class SenderStats:
    frames_sent: int = 0
    frames_silent: int = 0
    bytes_sent: int = 0
    encode_seconds: float = 0.0


class AudioSender:
    """One viewer's stream: ``start()`` at attach, ``stop()`` at detach. ``send`` takes a wire message
    and queues it for the viewer without waiting."""

    def __init__(
        self, environment: dict[str, str], send: Callable[[object], None], *, bitrate: int, microphone: bool
    ) -> None:
        self._env = environment
        self._send = send
        self.bitrate = bitrate
        self.microphone = microphone
        self.stream_id = next(_stream_ids)
        self.stats = SenderStats()
        #: When the last frame of sound (not silence) was sent (monotonic seconds; 0: none yet).
        self.last_sound = 0.0
        self._proc: asyncio.subprocess.Process | None = None
        #: The scheduling parec got ("realtime", "raised", "normal").
        self.priority = ""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Start recording; False (logged) when parec cannot run: the viewer gets no sound."""
        parec = shutil.which("parec")
        if parec is None:
            log.error("parec is not installed (Debian: apt install pulseaudio-utils): no sound for viewers")
            return False
        argv = [
            parec,
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            f"--channels={CHANNELS}",
            f"--latency-msec={CAPTURE_LATENCY_MS}",
            "--client-name=wayray-capture",
            f"--device={SINK}.monitor",
        ]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, env=self._env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
            )
        except OSError as err:
            log.error("cannot run parec: %s; no sound for this viewer", err.strerror or err)
            return False
        # Its 10 ms fragments must be taken as they come (a burst after a stall reaches the kiosk late).
        self.priority = realtime.raise_priority(self._proc.pid, what="the session's sound capture (parec)")
        self._send(
            AudioStart(
                stream_id=self.stream_id,
                codec=AudioCodec.OPUS,
                sample_rate=RATE,
                channels=CHANNELS,
                frame_us=FRAME_US,
                bitrate=self.bitrate * 1000,
                microphone=self.microphone,
            )
        )
        self._task = asyncio.get_running_loop().create_task(self._pump(self._proc), name="audio capture")
        return True

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        encoder = OpusEncoder(self.bitrate * 1000)
        seq = 0
        try:
            while True:
                pcm = await proc.stdout.readexactly(FRAME_BYTES)
                # The frame's first sample was captured a frame and PulseAudio's fragment ago.
                now_us = time.monotonic_ns() // 1000
                timestamp = now_us - FRAME_US - CAPTURE_LATENCY_MS * 1000
                if is_silent(pcm):
                    self.stats.frames_silent += 1
                else:
                    self.last_sound = now_us / 1e6
                    t0 = time.process_time()
                    packets = encoder.encode(pcm)
                    self.stats.encode_seconds += time.process_time() - t0
                    for data in packets:
                        self._send(
                            AudioFrame(stream_id=self.stream_id, seq=seq, timestamp_us=timestamp, data=data)
                        )
                        self.stats.frames_sent += 1
                        self.stats.bytes_sent += len(data)
                seq = (seq + 1) & 0xFFFFFFFF
        except asyncio.IncompleteReadError:
            log.warning("the session's sound server stopped giving sound (parec ended)")
            with contextlib.suppress(Exception):
                self._send(AudioStop(stream_id=self.stream_id))

    def stop(self) -> None:
        """Stop at once: nothing more is sent. parec is killed and reaped in the background, so the
        caller (the link's loop, which must go on answering wrsrvd) never waits for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            _reaping.add(asyncio.get_running_loop().create_task(_reap(proc), name="reap parec"))
        s = self.stats
        log.info(
            "audio stream %d ended: %d frames sent (%d bytes), %d silent frames not sent, encoding %.2f s",
            self.stream_id,
            s.frames_sent,
            s.bytes_sent,
            s.frames_silent,
            s.encode_seconds,
        )
