"""Lip sync (the ``av-sync`` capability, docs/audio.md §8): the pictures of the programs that are
sounding are shown as late as their sound is heard at the viewer, so that the two stay together.

The sound reaches a kiosk well after the picture (its capture, the kiosk's jitter buffer and sink
buffer: docs/benchmarks.md), and cannot be made to come much sooner. So, as xpra's av-sync does, the
session holds back the *pixels* of the windows whose programs play sound, and only theirs, by

    the viewer's delay (AudioDelay: its jitter buffer and sink) + the capture's − the picture's own path

and only while sound plays: typing into any other window keeps its latency, and a program that stops
sounding is shown at once again. Which windows: the session's sound server's sink inputs that are
playing (not corked), by their ``application.process.id``, each matched to the nearest process up its
parent chain that owns a window (a player's sound thread or its ``pacat`` child, a browser's audio
process: the window is its parent's).

The compositor does the holding back (``SessionCompositor.set_av_sync``); this decides for which
windows and by how much, checking the sink inputs every :data:`CHECK_EVERY` s while sound is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from wayray.audio.asking import in_thread
from wayray.audio.capture import CAPTURE_LATENCY_MS
from wayray.audio.opus import FRAME_US

log = logging.getLogger("wayray.audio")

#: How often the sink inputs are listed while the session sends sound (seconds).
CHECK_EVERY = 0.5
#: Sound sent within this long (seconds) counts as sounding now: a pause shorter than this (between
#: words, between clips) does not make the picture jump ahead and back.
SOUNDING_FOR = 1.0
#: The most the pictures are held back (ms), whatever a viewer reports: a wrong report costs only lip
#: sync, never seconds of a frozen window.
MAX_DELAY_MS = 500.0
#: A frame waits in the session before it is sent: PulseAudio's capture fragment, and the frame's own
#: length (its first sample waits for the rest of it). The viewer's delay is counted from a frame's
#: arrival to its first sample heard, so a sound anywhere in the frame is heard this much + the viewer's
#: delay after it was played (the viewer's `capture → received` is 31–32 ms on loopback).
CAPTURE_DELAY_MS = CAPTURE_LATENCY_MS + FRAME_US / 1000
#: What a picture takes from the program's commit to the viewer's screen when nothing holds it back
#: (the next composite, encoding, the link, decoding): measured on loopback by bench/audio_av_skew.py
#: (its "commit → eye", docs/benchmarks.md). It is the same link the sound takes, so the sound's delay
#: beyond the picture is what must be made up.
PICTURE_PATH_MS = 8.0
#: How long the session's sound server may take to list its streams (seconds): one that hangs is not
#: waited for (no lip sync meanwhile).
ASK_TIMEOUT = 2.0
#: A change in the delay smaller than this (ms) is not passed on: the pictures do not stutter for a
#: jitter of the sound's path.
STEP_MS = 5.0


class Window(Protocol):
    @property
    def pid(self) -> int | None: ...


class Compositor(Protocol):
    def set_av_sync(self, pids: Collection[int], delay_ms: float) -> None: ...

    def windows(self) -> Iterable[Window]: ...


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (``/proc/PID/stat``), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def windows_of(
    sounding: Iterable[int], window_pids: Collection[int], parent: Callable[[int], int | None] = parent_pid
) -> set[int]:
    """For each sounding process, the nearest process up its parent chain (itself included) that owns
    a window; processes with none (a sound played from a terminal's shell is its terminal's; a
    daemon's is nobody's) add nothing."""
    out: set[int] = set()
    for pid in sounding:
        seen = 0
        current: int | None = pid
        while current is not None and current > 1 and seen < 64:
            if current in window_pids:
                out.add(current)
                break
            current = parent(current)
            seen += 1
    return out


def playing_pids(server: str) -> list[int]:
    """The pids of the programs whose streams play into the session's sound server now (not corked).
    Blocking: run it in a thread."""
    import pulsectl  # only sessions whose viewer asked for lip sync pay for it

    pids = []
    # (No connect timeout of pulsectl's: it polls for the whole timeout even once connected. The caller
    # gives up on a server that hangs: wayray.audio.asking.)
    with pulsectl.Pulse("wayray-av-sync", server=server) as pulse:
        for stream in pulse.sink_input_list():
            if stream.corked:
                continue
            with contextlib.suppress(KeyError, ValueError):
                pids.append(int(stream.proplist["application.process.id"]))
    return pids


class AvSync:
    """One viewer's lip sync: :meth:`viewer_delay` from its AudioDelay, :meth:`start` with its sound,
    :meth:`stop` when it goes (the pictures are shown at once again)."""

    def __init__(self, comp: Compositor, server: str, last_sound: Callable[[], float]) -> None:
        self._comp = comp
        self._server = server
        self._last_sound = last_sound
        self._viewer_delay_ms: float | None = None
        self._stream: int | None = None
        #: What the compositor was last told: the windows' pids and the delay (ms).
        self.applied: tuple[frozenset[int], float] = (frozenset(), 0.0)
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    def start(self, stream_id: int) -> None:
        self._stream = stream_id
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="av-sync")

    def viewer_delay(self, stream_id: int, delay_us: int) -> None:
        """The viewer's AudioDelay; one about another stream than this one's is ignored."""
        if stream_id == self._stream:
            self._viewer_delay_ms = delay_us / 1000

    def delay_ms(self) -> float | None:
        """How late the sounding windows' pictures are to be shown, None before the viewer said."""
        if self._viewer_delay_ms is None:
            return None
        return max(0.0, min(MAX_DELAY_MS, self._viewer_delay_ms + CAPTURE_DELAY_MS - PICTURE_PATH_MS))

    def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._apply(frozenset(), 0.0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            delay = self.delay_ms()
            if delay is None or time.monotonic() - self._last_sound() > SOUNDING_FOR:
                self._apply(frozenset(), 0.0)
                continue
            try:
                sounding = await in_thread(
                    lambda: playing_pids(self._server), timeout=ASK_TIMEOUT, name="av-sync"
                )
            except Exception as err:  # the sound server went away or does not answer: no lip sync
                why = f"no answer within {ASK_TIMEOUT:g} s" if isinstance(err, TimeoutError) else str(err)
                if not self._failed:
                    log.warning(
                        "lip sync: cannot list the programs playing sound (%s); pictures shown at once", why
                    )
                    self._failed = True
                self._apply(frozenset(), 0.0)
                continue
            self._failed = False
            window_pids = {w.pid for w in self._comp.windows() if w.pid}
            self._apply(frozenset(windows_of(sounding, window_pids)), delay)

    def _apply(self, pids: frozenset[int], delay: float) -> None:
        if not pids:
            delay = 0.0
        old_pids, old_delay = self.applied
        if pids == old_pids and abs(delay - old_delay) < STEP_MS:
            return
        self.applied = (pids, delay)
        self._comp.set_av_sync(pids, delay)
        if pids != old_pids:
            if pids:
                log.info(
                    "lip sync: the pictures of pid %s are shown %.0f ms late, with their sound",
                    ", ".join(map(str, sorted(pids))),
                    delay,
                )
            else:
                log.info("lip sync: no program is sounding; every picture is shown at once")
