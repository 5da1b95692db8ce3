"""The viewer's microphone into the session: MicFrames decoded and written into the FIFO that the source
"WayRay microphone" reads (PulseAudio's pipe source, docs/audio.md §1).

The feed runs as long as the session's sound server does, on a 20 ms clock of its own: each tick writes
the next frame from the viewer, or 20 ms of silence when there is none (no viewer, the microphone not
allowed, a frame late). The pipe source has no clock: its recorders get what this feed writes, when it
writes it, so a program recording the microphone gets sound (or silence) at the pace of a microphone,
and a feed that comes late delivers late, never with a hole in the middle of a word.

A MicFrame whose seq does not increase, or whose data does not decode, is dropped and counted: that
costs the viewer's microphone that frame, never the session. Writing never waits: the FIFO holds
``FIFO_BYTES`` (170 ms); when it is full (no program records, so PulseAudio does not read it, or
PulseAudio is held up that long) its oldest sound is thrown away for the newest, so a program that
starts recording gets at most the last 170 ms, never sound from long before.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from wayray.audio.opus import FRAME_BYTES, FRAME_US, OpusDecoder
from wayray.common.log import Repeats
from wayray.wire import MicFrame

log = logging.getLogger("wayray.audio")

#: What the FIFO holds (32 KiB: 170 ms of 48 kHz stereo s16le): how long PulseAudio may leave it unread
#: before the oldest sound goes, and the most a program that starts recording gets of what came before.
FIFO_BYTES = 32768
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
    #: Viewer frames thrown away because more than MAX_QUEUED waited (they came in a burst).
    late: int = 0
    #: Ticks whose sound pushed older sound out of the FIFO (nobody recording, or PulseAudio held up).
    unread: int = 0


class MicrophoneFeed:
    def __init__(self, fifo: Path) -> None:
        """``fifo``: the pipe source's FIFO (SoundServer.microphone_fifo)."""
        self.fifo = fifo
        self._write_fd = -1
        self._read_fd = -1  # to throw away the oldest sound when nobody reads it
        self._decoder = OpusDecoder()
        self._last_seq: int | None = None
        self.stats = MicStats()
        self._repeats = Repeats(log)
        self._queue: deque[bytes] = deque()
        self._tick: asyncio.TimerHandle | None = None
        self._next = 0.0
        self._primed = False

    @property
    def running(self) -> bool:
        return self._write_fd >= 0

    async def start(self) -> bool:
        try:
            # PulseAudio holds the FIFO open for reading and writing: these opens never wait.
            self._write_fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._read_fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            log.error(
                "cannot open the microphone's FIFO %s: %s; no microphone", self.fifo, err.strerror or err
            )
            self._close()
            return False
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux; elsewhere the system's size
        if set_size is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._write_fd, set_size, FIFO_BYTES)
        loop = asyncio.get_running_loop()
        self._next = loop.time()
        self._play()
        return True

    def _play(self) -> None:
        """One tick: the next frame from the viewer, else silence; then the next tick, 20 ms on."""
        if self._write_fd < 0:
            return
        if not self._primed and len(self._queue) >= PRIME:
            self._primed = True
        if self._primed and self._queue:
            pcm = self._queue.popleft()
        else:
            self._primed = False  # ran dry: silence, and wait for PRIME frames again
            pcm = _SILENCE
        self._write(pcm)
        loop = asyncio.get_running_loop()
        self._next = max(self._next + FRAME_US / 1e6, loop.time() - 0.1)  # no catching up after a stall
        self._tick = loop.call_at(self._next, self._play)

    def _write(self, pcm: bytes) -> None:
        """Into the FIFO whole (a frame is under PIPE_BUF: written at once or not at all); when it is
        full, the oldest sound in it makes room."""
        for _attempt in range(2):
            try:
                os.write(self._write_fd, pcm)
                return
            except BlockingIOError:
                self.stats.unread += 1
                with contextlib.suppress(BlockingIOError):
                    os.read(self._read_fd, len(pcm))  # a multiple of a sample frame: stays aligned
            except OSError as err:
                log.error("the microphone's FIFO failed (%s); the source records nothing now", err)
                self._close()
                return

    def _drain(self) -> None:
        """Throw away what waits in the FIFO unread."""
        with contextlib.suppress(OSError):
            while os.read(self._read_fd, FIFO_BYTES):
                pass

    def viewer_changed(self) -> None:
        """Another viewer (or none): what the last one said is not played, its seqs start again."""
        self._queue.clear()
        if self._read_fd >= 0:
            self._drain()
        self._last_seq = None
        self._decoder = OpusDecoder()  # a new Opus stream

    def handle(self, frame: MicFrame) -> None:
        if self._write_fd < 0:
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
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.stats.late += 1
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

    def _close(self) -> None:
        for fd in (self._write_fd, self._read_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._write_fd = self._read_fd = -1

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        if self._write_fd < 0:
            return
        self._close()
        s = self.stats
        log.info(
            "microphone feed stopped: %d frames from viewers, %d out of order, %d undecodable, "
            "%d dropped behind a burst; %d ticks unread",
            s.frames,
            s.out_of_order,
            s.undecodable,
            s.late,
            s.unread,
        )
