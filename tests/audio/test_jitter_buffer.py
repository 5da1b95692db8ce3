"""The kiosk's jitter buffer (wayray.audio.playback.JitterBuffer): its rules, slot by slot, on a clock of
the test's own (the end-to-end tests play through a real PulseAudio: tests/e2e/test_audio.py)."""

from __future__ import annotations

import logging

import pytest

from wayray.audio.opus import FRAME_BYTES
from wayray.audio.playback import MAX_FRAMES, SHRINK_AFTER, START_FRAMES, JitterBuffer, Player

SILENCE = bytes(FRAME_BYTES)


def sound(n: int) -> bytes:
    return n.to_bytes(4, "little") * (FRAME_BYTES // 4)


def test_it_plays_silence_first_then_each_frame_in_its_slot_and_silence_for_a_missing_one() -> None:
    jb = JitterBuffer()
    assert jb.next() == SILENCE  # nothing yet: the sink is fed silence
    jb.put(100, sound(100), now=0.0)
    jb.put(101, sound(101), now=0.02)
    jb.put(103, sound(103), now=0.06)
    played = [jb.next() for _ in range(START_FRAMES + 4)]
    # START_FRAMES slots of silence (the buffer's 40 ms), then 100, 101, a gap (102: silent or lost), 103
    assert played == [SILENCE] * START_FRAMES + [sound(100), sound(101), SILENCE, sound(103)]


def test_a_frame_late_after_a_later_one_played_is_dropped_and_the_buffer_grows_by_a_frame() -> None:
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    jb.put(2, sound(2), now=0.04)
    assert [jb.next() for _ in range(START_FRAMES + 3)][-3:] == [sound(0), SILENCE, sound(2)]
    jb.put(1, sound(1), now=0.1)  # late, and frame 2 has played: too late to play in order
    jb.put(3, sound(3), now=0.1)
    assert jb.stats.late == 1 and jb.target == START_FRAMES + 1
    assert jb.next() == SILENCE  # the slot of silence that makes the buffer a frame longer
    assert jb.next() == sound(3)  # and then on, one frame later than before


def test_a_sound_that_starts_late_plays_whole_and_the_buffer_grows_by_how_late_it_came() -> None:
    """The session's first frames after a silence came in a burst 100 ms after their turn (a loop
    held up): only silence had played in their slots, so the sound starts that much later, whole,
    where dropping each late frame cut its first 100 ms (a chirp test's broken first chirp)."""
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    assert [jb.next() for _ in range(START_FRAMES + 1)][-1] == sound(0)
    for _ in range(20):
        jb.next()  # 400 ms of the session's silence (nothing sent)
    burst = range(16, 26)  # frames 16..25: the first five were due in the slots just played
    for seq in burst:
        jb.put(seq, sound(seq), now=1.0)
    assert jb.stats.late == 1 and jb.target == START_FRAMES + 5  # the first one late; the rest in time
    assert [jb.next() for _ in burst] == [sound(seq) for seq in burst]  # all of it, in order
    jb.put(26, sound(26), now=1.2)  # and the next one in time: the buffer is 100 ms longer
    assert jb.depth == 1 and jb.next() == sound(26)


def test_a_frame_late_after_silence_plays_whole_within_the_maximum_only() -> None:
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    for _ in range(START_FRAMES + 1 + 3 * MAX_FRAMES):
        jb.next()
    now_playing = 1 + 3 * MAX_FRAMES  # the slot to play next
    late = now_playing - (MAX_FRAMES - START_FRAMES) - 1  # later than the buffer may grow
    jb.put(late, sound(late), now=1.0)
    assert jb.target == START_FRAMES + 1  # dropped: grown by a frame, as before
    assert sound(late) not in [jb.next() for _ in range(MAX_FRAMES)]


def test_it_grows_no_further_than_its_maximum() -> None:
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    for _ in range(3 * MAX_FRAMES):
        jb.next()
    for seq in range(1, 2 * MAX_FRAMES):
        jb.put(seq, sound(seq), now=0.0)  # every one of them late
    assert jb.target == MAX_FRAMES


def test_after_a_quiet_while_it_shrinks_by_skipping_a_slot_without_sound() -> None:
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    for _ in range(START_FRAMES + 2):
        jb.next()
    jb.put(1, sound(1), now=0.1)  # late: target + 1
    grown = jb.target
    assert jb.next() == sound(1)  # played late, a slot after its turn
    # 10 s later, with a silent stretch (no frames 2..9), frame 10 arrives well in time.
    jb.put(10, sound(10), now=0.1 + SHRINK_AFTER + 1)
    assert jb.target == grown - 1
    played = [jb.next() for _ in range(12)]
    # slot 2 is skipped (nobody hears it): frame 10 plays one slot sooner than it would have
    assert played.index(sound(10)) == 10 - 2 - 1
    assert jb.stats.skipped == 1


def test_a_sender_clock_running_ahead_is_followed_by_skipping_a_silent_slot() -> None:
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    # Frames keep arriving three frames deeper than the target for more than 2 s.
    t = 0.0
    seq = 0
    for _ in range(200):
        jb.next()
        seq += 1
        t += 0.02
        if seq % 10:  # a frame in ten is silence (not sent): a slot that can go
            jb.put(seq + 3, sound(seq + 3), now=t)
    assert jb.stats.skipped >= 1


def test_anchored_again_while_quiet_the_next_frame_plays_as_at_a_stream_s_start() -> None:
    """A new pacat (another sink buffer) took a while to start: slots were not played meanwhile. While
    nothing waits, the timeline starts again at the next frame, so that time is not added to the
    delay; with a frame waiting, nothing changes (its sound is not skipped)."""
    jb = JitterBuffer()
    jb.put(0, sound(0), now=0.0)
    assert [jb.next() for _ in range(START_FRAMES + 1)][-1] == sound(0)
    jb.anchor_again()  # quiet: nothing waits
    jb.put(40, sound(40), now=1.0)  # the writer did not pull slots 1..39 while pacat was replaced
    played = [jb.next() for _ in range(START_FRAMES + 1)]
    assert played == [SILENCE] * START_FRAMES + [sound(40)]
    jb.put(41, sound(41), now=1.02)
    jb.anchor_again()  # a frame waits: not quiet, kept in its slot
    assert jb.next() == sound(41)


def test_the_kiosk_s_log_says_when_a_late_frame_grew_its_jitter_buffer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator (and the kiosk tests) can see why the sound is later than before: a frame came after
    its turn, and the buffer is a frame longer (the sink buffer's changes are logged the same way)."""
    player = Player()
    with caplog.at_level(logging.INFO, logger="wayray.audio"):
        player.put(0, sound(0))
        for _ in range(START_FRAMES + 2):
            player._buffer.next()  # the writer played slots 0 and 1: frame 1 had not come
        player.put(1, sound(1))  # late
        player.put(2, sound(2))  # in time: nothing to say
    grew = [r.getMessage() for r in caplog.records if "jitter buffer" in r.getMessage()]
    assert grew == [
        "a frame of sound came after its turn to play: the jitter buffer grew to "
        f"{(START_FRAMES + 1) * 20} ms (1 late frames so far)"
    ]
