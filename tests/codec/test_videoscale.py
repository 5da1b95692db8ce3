"""The display pump's choice of half-size video (wayray/session/videoscale.py), fed encode times."""

from __future__ import annotations

from wayray.session.videoscale import HOLD_S, SAMPLES, VideoScaler


def _feed(scaler: VideoScaler, seconds: float, frames: int, start: float) -> list[bool]:
    return [scaler.encoded(seconds, start + i / 60) for i in range(frames)]


def test_video_that_takes_longer_than_a_frame_to_encode_goes_to_half_size_and_stays() -> None:
    scaler = VideoScaler(60.0)
    switched = _feed(scaler, 0.020, SAMPLES + 2, 0.0)  # 20 ms a frame: 60 frames/s leave 16.7
    assert scaler.scaled and switched.count(True) == 1
    assert switched.index(True) == SAMPLES - 1  # not before enough frames were seen
    # Half size takes 7 ms: full size (about 3x) would not fit, so it stays half.
    assert not any(_feed(scaler, 0.007, 5 * 60, 1.0))
    assert scaler.scaled


def test_fast_enough_video_keeps_full_size_and_comes_back_when_it_can() -> None:
    scaler = VideoScaler(60.0)
    assert not any(_feed(scaler, 0.008, 120, 0.0))  # 8 ms of 16.7: full size
    assert not scaler.scaled
    _feed(scaler, 0.030, SAMPLES, 2.0)  # the machine got busy
    assert scaler.scaled
    # Busy no more: half-size frames take 2 ms; full size again, but not within HOLD_S of the switch.
    early = _feed(scaler, 0.002, int(HOLD_S * 60) - 30, 2.2)
    assert not any(early) and scaler.scaled
    assert any(_feed(scaler, 0.002, 60, 2.2 + HOLD_S))
    assert not scaler.scaled


def test_a_lower_frame_rate_leaves_more_time() -> None:
    scaler = VideoScaler(24.0)  # 41.7 ms a frame
    assert not any(_feed(scaler, 0.020, 60, 0.0))
    assert not scaler.scaled
