"""The kiosk's player (wayray.audio.playback.Player) against a real PulseAudio (tests/e2e/kiosk_sound.py):
its sink buffer starts short and grows when the machine holds pacat up for longer than it."""

from __future__ import annotations

import asyncio
import os
import signal
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
    sound = KioskSound(directory / "kiosk").start()
    for key, value in sound.env.items():
        monkeypatch.setenv(key, value)
    yield sound
    sound.stop()


def test_a_kiosk_held_up_longer_than_its_sink_buffer_plays_on_with_a_longer_one(
    kiosk_sound: KioskSound,
) -> None:
    """pacat stopped for a second (a machine that did not schedule it) empties the sink's 100 ms: the
    sink plays a gap, the player takes a longer buffer (a new pacat, in the session's next silence),
    and the sound goes on through it."""

    async def play() -> dict[str, object]:
        player = playback.Player()
        assert player.latency_ms == playback.START_LATENCY_MS
        player.start()
        t0 = time.monotonic()
        stopped = False
        played_at_restart: int | None = None
        seq = 0
        end = t0 + DEADLINE
        # Half a second of tone, half a second of silence (not sent, as the session sends silence),
        # on the session's clock, until the player has restarted pacat and played on for a while.
        while time.monotonic() < end:
            if (seq // 25) % 2 == 0:
                player.put(seq, tone_frame(seq))
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * FRAME_US / 1e6 - time.monotonic()))
            if not stopped and seq >= 60 and player._proc is not None and player.stats.played:
                pid = player._proc.pid
                os.kill(pid, signal.SIGSTOP)
                await asyncio.sleep(1.0)
                os.kill(pid, signal.SIGCONT)
                stopped = True
            if player.stats.restarts and played_at_restart is None:
                played_at_restart = player.stats.played
            if played_at_restart is not None and player.stats.played >= played_at_restart + 50:
                break  # a second of tone played through the new pacat
        stats = player.to_json() | {"played_at_restart": played_at_restart}
        player.stop()
        await player.wait_closed()
        return stats

    heard_before = kiosk_sound.heard().size
    stats = asyncio.run(play())
    assert stats["underruns"] >= 1, stats
    assert stats["restarts"] >= 1 and stats["sink_latency_ms_max"] > playback.START_LATENCY_MS, stats
    # The tone went on through the new pacat (a second of it), and the speaker played it.
    assert stats["played_at_restart"] is not None, stats
    assert np.abs(kiosk_sound.heard()[heard_before:]).max(initial=0.0) > 0.2


def test_a_calm_kiosk_comes_down_to_a_short_sink_buffer_in_the_silence_after_sound(
    kiosk_sound: KioskSound, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It starts at 100 ms (safe on a loaded machine); a calm while (here 1 s instead of 15 s) of sound
    played without an underrun takes a third off, in the silence after it. (A machine loaded enough to
    break the sound up makes it longer first, which is the rule working: then it comes down a third
    from there.)"""
    monkeypatch.setattr(playback, "CALM_AFTER", 1.0)

    async def play() -> list[int]:
        player = playback.Player()
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
    assert seen[0] == playback.START_LATENCY_MS == 100
    down = [(a, b) for a, b in zip(seen, seen[1:], strict=False) if b < a]
    assert down and down[0][1] == down[0][0] * 2 // 3 // 10 * 10, seen  # a third off, to tens of ms


def test_a_kiosk_that_only_played_silence_keeps_its_sink_buffer(
    kiosk_sound: KioskSound, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silence proves nothing about the machine: a kiosk whose session was silent for many calm whiles
    keeps its 100 ms, and the first sound that comes (with the work its frames bring) is not played
    through a buffer that was never tried with sound."""
    monkeypatch.setattr(playback, "CALM_AFTER", 0.5)

    async def play() -> tuple[int, dict[str, object]]:
        player = playback.Player()
        player.start()  # a stream whose session is silent
        await asyncio.sleep(4 * playback.CALM_AFTER + 1.0)
        latency, stats = player.latency_ms, player.to_json()
        player.stop()
        await player.wait_closed()
        return latency, stats

    latency, stats = asyncio.run(play())
    # Never shorter than it started (a machine loaded enough to starve it even in silence makes it
    # longer, which is the rule working too).
    assert latency >= playback.START_LATENCY_MS, stats


def test_a_new_sink_buffer_waits_until_the_sound_before_it_has_played_out(kiosk_sound: KioskSound) -> None:
    """A change of the sink's buffer is a new pacat, and killing the old one drops what PulseAudio
    still held for it: taken the moment the jitter buffer is empty, it cut up to a whole buffer
    (100 ms here) off the end of the sound before it (a chirp's tail, in the e2e tests). The whole
    tone must reach the speaker."""

    async def play() -> dict[str, object]:
        player = playback.Player()
        player.start()
        t0 = time.monotonic()
        seq = 0
        while time.monotonic() < t0 + 3.0:
            if 25 <= seq < 50:  # half a second of tone, after half a second of silence
                player.put(seq, tone_frame(seq))
            if seq == 45:
                player._underruns_now = 1  # as if the sink had run dry: a longer buffer, in silence
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * FRAME_US / 1e6 - time.monotonic()))
        stats = player.to_json()
        player.stop()
        await player.wait_closed()
        return stats

    start = kiosk_sound.heard().size
    stats = asyncio.run(play())
    assert stats["restarts"] >= 1, stats  # the buffer did change
    heard = kiosk_sound.heard()[start:]
    loud = np.flatnonzero(np.abs(heard) > 0.05)
    assert loud.size, "the tone never reached the speaker"
    # Half a second of tone (a frame's margin): none of its end was dropped with the old pacat.
    assert (loud[-1] - loud[0]) / RATE >= 0.5 - 0.02, (loud[-1] - loud[0]) / RATE


def test_a_kiosk_without_a_sound_server_says_so_once(
    kiosk_sound: KioskSound, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sound server gone (a kiosk whose PulseAudio died): the player fails, says why in the log,
    and the kiosk goes on without sound. (pacat failing at once had closed its pipe before the kiosk
    set the pipe's size: the ValueError ended the playing without a word; and its stop aborted the
    closed pipe a second time.)"""
    monkeypatch.setenv("PULSE_SERVER", f"unix:{kiosk_sound.dir / 'no-such-socket'}")

    async def play() -> bool:
        player = playback.Player()
        player.start()
        end = time.monotonic() + DEADLINE
        while not player.failed and time.monotonic() < end:
            player.put(0, tone_frame(0))
            await asyncio.sleep(0.05)
        player.stop()
        await player.wait_closed()
        return player.failed

    for _ in range(5):  # the fault came in 1 of 2-3 tries in one process
        caplog.clear()
        with caplog.at_level("ERROR", logger="wayray.audio"):
            assert asyncio.run(play())
        said = [r.getMessage() for r in caplog.records if "cannot play" in r.getMessage()]
        assert len(said) == 1 and "sound server" in said[0], said
