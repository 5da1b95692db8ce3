"""The session's microphone feed against a real PulseAudio: idle while nobody records, whole when
someone does (wayray.audio.microphone)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import eventually
from wayray.audio.microphone import MicrophoneFeed
from wayray.audio.opus import FRAME_BYTES, OpusEncoder
from wayray.audio.soundserver import RATE, SOURCE, SoundServer
from wayray.wire import MicFrame

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(f"/usr/bin/{tool}") for tool in ("pulseaudio", "parecord")),
    reason="needs pulseaudio and parecord",
)


class Rig:
    """A sound server and the feed, their asyncio calls run on a loop in a thread of their own."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        runtime = tmp / "run"
        runtime.mkdir(mode=0o700)
        self.sound = SoundServer(runtime, "wayland-test")
        self.run(self.sound.start())
        self.feed = MicrophoneFeed(self.sound.microphone_fifo)
        assert self.run(self.feed.start())
        self.env = self.sound.client_env(dict(os.environ))
        self.tmp = tmp

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def record(self, name: str) -> tuple[subprocess.Popen[bytes], Path]:
        out = self.tmp / name
        proc = subprocess.Popen(
            ["parecord", "--latency-msec=20", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=2",
             "-d", SOURCE, str(out)],
            env=self.env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return proc, out

    def close(self) -> None:
        self.run(self.feed.stop())
        self.run(self.sound.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


class Speaker:
    """A viewer's microphone: Opus frames of a loud 400 Hz tone (a whole number of periods a frame)."""

    def __init__(self, feed: MicrophoneFeed) -> None:
        self.feed = feed
        self.encoder = OpusEncoder(64000)
        t = np.arange(FRAME_BYTES // 4) / RATE
        self.pcm = (np.sin(2 * np.pi * 400 * t) * 20000).astype(np.int16).repeat(2).tobytes()
        self.seq = 0

    def speak(self, frames: int) -> None:
        for _ in range(frames):
            for data in self.encoder.encode(self.pcm):
                self.seq += 1
                self.feed.handle(MicFrame(seq=self.seq, timestamp_us=self.seq * 20_000, data=data))


def test_with_nobody_recording_the_feed_goes_idle_and_stops_writing(rig: Rig) -> None:
    eventually(lambda: rig.feed.idle, "the feed idle (nobody records the microphone)")
    unread = rig.feed.stats.unread
    # An observation window, not a timing: a ticking feed pushes a frame out of the full FIFO every
    # 20 ms; an idle one writes nothing at all.
    time.sleep(0.5)
    assert rig.feed.idle and rig.feed.stats.unread == unread


def test_a_program_that_starts_recording_wakes_an_idle_feed_and_records(rig: Rig) -> None:
    eventually(lambda: rig.feed.idle, "the feed idle (nobody records the microphone)")
    proc, out = rig.record("late.raw")
    try:
        eventually(lambda: not rig.feed.idle, "the feed ticking again for the recorder")
        # A pipe source has no clock: without the feed ticking the recorder would get nothing.
        eventually(lambda: out.exists() and out.stat().st_size >= RATE * 4, "a second recorded")
    finally:
        proc.terminate()
        proc.wait(10)
    recorded = np.frombuffer(out.read_bytes()[: RATE * 4], dtype=np.int16)
    assert not recorded.any(), "the recorder got something other than the silence the feed writes"
    # Once it stops, the feed goes idle again.
    eventually(lambda: rig.feed.idle, "the feed idle again after the recorder ended")


def test_an_idle_feed_drops_the_viewers_speech_and_a_later_recorder_never_gets_stale_sound(
    rig: Rig,
) -> None:
    viewer = Speaker(rig.feed)
    # The viewer speaks (nobody records) until the feed has given up on a recorder: its last frames
    # were what the FIFO held.
    while not rig.feed.idle:
        viewer.speak(1)
        time.sleep(0.02)  # a microphone's pace (the feed's queue holds 200 ms)
    before = rig.feed.stats.idle_dropped
    viewer.speak(20)
    assert rig.feed.stats.idle_dropped == before + 20
    proc, out = rig.record("after-speech.raw")
    try:
        eventually(
            lambda: out.exists() and out.stat().st_size >= 6 * FRAME_BYTES, "the first 120 ms recorded"
        )
    finally:
        proc.terminate()
        proc.wait(10)
    first = np.frombuffer(out.read_bytes()[: 6 * FRAME_BYTES], dtype=np.int16)
    assert not first.any(), "a recorder that starts got speech from before it started"
