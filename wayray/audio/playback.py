"""The session's sound through the kiosk's own sound server: decoded frames into an adaptive jitter
buffer, and from it into a playback stream of libpulse's (wayray/audio/pulse.py) at the pace the sink
takes sound.

There is no timer of ours: the sink asks for sound (libpulse's write request, every ``REQUEST_MS``) and
is given the next slots of the jitter buffer, cut to what it asked, so the sink's demand paces playback
and nothing piles up between the jitter buffer and the sink. Each slot of 20 ms is a ``seq`` of the
session's stream (frames count on through the session's silences, which are not sent): a slot whose
frame is here plays it; one whose frame is not plays silence (the session was silent, or the frame is
late).

**The sink's buffer adapts** (the stream's target length): what covers this process being held up. It
starts at ``START_LATENCY_MS`` (40 ms), grows by half at once, while it plays, when the sink ran dry
(libpulse's underflow), up to ``MAX_LATENCY_MS``, and comes down by a third after each calm while
(``CALM_AFTER`` s of sound without an underrun), to ``MIN_LATENCY_MS``, in a silence.

**Adaptive.** The buffer starts ``START_FRAMES`` (40 ms) behind the first frame; a frame that comes
after its slot was played is late. If only silence played since its slot (a sound's start came late,
or a frame went missing), the timeline moves back to it: it plays next, whole, and the buffer is as
much longer as it was late (up to ``MAX_FRAMES``, 200 ms). Otherwise (a later frame has played) it is
dropped, and the buffer grows by one frame by playing one slot of silence without moving on. After
``SHRINK_AFTER`` s without a late frame it shrinks by one frame again, skipping a slot that holds no
sound.
**Drift** between the session's sample clock and the kiosk's sink shows as a depth that creeps: when
frames keep arriving more than two frames deeper than the target, one silent slot is skipped.

A new stream (AudioStart) starts a new buffer; the end of the stream or of the connection ends the
sink's stream at once (the sound server drops what it held), so the old kiosk goes quiet when the
badge moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass

from wayray.audio import pulse
from wayray.audio.opus import CHANNELS, FRAME_BYTES, FRAME_US, RATE

log = logging.getLogger("wayray.audio")

START_FRAMES = 2
MIN_FRAMES = 2
MAX_FRAMES = 10
#: Seconds without a late frame before the buffer shrinks by one frame.
SHRINK_AFTER = 10.0
#: The stream's buffer at the kiosk's sink (its target length, with the sink's own latency: what
#: PulseAudio calls ``tlength`` with ADJUST_LATENCY): how late this process may come to the sink's
#: request before it plays a gap. It adapts while sound plays: it starts at START_LATENCY_MS; an
#: underrun (the sink ran dry) makes it half as long again at once, up to MAX_LATENCY_MS; after
#: CALM_AFTER s of sound without an underrun it comes down by a third, to MIN_LATENCY_MS, in the next
#: silence (docs/audio.md §3). So a kiosk starts short and pays a longer delay only when its machine
#: showed it needs it.
START_LATENCY_MS = 40
MIN_LATENCY_MS = 30
MAX_LATENCY_MS = 240
CALM_AFTER = 15.0
#: How much the sink asks for at a time (its ``minreq``): the writer's wake-ups.
REQUEST_MS = 10

_SILENCE = bytes(FRAME_BYTES)


@dataclass
class PlaybackStats:
    #: Slots played with a frame of sound, and with silence.
    played: int = 0
    silent: int = 0
    #: Frames that came after their slot had been played (each grew the buffer: played late, or
    #: dropped when a later frame had played already).
    late: int = 0
    #: Slots skipped to shrink the buffer or to follow a faster sender clock.
    skipped: int = 0
    #: Slots of silence added to grow the buffer.
    held: int = 0
    #: Times the sink ran out of sound before it was given more (libpulse's underflow).
    underruns: int = 0
    target_frames: int = START_FRAMES
    #: The stream's buffer at the sink now (ms), the most it has been, and how often it changed.
    sink_latency_ms: int = START_LATENCY_MS
    sink_latency_ms_max: int = START_LATENCY_MS
    changes: int = 0
    #: How far ahead of the slot being played frames arrived, in frames (the last ones).
    depths: list[int] | None = None


class JitterBuffer:
    """Frames by ``seq``; :meth:`next` gives the next slot's sound. Pure bookkeeping (no I/O, no clock
    but the one passed in), so that its rules can be tested on their own."""

    def __init__(self, stats: PlaybackStats | None = None) -> None:
        self.stats = stats or PlaybackStats()
        self.target = START_FRAMES
        self._frames: dict[int, bytes] = {}
        self._play: int | None = None
        self._hold = 0
        self._skip = 0
        self._last_late = 0.0
        self._deep_since: float | None = None
        self._last_sound = -1  # the seq of the last slot played with sound

    @property
    def depth(self) -> int:
        """Frames waiting (the newest one's seq minus the slot to play), 0 when empty."""
        if self._play is None or not self._frames:
            return 0
        return max(self._frames) + 1 - self._play

    def put(self, seq: int, pcm: bytes, now: float) -> None:
        if self._play is None:
            self._play = seq - self.target
            self._last_late = now
        ahead = seq - self._play
        if ahead < 0:
            self.stats.late += 1
            self._last_late = now
            if seq > self._last_sound and self.target - ahead <= MAX_FRAMES:
                # Only silence has played since this frame's slot (the start of a sound, or a frame
                # missing): the timeline moves back to it. It plays next and the frames after it in
                # their turn, whole, that much later: the buffer grows by how late it came, at once,
                # where dropping each frame of a late burst cut the start of a sound.
                self.target -= ahead
                self._play = seq
                self._skip = 0
                ahead = 0
            else:  # a later frame has played already: this one is dropped
                if self.target < MAX_FRAMES:
                    self.target += 1
                    self._hold += 1
                return
        if ahead > 4 * MAX_FRAMES:  # far ahead (a sender clock much faster, or a jump): start again here
            self._frames.clear()
            self._play = seq - self.target
            ahead = self.target
        self._frames[seq] = pcm
        # Drift: frames that keep arriving well beyond the target mean the sender runs faster.
        if ahead > self.target + 2:
            if self._deep_since is None:
                self._deep_since = now
            elif now - self._deep_since > 2.0:
                self._skip += 1
                self._deep_since = None
        else:
            self._deep_since = None
        if now - self._last_late > SHRINK_AFTER and self.target > MIN_FRAMES:
            self.target -= 1
            self._skip += 1
            self._last_late = now
        self.stats.target_frames = self.target
        depths = self.stats.depths
        if depths is not None:
            depths.append(ahead)
            del depths[:-10_000]

    def quiet(self) -> bool:
        """Nothing waits to be played: the session is silent now (or has not begun)."""
        return not self._frames and self._hold == 0

    def anchor_again(self) -> None:
        """While quiet: the next frame to come starts the timeline again, ``target`` frames behind it,
        as at the stream's start (what the sink played down while its buffer was made shorter is not
        owed)."""
        if self.quiet():
            self._play = None
            self._skip = 0
            self._deep_since = None

    def next(self) -> bytes:
        """The next 20 ms to play."""
        if self._play is None:
            return _SILENCE
        if self._hold > 0:
            self._hold -= 1
            self.stats.held += 1
            return _SILENCE
        while self._skip > 0 and self._play not in self._frames:
            # a slot without sound, skipped: the buffer is one frame shorter, and nobody hears it
            self._play += 1
            self._skip -= 1
            self.stats.skipped += 1
        pcm = self._frames.pop(self._play, None)
        self._play += 1
        if pcm is None:
            self.stats.silent += 1
            return _SILENCE
        self._last_sound = self._play - 1
        self.stats.played += 1
        return pcm


class Player:
    """Plays one stream at a time to the kiosk's default sink (or ``sink``), through a libpulse stream
    (wayray/audio/pulse.py) whose buffer adapts while it plays."""

    def __init__(self, sink: str | None = None) -> None:
        self.sink = sink
        self.stats = PlaybackStats(depths=[])
        self._buffer = JitterBuffer(self.stats)
        #: put() runs in the event loop, the sink's requests in libpulse's thread.
        self._lock = threading.Lock()
        self._stream: pulse.PulseStream | None = None
        self._opening: set[asyncio.Future[None]] = set()
        self._failed = False
        #: The stream's buffer at the sink (ms): kept across streams, as the machine it measures is.
        self.latency_ms = START_LATENCY_MS
        self._carry = b""  # what of the last frame the sink has not asked for yet
        self._calm_since = time.monotonic()
        self._calm_from = 0  # stats.played when the calm began: calm counts while sound plays
        self._sound_written = 0.0  # when the sink was last given a frame of sound (monotonic)

    @staticmethod
    def available() -> bool:
        return pulse.available()

    @property
    def failed(self) -> bool:
        """The stream could not play (no sound server, no libpulse), or it went away: said in the log."""
        return self._failed or (self._stream is not None and self._stream.failed)

    def start(self) -> None:
        """A new stream: a new buffer, and the sink's stream opened (again) if it is not open."""
        with self._lock:
            self._buffer = JitterBuffer(self.stats)
            self._carry = b""
        if self._stream is not None and not self._stream.failed:
            return
        if self._stream is not None:
            self._close(self._stream)
        self._failed = False
        stream = pulse.PulseStream(
            rate=RATE, channels=CHANNELS, target_ms=self.latency_ms, request_ms=REQUEST_MS, sink=self.sink
        )
        stream.on_request = self._request
        stream.on_underflow = self._underflow
        self._stream = stream
        self._calm_since = time.monotonic()
        self._calm_from = self.stats.played
        opening = asyncio.ensure_future(asyncio.to_thread(self._open, stream))
        self._opening.add(opening)
        opening.add_done_callback(self._opening.discard)

    def _open(self, stream: pulse.PulseStream) -> None:
        """In a worker thread: the stream, or the reason it cannot play, said once in the log."""
        try:
            stream.open()
        except pulse.PulseError as err:
            stream.close()
            if stream is self._stream:
                self._note_failure(str(err))
            return
        if stream is not self._stream:  # stopped while it opened
            stream.close()
            return
        log.info(
            "playing the session's sound on %s (the sink's buffer: %d ms)",
            self.sink or "this machine's default sink", self.latency_ms,
        )  # fmt: skip

    def put(self, seq: int, pcm: bytes) -> None:
        with self._lock:
            target = self._buffer.target
            self._buffer.put(seq, pcm, time.monotonic())
            grown = self._buffer.target > target
        if grown:
            log.info(
                "a frame of sound came after its turn to play: the jitter buffer grew to %d ms "
                "(%d late frames so far)", self._buffer.target * FRAME_US // 1000, self.stats.late,
            )  # fmt: skip

    # -- in libpulse's thread, its lock held --

    def _request(self, nbytes: int) -> None:
        """The sink wants ``nbytes`` more: the next slots of the jitter buffer, cut to that length."""
        stream = self._stream
        if stream is None:
            return
        with self._lock:
            self._maybe_shorter(stream)
            out = self._carry
            while len(out) < nbytes:
                pcm = self._buffer.next()
                if pcm is not _SILENCE:
                    self._sound_written = time.monotonic()
                out += pcm
            self._carry = out[nbytes:]
        stream.write(out[:nbytes])

    def _underflow(self) -> None:
        """The sink ran dry: a gap was heard. The buffer grows by half, at once, while it plays."""
        stream = self._stream
        self.stats.underruns += 1
        self._calm_since = time.monotonic()
        self._calm_from = self.stats.played
        if stream is None or self.latency_ms >= MAX_LATENCY_MS:
            return
        self._set_latency(stream, min(MAX_LATENCY_MS, (self.latency_ms * 3 // 2 + 9) // 10 * 10))

    def _maybe_shorter(self, stream: pulse.PulseStream) -> None:
        """A third off the sink's buffer after a calm while: one in which CALM_AFTER s of sound played
        without an underrun (silence alone proves nothing: the frames that come with sound are what
        keeps this process and the machine busy), taken when the session is silent and what the sink
        was given has played out. (Taken during sound, the sink would ask for nothing while its longer
        buffer plays down, and the frames would wait in the jitter buffer instead: no shorter.)"""
        now = time.monotonic()
        if (
            now - self._calm_since > CALM_AFTER
            and (self.stats.played - self._calm_from) * FRAME_US / 1e6 >= CALM_AFTER
            and self.latency_ms > MIN_LATENCY_MS
            and self._buffer.quiet()
            and now - self._sound_written > (self.latency_ms + FRAME_US / 1000) / 1000
        ):
            self._set_latency(stream, max(MIN_LATENCY_MS, self.latency_ms * 2 // 3 // 10 * 10))
            self._calm_since = now
            self._calm_from = self.stats.played
            # the sink plays its longer buffer of silence down first: the next sound starts the
            # timeline again, not that much later
            self._buffer.anchor_again()

    def _set_latency(self, stream: pulse.PulseStream, latency: int) -> None:
        log.info(
            "the sound's buffer at the sink: %d ms (was %d ms; %d underruns so far)",
            latency, self.latency_ms, self.stats.underruns,
        )  # fmt: skip
        self.latency_ms = latency
        stream.set_target_ms(latency)
        self.stats.changes += 1
        self.stats.sink_latency_ms = latency
        self.stats.sink_latency_ms_max = max(self.stats.sink_latency_ms_max, latency)

    # --

    def _note_failure(self, why: str) -> None:
        if not self._failed:
            log.error("the session's sound cannot play: %s", why)
            self._failed = True

    def stop(self) -> None:
        """Quiet at once: the stream is ended, and the sound server drops what it still held for it."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._close(stream)

    def _close(self, stream: pulse.PulseStream) -> None:
        if self._stream is stream:
            self._stream = None
        stream.close()  # while it opens: the opening thread closes it when it is done

    async def wait_closed(self) -> None:
        """Until every stream being opened is done (before the event loop closes); a sound server that
        never answers is not waited for longer than a few seconds."""
        if self._opening:
            await asyncio.wait(list(self._opening), timeout=5.0)

    def to_json(self) -> dict[str, object]:
        s = self.stats
        with self._lock:
            depths = sorted(s.depths or [])
        return {
            "played": s.played,
            "silent": s.silent,
            "late": s.late,
            "skipped": s.skipped,
            "held": s.held,
            "underruns": s.underruns,
            "buffer_ms": s.target_frames * FRAME_US // 1000,
            "depth_ms_median": depths[len(depths) // 2] * FRAME_US // 1000 if depths else None,
            "sink_latency_ms": s.sink_latency_ms,
            "sink_latency_ms_max": s.sink_latency_ms_max,
            "sink_changes": s.changes,
        }


async def sound_server_problem(timeout: float = 10.0) -> str | None:
    """None when this machine's sound server answers (``pactl info``, as libpulse would find it), else
    what is wrong, in words for the log."""
    pactl = shutil.which("pactl")
    if pactl is None:
        return "pactl is not installed (Debian: apt install pulseaudio-utils)"
    if not pulse.available():
        return "libpulse is not installed (Debian: apt install libpulse0)"
    try:
        proc = await asyncio.create_subprocess_exec(
            pactl, "info",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except OSError as err:
        return f"cannot run pactl: {err.strerror or err}"
    try:
        _, err_text = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return f"the sound server did not answer within {timeout:g} s"
    if proc.returncode == 0:
        return None
    where = os.environ.get("PULSE_SERVER") or "the user's default ($XDG_RUNTIME_DIR/pulse/native)"
    said = err_text.decode(errors="replace").strip().splitlines()
    return f"{said[-1] if said else f'pactl info failed ({proc.returncode})'} (server: {where})"
