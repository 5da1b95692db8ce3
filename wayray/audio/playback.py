"""The session's sound through the kiosk's own sound server: decoded frames into an adaptive jitter
buffer, and from it into ``pacat`` (PulseAudio's own tool) at the pace the sink takes sound.

There is no timer of ours: the writer gives ``pacat`` the next 20 ms as soon as the pipe to it has room,
and the pipe is made small (one page), so the sink's demand paces playback and nothing piles up between
the jitter buffer and the sink. Each slot of 20 ms is a ``seq`` of the session's stream (frames count on
through the session's silences, which are not sent): a slot whose frame is here plays it; one whose
frame is not plays silence (the session was silent, or the frame is late).

**The sink's buffer adapts** (PulseAudio's target length for pacat, ``--latency-msec``): what covers
this process or pacat being held up. It starts at ``START_LATENCY_MS`` (100 ms, what a loaded machine
needed), comes down by a third after each calm while (``CALM_AFTER`` s without an underrun), to
``MIN_LATENCY_MS`` (30 ms), and grows by half after an underrun (pacat says "Stream underrun"), up to
``MAX_LATENCY_MS``. PulseAudio fixes a stream's buffer when it opens, so a change is a new pacat,
started while the session is silent (nobody hears the switch) — or at once when the sound keeps
breaking up. A quiet kiosk comes to play with little delay; a loaded one keeps the delay it needs.

**Adaptive.** The buffer starts ``START_FRAMES`` (40 ms) behind the first frame; a frame that comes
after its slot was played is late. If only silence played since its slot (a sound's start came late,
or a frame went missing), the timeline moves back to it: it plays next, whole, and the buffer is as
much longer as it was late (up to ``MAX_FRAMES``, 200 ms). Otherwise (a later frame has played) it is
dropped, and the buffer grows by one frame by playing one slot of silence without moving on. After
``SHRINK_AFTER`` s without a late frame it shrinks by one frame again, skipping a slot that holds no
sound.
**Drift** between the session's sample clock and the kiosk's sink shows as a depth that creeps: when
frames keep arriving more than two frames deeper than the target, one silent slot is skipped.

A new stream (AudioStart) starts a new buffer; the end of the stream or of the connection kills
``pacat`` at once, so the old kiosk goes quiet when the badge moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import time
from dataclasses import dataclass

from wayray.audio.asking import in_thread
from wayray.audio.opus import CHANNELS, FRAME_BYTES, FRAME_US, RATE

log = logging.getLogger("wayray.audio")

START_FRAMES = 2
MIN_FRAMES = 2
MAX_FRAMES = 10
#: Seconds without a late frame before the buffer shrinks by one frame.
SHRINK_AFTER = 10.0
#: What PulseAudio buffers for pacat (its target length): how late pacat, or this process (whose loop
#: also serves the connection and the picture), may come before the sink plays a gap. It adapts: it
#: starts at START_LATENCY_MS, what a loaded 2-core machine needed (at a load average of 14, 30 ms left
#: a gap in most runs of the chirp test, 60 ms in some); after CALM_AFTER s without an underrun it comes
#: down by a third, to MIN_LATENCY_MS; an underrun (the sink ran dry) makes it half as long again, up
#: to MAX_LATENCY_MS. A change takes a new pacat (PulseAudio sets a stream's buffer when it opens),
#: started while the session is silent, so nobody hears it (docs/audio.md §3). So a kiosk starts as
#: safe as before and earns a short delay by being calm; a loaded one keeps what it needs.
START_LATENCY_MS = 100
MIN_LATENCY_MS = 30
MAX_LATENCY_MS = 240
CALM_AFTER = 15.0
#: Underruns while a longer buffer waits for silence before it is taken at once (the sound already
#: breaks up; the few ms of it the restart drops cost less than going on so).
UNDERRUNS_BEFORE_RESTART = 3
#: Arrivals whose depth in the jitter buffer make the delay reported to the session (half a second).
DELAY_DEPTHS = 25
#: How often what the sound server holds of pacat's stream is read (seconds), for the delay reported.
MEASURE_EVERY = 1.0
#: How long the sound server may take to answer that (seconds): a server that hangs is not waited for.
ASK_TIMEOUT = 2.0
#: The pipe to pacat: one page, so that what waits there is at most about 20 ms.
PIPE_BYTES = 4096

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
    #: Times the sink ran out of sound before pacat gave it more (pacat says "Stream underrun").
    underruns: int = 0
    target_frames: int = START_FRAMES
    #: PulseAudio's buffer for pacat now (ms), the most it has been, and how often pacat was started
    #: again to change it.
    sink_latency_ms: int = START_LATENCY_MS
    sink_latency_ms_max: int = START_LATENCY_MS
    restarts: int = 0
    #: How far ahead of the slot being played frames arrived, in frames (the last ones).
    depths: list[int] | None = None
    #: What the sound server holds of pacat's stream (its buffer and the sink's latency, µs), as last
    #: read from it; None before the first reading of this pacat.
    held_us: int | None = None
    #: The delay last reported for lip sync (µs): receiving a frame → hearing it.
    delay_us: int | None = None


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
        as at the stream's start (what the sink was not fed while pacat was replaced is not owed)."""
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
    """Plays one stream at a time through ``pacat`` to the kiosk's default sink (or ``sink``)."""

    def __init__(self, sink: str | None = None) -> None:
        self.sink = sink
        self.stats = PlaybackStats(depths=[])
        self._buffer = JitterBuffer(self.stats)
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._measurer: asyncio.Task[None] | None = None
        self._failed = False
        #: PulseAudio's buffer for pacat (ms): kept across streams, as the machine it measures is.
        self.latency_ms = START_LATENCY_MS
        self._underruns_now = 0
        self._calm_since = time.monotonic()
        self._calm_from = 0  # stats.played when the calm began: calm counts while sound plays
        self._sound_written = 0.0  # when the writer last gave pacat a frame of sound (monotonic)

    @staticmethod
    def available() -> bool:
        return shutil.which("pacat") is not None

    def delay_us(self) -> int | None:
        """How long a frame received now takes to be heard (µs), or None while nothing plays: the
        slots before it in the jitter buffer (the median of the last :data:`DELAY_DEPTHS` arrivals, so
        that one burst does not move it), half a frame in the pipe to pacat on average (the writer is
        at most one frame ahead of pacat), and what the sound server holds of pacat's stream: read
        from it (its buffer and the sink's latency, every :data:`MEASURE_EVERY` s), the buffer asked
        for until then. What the session's av-sync delays the sounding program's pictures by
        (docs/audio.md §8)."""
        depths = self.stats.depths
        if self._proc is None or self._failed or not depths:
            return None
        recent = sorted(depths[-DELAY_DEPTHS:])
        ahead = recent[len(recent) // 2]
        held = self.stats.held_us if self.stats.held_us is not None else self.latency_ms * 1000
        delay = ahead * FRAME_US + FRAME_US // 2 + held
        self.stats.delay_us = delay
        return delay

    async def _measure(self, proc: asyncio.subprocess.Process) -> None:
        """While ``proc`` plays: what the sound server holds of its stream, every MEASURE_EVERY s."""
        while proc.returncode is None and proc is self._proc:
            await asyncio.sleep(MEASURE_EVERY)
            try:
                held = await in_thread(
                    lambda: stream_held_us(proc.pid), timeout=ASK_TIMEOUT, name="sink latency"
                )
            except Exception as err:  # no answer now: the buffer asked for stands in
                log.debug("cannot read the sink's latency for pacat: %s", err)
                continue
            if proc is self._proc:
                self.stats.held_us = held

    @property
    def failed(self) -> bool:
        """pacat could not play (no sound server, no pacat): said once in the log."""
        return self._failed

    def start(self) -> None:
        """A new stream: a new buffer, and pacat started (again) if it is not running."""
        self._buffer = JitterBuffer(self.stats)
        if self._task is None or self._task.done():
            self._failed = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audio playback")

    def put(self, seq: int, pcm: bytes) -> None:
        target = self._buffer.target
        self._buffer.put(seq, pcm, time.monotonic())
        if self._buffer.target > target:
            log.info(
                "a frame of sound came after its turn to play: the jitter buffer grew to %d ms "
                "(%d late frames so far)", self._buffer.target * FRAME_US // 1000, self.stats.late,
            )  # fmt: skip

    async def _run(self) -> None:
        pacat = shutil.which("pacat")
        if pacat is None:
            self._note_failure("pacat is not installed (Debian: apt install pulseaudio-utils)")
            return
        first = True
        while True:
            proc = await self._spawn(pacat)
            if proc is None:
                return
            if not first:
                self._buffer.anchor_again()  # the new pacat's start did not add to the delay
            if first:
                log.info("playing the session's sound on %s", self.sink or "this machine's default sink")
                first = False
            try:
                latency = await self._feed(proc)
            except (BrokenPipeError, ConnectionResetError):
                code = await proc.wait()
                self._note_failure(f"pacat ended (status {code}): is a sound server running here?")
                return
            finally:
                self._kill(proc)
            log.info(
                "the sound's buffer at the sink: %d ms (was %d ms; %d underruns so far)",
                latency, self.latency_ms, self.stats.underruns,
            )  # fmt: skip
            self.latency_ms = latency
            self.stats.restarts += 1
            self.stats.sink_latency_ms = latency
            self.stats.sink_latency_ms_max = max(self.stats.sink_latency_ms_max, latency)

    async def _spawn(self, pacat: str) -> asyncio.subprocess.Process | None:
        argv = [
            pacat,
            "--playback",
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            f"--channels={CHANNELS}",
            f"--latency-msec={self.latency_ms}",
            "--client-name=wrclient",
            "--verbose",  # it says when the sink ran dry: counted, and the buffer grows
            "--stream-name=the session's sound",
        ]
        if self.sink:
            argv.append(f"--device={self.sink}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as err:
            self._note_failure(f"cannot run pacat: {err.strerror or err}")
            return None
        self._proc = proc
        self.stats.held_us = None  # this pacat's stream is read anew
        self._measurer = asyncio.get_running_loop().create_task(self._measure(proc), name="sink latency")
        self._underruns_now = 0
        self._calm_since = time.monotonic()
        self._calm_from = 0  # stats.played when the calm began: calm counts while sound plays
        self._sound_written = 0.0  # when the writer last gave pacat a frame of sound (monotonic)
        assert proc.stdin is not None and proc.stderr is not None
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch(proc, proc.stderr), name="pacat messages"
        )
        transport = proc.stdin.transport
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        pipe = transport.get_extra_info("pipe")
        if set_size is not None and pipe is not None:
            # (ValueError: a player that failed at once, its pipe closed already: the writer finds out)
            with contextlib.suppress(OSError, ValueError):
                fcntl.fcntl(pipe.fileno(), set_size, PIPE_BYTES)
        transport.set_write_buffer_limits(0)  # drain() returns once all went into the pipe
        return proc

    async def _feed(self, proc: asyncio.subprocess.Process) -> int:
        """Give pacat the next 20 ms whenever the pipe has room, until its buffer should change: then
        the new length (ms). Raises BrokenPipeError when pacat ended."""
        assert proc.stdin is not None
        while True:
            latency = self._wanted_latency()
            if latency != self.latency_ms:
                return latency
            pcm = self._buffer.next()
            if pcm is not _SILENCE:
                self._sound_written = time.monotonic()
            proc.stdin.write(pcm)
            await proc.stdin.drain()

    def _wanted_latency(self) -> int:
        """The sink's buffer as it should be now: longer after underruns (taken in the next silence,
        or at once if the sound keeps breaking up), a step shorter after a calm while (in silence): one
        in which CALM_AFTER s of sound played without an underrun. Silence alone proves nothing: the
        frames that come with sound are what keeps this process and the machine busy."""
        now = time.monotonic()
        if self._underruns_now and self.latency_ms < MAX_LATENCY_MS:
            if self._played_out(now) or self._underruns_now >= UNDERRUNS_BEFORE_RESTART:
                return min(MAX_LATENCY_MS, (self.latency_ms * 3 // 2 + 9) // 10 * 10)
        elif (
            now - self._calm_since > CALM_AFTER
            and (self.stats.played - self._calm_from) * FRAME_US / 1e6 >= CALM_AFTER
            and self.latency_ms > MIN_LATENCY_MS
            and self._played_out(now)
        ):
            return max(MIN_LATENCY_MS, self.latency_ms * 2 // 3 // 10 * 10)
        return self.latency_ms

    def _played_out(self, now: float) -> bool:
        """The session is silent and the sink has played all the sound it was given: a new pacat now
        drops only silence. (The jitter buffer empty is not enough: PulseAudio still holds up to the
        sink's buffer of sound for the old pacat, and killing it cut a sound's end.)"""
        held = (self.latency_ms + PIPE_BYTES * 1000 // (RATE * CHANNELS * 2)) / 1000
        return self._buffer.quiet() and now - self._sound_written > held + FRAME_US / 1e6

    async def _watch(self, proc: asyncio.subprocess.Process, stderr: asyncio.StreamReader) -> None:
        """pacat's messages: underruns counted, failures logged (the rest is its chatter). Those of a
        pacat being stopped are not counted: its stream was ended, not starved."""
        async for line in stderr:
            text = line.decode(errors="replace").strip()
            if proc is not self._proc or proc.pid in _killed:
                continue
            if "underrun" in text.lower():
                self.stats.underruns += 1
                self._underruns_now += 1
                self._calm_since = time.monotonic()
                self._calm_from = self.stats.played
            elif text.startswith(("Failed", "Connection failure", "pa_")):
                log.warning("pacat: %s", text)

    def _note_failure(self, why: str) -> None:
        if not self._failed:
            log.error("the session's sound cannot play: %s", why)
            self._failed = True

    def stop(self) -> None:
        """Quiet at once: pacat is killed (PulseAudio drops what it still held for it)."""
        task, self._task = self._task, None
        proc, self._proc = self._proc, None
        if task is not None:
            task.cancel()
        if proc is not None:
            self._kill(proc)

    async def wait_closed(self) -> None:
        """Until every pacat stopped is reaped (before the event loop closes)."""
        await asyncio.gather(*list(_reaping), return_exceptions=True)

    def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """Kill ``proc`` (once: stop() and the writer's end may both ask) and reap it."""
        watcher, self._watcher = self._watcher, None
        measurer, self._measurer = self._measurer, None
        if measurer is not None:
            measurer.cancel()
        if proc.pid in _killed:
            return
        _killed.add(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # before its input ends: it must not play out (and run dry) first
        if proc.stdin is not None and not proc.stdin.transport.is_closing():
            # nobody waits for what the pipe held (a player that failed was killed and reaped
            # already, and its pipe closed: stop() then comes here a second time)
            proc.stdin.transport.abort()
        reap = asyncio.get_running_loop().create_task(_reap(proc, watcher), name="reap pacat")
        _reaping.add(reap)
        reap.add_done_callback(_reaping.discard)

    def to_json(self) -> dict[str, object]:
        s = self.stats
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
            "restarts": s.restarts,
            # receiving a frame → hearing it, as reported to the session for lip sync (AudioDelay)
            "delay_ms": None if s.delay_us is None else s.delay_us / 1000,
            "held_ms": None if s.held_us is None else s.held_us / 1000,
        }


_reaping: set[asyncio.Task[None]] = set()
_killed: set[int] = set()


def stream_held_us(pid: int) -> int | None:
    """What this machine's sound server holds of the stream of the player ``pid`` (pacat): the stream's
    buffer and the sink's latency, µs; None when it has no stream (yet). Blocking: run in a thread."""
    import pulsectl

    # (No connect timeout of pulsectl's: it polls for the whole timeout even once connected. The caller
    # gives up on a server that hangs: wayray.audio.asking.)
    with pulsectl.Pulse("wrclient-latency") as pulse:
        for stream in pulse.sink_input_list():
            if stream.proplist.get("application.process.id") == str(pid):
                return int(stream.buffer_usec) + int(stream.sink_usec)
    return None


async def _reap(proc: asyncio.subprocess.Process, watcher: asyncio.Task[None] | None) -> None:
    """Wait for a killed pacat, and for its messages to end (its pipe closed too)."""
    try:
        await proc.wait()
        if watcher is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(watcher, 10)
    finally:
        _killed.discard(proc.pid)


async def sound_server_problem(timeout: float = 10.0) -> str | None:
    """None when this machine's sound server answers (``pactl info``, as pacat would find it), else
    what is wrong, in words for the log."""
    pactl = shutil.which("pactl")
    if pactl is None or shutil.which("pacat") is None:
        return "pactl and pacat are not installed (Debian: apt install pulseaudio-utils)"
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
    except asyncio.CancelledError:  # the kiosk stops while its sound server hangs: no pactl left behind
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if proc.returncode == 0:
        return None
    where = os.environ.get("PULSE_SERVER") or "the user's default ($XDG_RUNTIME_DIR/pulse/native)"
    said = err_text.decode(errors="replace").strip().splitlines()
    return f"{said[-1] if said else f'pactl info failed ({proc.returncode})'} (server: {where})"
