"""The viewer's microphone into the session: MicFrames decoded and played by ``pacat`` into the null sink
whose monitor is the source "WayRay microphone" (docs/audio.md §1).

The feed runs as long as the session's sound server does, on a 20 ms clock of its own: each tick plays
the next frame from the viewer, or 20 ms of silence when there is none (no viewer, the microphone not
allowed, a frame late). A null sink nobody plays into gives its monitor's readers nothing for seconds
at a time (PulseAudio renders an idle null sink in large blocks), and a program recording the
microphone must get silence, not a stall.

A MicFrame whose seq does not increase, or whose data does not decode, is dropped and counted: that
costs the viewer's microphone that frame, never the session. Writing never waits: sound that ``pacat``
cannot take now is dropped rather than delivered late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import deque
from dataclasses import dataclass

from wayray.audio.opus import CHANNELS, FRAME_BYTES, FRAME_US, RATE, OpusDecoder
from wayray.audio.soundserver import MIC_FEED
from wayray.common.log import Repeats
from wayray.wire import MicFrame

log = logging.getLogger("wayray.audio")

#: Most decoded sound waiting for pacat (3 s); more is dropped. A null sink takes what is played into it
#: as often as its monitor's readers ask for sound: a recorder that asks for large fragments (parecord's
#: default is 2 s) makes it take seconds at a time, so the feed must hold that much without dropping.
MAX_PENDING = RATE * CHANNELS * 2 * 3
#: Frames from the viewer waiting for their tick (a jitter of up to 200 ms); more: the oldest go.
MAX_QUEUED = 10
#: Frames held before the viewer's sound starts playing (after silence): 80 ms of jitter absorbed, so
#: that a frame a little late is not replaced by silence in the middle of a word.
PRIME = 4


_SILENCE = bytes(FRAME_BYTES)


@dataclass
class MicStats:
    frames: int = 0
    out_of_order: int = 0
    undecodable: int = 0
    overrun: int = 0


class MicrophoneFeed:
    def __init__(self, environment: dict[str, str]) -> None:
        self._env = environment
        self._proc: asyncio.subprocess.Process | None = None
        self._decoder = OpusDecoder()
        self._last_seq: int | None = None
        self.stats = MicStats()
        self._repeats = Repeats(log)
        self._queue: deque[bytes] = deque(maxlen=MAX_QUEUED)
        self._tick: asyncio.TimerHandle | None = None
        self._next = 0.0
        self._primed = False

    async def start(self) -> bool:
        pacat = shutil.which("pacat")
        if pacat is None:
            log.error("pacat is not installed (Debian: apt install pulseaudio-utils): no microphone")
            return False
        argv = [
            pacat,
            "--playback",
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            f"--channels={CHANNELS}",
            "--latency-msec=20",
            "--client-name=wayray-microphone",
            f"--device={MIC_FEED}",
        ]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, env=self._env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL
            )
        except OSError as err:
            log.error("cannot run pacat: %s; no microphone", err.strerror or err)
            return False
        loop = asyncio.get_running_loop()
        self._next = loop.time()
        self._play()
        return True

    def _play(self) -> None:
        """One tick: the next frame from the viewer, else silence; then the next tick, 20 ms on."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        if not self._primed and len(self._queue) >= PRIME:
            self._primed = True
        if self._primed and self._queue:
            pcm = self._queue.popleft()
        else:
            self._primed = False  # ran dry: silence, and wait for PRIME frames again
            pcm = _SILENCE
        transport = proc.stdin.transport
        if transport.get_write_buffer_size() + len(pcm) > MAX_PENDING:
            self.stats.overrun += 1
        else:
            proc.stdin.write(pcm)
        loop = asyncio.get_running_loop()
        self._next = max(self._next + FRAME_US / 1e6, loop.time() - 0.1)  # no catching up after a stall
        self._tick = loop.call_at(self._next, self._play)

    def viewer_changed(self) -> None:
        """Another viewer (or none): what the last one said is not played, its seqs start again."""
        self._queue.clear()
        self._last_seq = None
        self._decoder = OpusDecoder()  # a new Opus stream

    def handle(self, frame: MicFrame) -> None:
        if self._proc is None:
            return
        if self._last_seq is not None and frame.seq <= self._last_seq:
            self.stats.out_of_order += 1
            self._note(f"a microphone frame out of order (seq {frame.seq} after {self._last_seq}); dropped")
            return
        try:
            pcm = self._decoder.decode(frame.data)
        except ValueError as err:
            self.stats.undecodable += 1
            self._note(f"a microphone frame that does not decode ({err}); dropped")
            return
        self._last_seq = frame.seq
        self._queue.append(pcm)
        self.stats.frames += 1

    def _note(self, message: str) -> None:
        self._repeats.note(
            "microphone",
            logging.WARNING,
            "%s",
            message,
            summary="{n} more microphone frames dropped in the last {seconds} s",
        )

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        s = self.stats
        log.info(
            "microphone feed stopped: %d frames from viewers, %d out of order, %d undecodable, %d overruns",
            s.frames,
            s.out_of_order,
            s.undecodable,
            s.overrun,
        )
