"""The link adapter's estimate and decisions on a simulated link (a bottleneck of known rate and round
trip, frames acknowledged after they arrive): what it learns, and that frames never pile up.

The real link, the real encoder and the real viewer are tests/e2e/test_adaptive.py."""

from __future__ import annotations

import math

import pytest

from wayray.session.adapt import LinkAdapter


class SimulatedLink:
    """A bottleneck of ``rate`` bytes/s and ``rtt`` seconds; the viewer takes ``decode`` s per frame."""

    def __init__(self, rate: float, rtt: float, decode: float = 0.003) -> None:
        self.rate, self.rtt, self.decode = rate, rtt, decode
        self.busy_until = 0.0
        self.acks: list[tuple[float, int]] = []  # (ack time, seq)

    def send(self, seq: int, nbytes: int, now: float) -> None:
        start = max(now + self.rtt / 2, self.busy_until)
        self.busy_until = start + nbytes / self.rate
        self.acks.append((self.busy_until + self.decode + self.rtt / 2, seq))


def drive(adapter: LinkAdapter, link: SimulatedLink, seconds: float, frame_bytes: int) -> list[float]:
    """A source with a new frame every 1/60 s, sent when the adapter allows; returns each frame's delay
    from being sent to its ack."""
    now, seq, sent_at, delays = 0.0, 0, {}, []
    while now < seconds:
        for at, s in sorted(a for a in link.acks if a[0] <= now):
            link.acks.remove((at, s))
            adapter.acked(s, int(link.decode * 1e6), at)
            delays.append(at - sent_at[s])
        if adapter.wait(now) <= 0:
            seq += 1
            # Frames shrink as the adapter lowers the rate: bytes = rate / fps.
            size = min(frame_bytes, int(adapter.target_bitrate / 8 / adapter.fps))
            if seq % 10 == 0:
                size = 400  # now and then only a typed character changed
            adapter.sent(seq, size, now)
            link.send(seq, size, now)
            sent_at[seq] = now
        now += 1 / 240
    return delays


@pytest.mark.parametrize("mbit", [2, 20])
def test_it_learns_the_links_rate_and_round_trip(mbit: float) -> None:
    link = SimulatedLink(mbit * 1e6 / 8, 0.05)
    adapter = LinkAdapter(video_bitrate=8_000_000, video_fps=60, max_fps=60)
    drive(adapter, link, 10.0, 200_000)
    assert adapter.bandwidth is not None and adapter.rtt is not None
    assert adapter.bandwidth == pytest.approx(link.rate, rel=0.15)
    assert adapter.rtt == pytest.approx(0.05, abs=0.015)


def test_a_slow_link_gets_fewer_smaller_frames_and_no_queue() -> None:
    link = SimulatedLink(2e6 / 8, 0.05)
    adapter = LinkAdapter(video_bitrate=8_000_000, video_fps=60, max_fps=60)
    delays = drive(adapter, link, 20.0, 200_000)
    # 70 % of 2 Mbit/s for the video, split between frame rate and frame size.
    assert adapter.target_bitrate == pytest.approx(1.4e6, rel=0.15)
    assert adapter.fps == pytest.approx(60 * math.sqrt(1.4 / 8), rel=0.15)
    # Frames keep coming, and the last ones are not later than the first ones: nothing queues.
    late = delays[len(delays) // 2 :]
    assert len(late) > 100
    assert max(late) < 0.05 + 0.15  # the round trip and one frame's transmission, not a growing queue


def test_a_fast_link_keeps_the_configured_rate() -> None:
    link = SimulatedLink(100e6 / 8, 0.01)
    adapter = LinkAdapter(video_bitrate=8_000_000, video_fps=60, max_fps=60)
    drive(adapter, link, 5.0, 30_000)
    assert (adapter.video_bitrate, adapter.fps) == (8_000_000, 60)


def test_without_an_estimate_one_large_frame_at_a_time() -> None:
    adapter = LinkAdapter(video_bitrate=8_000_000, video_fps=60, max_fps=60)
    assert adapter.wait(0.0) == 0
    adapter.sent(1, 2_000_000, 0.0)  # a keyframe of a photo-like screen
    assert adapter.wait(0.01) == math.inf  # the next waits for its ack
    adapter.acked(1, 3000, 8.1)  # eight seconds at 2 Mbit/s
    assert adapter.wait(8.1) == 0
    # That keyframe measured the link, though no small frame told the round trip yet.
    assert adapter.bandwidth == pytest.approx(2_000_000 / 8.1, rel=0.01)
    assert adapter.target_bitrate < 2_000_000 * 8 / 8.1
