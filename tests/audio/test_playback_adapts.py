"""The kiosk's player (wayray.audio.playback.Player) against a real PulseAudio (tests/e2e/kiosk_sound.py):
its sink buffer starts short, grows while it plays when the machine holds the player up for longer
than it, and comes down again in a silence after a calm while."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import DEADLINE
from tests.e2e.kiosk_sound import KioskSound
from wayray.audio import playback
from wayray.audio.opus import FRAME_US

pytestmark = pytest.mark.slow

RATE = 48000
FRAME = RATE * FRAME_US // 1_000_000


def tone_frame(seq: int) -> bytes:
    t = (seq * FRAME + np.arange(FRAME)) / RATE
    mono = (0.4 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    return np.stack([mono, mono], 1).tobytes()


@pytest.fixture
def kiosk_sound(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    directory = Path(tempfile.mkdtemp(prefix="wr-play-", dir="/tmp"))
    sound = KioskSound(directory / "kiosk").start()  # its speaker plays
    for key, value in sound.env.items():
        monkeypatch.setenv(key, value)
    yield sound
    sound.stop()


def test_a_kiosk_held_up_longer_than_its_sink_buffer_plays_on_with_a_longer_one(
    kiosk_sound: KioskSound,
) -> None:
    """The player held up for a second (a machine that did not schedule it: here its lock is held, so
    libpulse's thread cannot give the sink sound) empties the sink's short buffer: the sink plays a
    gap, the player takes a longer buffer at once, on the same stream, and the sound goes on through it."""

    async def play() -> dict[str, object]:
        player = playback.Player()
        assert player.latency_ms == playback.START_LATENCY_MS
        player.start()
        t0 = time.monotonic()
        held = False
        stream = None
        grown_at: int | None = None
        seq = 0
        end = t0 + DEADLINE
        # Half a second of tone, half a second of silence (not sent, as the session sends silence),
        # on the session's clock, until the buffer has grown and a second of tone played after.
        while time.monotonic() < end:
            if (seq // 25) % 2 == 0:
                player.put(seq, tone_frame(seq))
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * FRAME_US / 1e6 - time.monotonic()))
            if not held and seq >= 60 and player.stats.played:
                stream = player._stream
                with player._lock:  # the sink asks, and nobody answers for a second
                    time.sleep(1.0)
                held = True
            if player.stats.sink_latency_ms_max > playback.START_LATENCY_MS and grown_at is None:
                grown_at = player.stats.played
            if grown_at is not None and player.stats.played >= grown_at + 50:
                break  # a second of tone played with the longer buffer
        stats = player.to_json() | {"grown_at": grown_at, "same_stream": player._stream is stream}
        player.stop()
        await player.wait_closed()
        return stats

    heard_before = kiosk_sound.heard().size
    stats = asyncio.run(play())
    assert int(str(stats["underruns"])) >= 1, stats
    assert int(str(stats["sink_latency_ms_max"])) > playback.START_LATENCY_MS, stats
    assert stats["same_stream"], stats  # changed while it played: no new stream, nothing cut
    # The tone went on with the longer buffer (a second of it), and the speaker played it.
    assert stats["grown_at"] is not None, stats
    assert np.abs(kiosk_sound.heard()[heard_before:]).max(initial=0.0) > 0.2


def test_a_calm_kiosk_comes_down_to_a_short_sink_buffer_in_the_silence_after_sound(
    kiosk_sound: KioskSound, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a longer buffer (here 100 ms, as after underruns), a calm while (here 1 s instead of 15 s)
    of sound played without an underrun takes a third off, in the silence after it. (A machine loaded
    enough to break the sound up makes it longer first, which is the rule working: then it comes down a
    third from there.)"""
    monkeypatch.setattr(playback, "CALM_AFTER", 1.0)

    async def play() -> list[int]:
        player = playback.Player()
        player.latency_ms = 100
        player.start()
        seen = [player.latency_ms]
        t0 = time.monotonic()
        end = t0 + DEADLINE
        seq = 0
        while time.monotonic() < end and not any(b < a for a, b in zip(seen, seen[1:], strict=False)):
            if seq % 125 < 75:  # 1.5 s of tone, then 1 s of silence (not sent, as the session sends it)
                player.put(seq, tone_frame(seq))
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * FRAME_US / 1e6 - time.monotonic()))
            if player.latency_ms != seen[-1]:
                seen.append(player.latency_ms)
        player.stop()
        await player.wait_closed()
        return seen

    seen = asyncio.run(play())
    down = [(a, b) for a, b in zip(seen, seen[1:], strict=False) if b < a]
    assert down, seen
    a, b = down[0]
    assert b == max(playback.MIN_LATENCY_MS, a * 2 // 3 // 10 * 10), seen  # a third off, to tens of ms


def test_a_kiosk_that_only_played_silence_keeps_its_sink_buffer(
    kiosk_sound: KioskSound, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silence proves nothing about the machine: a kiosk whose session was silent for many calm whiles
    keeps its buffer, and the first sound that comes (with the work its frames bring) is not played
    through a buffer that was never tried with sound."""
    monkeypatch.setattr(playback, "CALM_AFTER", 0.5)

    async def play() -> tuple[int, dict[str, object]]:
        player = playback.Player()
        player.latency_ms = 100
        player.start()  # a stream whose session is silent
        await asyncio.sleep(4 * playback.CALM_AFTER + 1.0)
        latency, stats = player.latency_ms, player.to_json()
        player.stop()
        await player.wait_closed()
        return latency, stats

    latency, stats = asyncio.run(play())
    # Never shorter than it started (a machine loaded enough to starve it even in silence makes it
    # longer, which is the rule working too).
    assert latency >= 100, stats


def test_a_shorter_sink_buffer_cuts_nothing_of_the_sound_before_or_after_it(
    kiosk_sound: KioskSound, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buffer comes down in the silence between two tones: both reach the speaker whole (the
    silence the sink still held plays down; no sound is dropped with it)."""
    monkeypatch.setattr(playback, "CALM_AFTER", 0.3)

    async def play() -> dict[str, object]:
        player = playback.Player()
        player.latency_ms = 100
        player.start()
        seen = [player.latency_ms]
        t0 = time.monotonic()
        seq = 0
        while time.monotonic() < t0 + 4.0:
            if 25 <= seq < 75 or 125 <= seq < 175:  # two tones of a second, a second apart
                player.put(seq, tone_frame(seq))
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * FRAME_US / 1e6 - time.monotonic()))
            if player.latency_ms != seen[-1]:
                seen.append(player.latency_ms)
        stats = player.to_json() | {"seen": seen}
        player.stop()
        await player.wait_closed()
        return stats

    start = kiosk_sound.heard().size
    stats = asyncio.run(play())
    seen = stats["seen"]
    assert isinstance(seen, list) and min(seen) < 100, stats  # the buffer did come down
    heard = kiosk_sound.heard()[start:]
    block = RATE // 200  # 5 ms: a tone's loudness, not its zero crossings
    loud = np.abs(heard[: heard.size // block * block]).reshape(-1, block).max(axis=1) > 0.05
    # the tones' runs of sound, as the speaker played them (a gap within one: two runs)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    runs = [(b - a) * block / RATE for a, b in zip(edges[::2], edges[1::2], strict=False)]
    if stats["underruns"]:  # a machine that starved the sink: a gap was heard, and the buffer grew
        assert any(b > a for a, b in zip(seen, seen[1:], strict=False)), stats
    else:
        assert len(runs) == 2 and all(r >= 1.0 - 0.01 for r in runs), runs
