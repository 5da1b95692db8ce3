"""The viewer's microphone into the session: MicFrames decoded and written into the FIFO that the source
"WayRay microphone" reads (PulseAudio's pipe source, docs/audio.md §1).

The feed runs as long as the session's sound server does, on a 20 ms clock of its own: each tick writes
the next frame from the viewer, or 20 ms of silence when there is none (no viewer, the microphone not
allowed, the viewer silent). The clock is a thread of its own at the sound's priority
(wayray.audio.realtime), not a timer of the session's loop, which also composites. The pipe source has
no clock: its recorders get what this feed writes, when it writes it, so a program recording the
microphone gets sound (or silence) at the pace of a microphone. A frame late while the viewer speaks
(the frames come through the session's loop, which a busy host holds up) is waited for, up to
WAIT_TICKS, and the delay is caught up after: the program gets it late but whole, never a hole in the
middle of a word.

A MicFrame whose seq does not increase, or whose data does not decode, is dropped and counted: that
costs the viewer's microphone that frame, never the session. Writing never waits: the FIFO holds
``FIFO_BYTES`` (170 ms); when it is full (no program records, so PulseAudio does not read it, or
PulseAudio is held up that long) its oldest sound is thrown away for the newest, so a program that
starts recording gets at most the last 170 ms, never sound from long before.

Nobody recording costs nothing: PulseAudio reads the FIFO only while a program records from the
source, so when the FIFO has stayed full for ``IDLE_AFTER_TICKS`` the feed fills it with silence and
stops ticking, and sleeps until PulseAudio reads from it again (the FIFO's writable end polls
writable). The program that starts recording then gets up to 170 ms of silence at once, the live feed
after it, and no stale sound; what the viewer says meanwhile is dropped, as nobody would hear it. An
idle session's sound server and session process then wake for nothing (the 20 ms clock was most of
a detached session's CPU; issue 15's density).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from wayray.audio import realtime
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
#: Ticks a frame may be late while the viewer speaks before silence is written in its place: the
#: pipe source has no clock, so waiting costs a program only that much delay, where silence would cut a
#: hole into a word (the frames come through the session's loop, which a busy host holds up).
WAIT_TICKS = 5
#: Frames waiting beyond PRIME after such a wait: two are written in a tick until the delay is gone.
CATCH_UP_ABOVE = PRIME + 1
#: Ticks in a row that found the FIFO full before the feed decides nobody records and goes idle (half a
#: second: longer than PulseAudio is held up on a busy host, so a recorder it serves late loses nothing).
IDLE_AFTER_TICKS = 25


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
    #: Ticks that waited for a late frame while the viewer spoke, and ticks that wrote two to catch up.
    waited: int = 0
    caught_up: int = 0
    #: Times the feed went idle (nobody recording), and the viewer's frames it dropped while idle.
    idled: int = 0
    idle_dropped: int = 0


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
        self._primed = False
        self._waited = 0
        #: The tick thread and the session's loop share the queue and the FIFO's read end.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Wakes the tick thread out of its idle wait when the feed stops.
        self._wake_r = self._wake_w = -1
        #: Ticks in a row that found the FIFO full (nobody reading it).
        self._full_ticks = 0
        #: Nobody records: the FIFO is full of silence and the tick thread waits for a reader.
        self.idle = False
        self._thread: threading.Thread | None = None
        #: The scheduling the tick thread got ("realtime", "raised", "normal").
        self.priority = ""

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
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop.clear()
        self._thread = threading.Thread(target=self._ticks, name="microphone feed", daemon=True)
        self._thread.start()
        return True

    def _ticks(self) -> None:
        """The feed's clock (a thread): a tick every 20 ms until stopped."""
        realtime.name_thread("microphone feed")
        self.priority = realtime.raise_priority(what="the session's microphone feed")
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            with self._lock:
                if self._write_fd < 0:
                    return
                self._play()
                idle = self.idle
            if idle:
                if not self._wait_for_a_reader():
                    return
                due = time.monotonic()
                continue
            due = max(due + FRAME_US / 1e6, time.monotonic() - 0.1)  # no catching up after a stall

    def _go_idle(self) -> None:
        """Nobody has read the FIFO for IDLE_AFTER_TICKS: fill it with silence (what a recorder that
        starts gets first; never stale sound) and stop ticking (with the lock held)."""
        self._drain()
        with contextlib.suppress(OSError):
            while True:
                os.write(self._write_fd, _SILENCE)
        self._queue.clear()
        self._primed = False
        self._waited = 0
        self._full_ticks = 0
        self.idle = True
        self.stats.idled += 1
        log.debug("nobody records the microphone: its feed waits for a recorder")

    def _wait_for_a_reader(self) -> bool:
        """Sleep until PulseAudio reads the FIFO (a program records) or the feed stops; False: stop."""
        poller = select.poll()
        poller.register(self._write_fd, select.POLLOUT)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll())
            except InterruptedError:
                continue
            if self._wake_r in ready or self._stop.is_set():
                return False
            if ready.get(self._write_fd, 0) & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                return False
            if ready.get(self._write_fd, 0) & select.POLLOUT:
                with self._lock:
                    self.idle = False
                log.debug("a program records the microphone: its feed ticks again")
                return True
        return False

    def _play(self) -> None:
        """One tick: the next frame from the viewer (two while catching up after a late one); nothing
        while a frame is late mid-speech (up to WAIT_TICKS); else silence. Idle after IDLE_AFTER_TICKS
        ticks that found the FIFO full."""
        self._tick()
        if self._full_ticks >= IDLE_AFTER_TICKS and self._write_fd >= 0:
            self._go_idle()

    def _tick(self) -> None:
        if not self._primed and len(self._queue) >= PRIME:
            self._primed = True
        if self._primed and self._queue:
            self._waited = 0
            self._write(self._queue.popleft())
            if len(self._queue) > CATCH_UP_ABOVE:
                self.stats.caught_up += 1
                self._write(self._queue.popleft())
        elif self._primed and self._waited < WAIT_TICKS:
            self._waited += 1  # late mid-speech: the program gets it late, but whole
            self.stats.waited += 1
        else:
            self._primed = False  # ran dry: silence, and wait for PRIME frames again
            self._waited = 0
            self._write(_SILENCE)

    def _write(self, pcm: bytes) -> None:
        """Into the FIFO whole (a frame is under PIPE_BUF: written at once or not at all); when it is
        full, the oldest sound in it makes room."""
        for attempt in range(2):
            try:
                os.write(self._write_fd, pcm)
                if attempt == 0:
                    self._full_ticks = 0
                return
            except BlockingIOError:
                self.stats.unread += 1
                self._full_ticks += 1
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
        with self._lock:
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
        with self._lock:
            if self.idle:  # nobody records: nobody would hear it
                self.stats.idle_dropped += 1
                return
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
        for fd in (self._write_fd, self._read_fd, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._write_fd = self._read_fd = self._wake_r = self._wake_w = -1

    async def stop(self) -> None:
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(1.0)  # it wakes at once: at most a write of 20 ms into a non-blocking FIFO
        if self._write_fd < 0:
            return
        with self._lock:
            self._close()
        s = self.stats
        log.info(
            "microphone feed stopped: %d frames from viewers, %d out of order, %d undecodable, "
            "%d dropped behind a burst; %d ticks unread, %d waited for a late frame, %d caught up; idle %d "
            "times (nobody recording), %d frames dropped then",
            s.frames,
            s.out_of_order,
            s.undecodable,
            s.late,
            s.unread,
            s.waited,
            s.caught_up,
            s.idled,
            s.idle_dropped,
        )
