"""encoder.bitrate and encoder.zstd_level change what the real codecs produce.

The video clip is the benchmark's panning photo-like picture (``bench.codec_scenes``), encoded by
the real x264 through PyAV; the text is the benchmark's terminal, compressed by the real zstd.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import codec_scenes as scenes
from tests.codec.util import Link, assert_same
from wayray.codec import EncoderSettings, h264_unavailable
from wayray.wire.display import RegionEncoding

pytestmark = pytest.mark.skipif(h264_unavailable() is not None, reason="no H.264 encoder")

W, H = 640, 360
FPS = 30


def _video_bits_per_second(link: Link, frames: int, start: int = 0) -> float:
    """Play ``frames`` frames of the clip at FPS; the H.264 bit rate of the frames after the IDR."""
    pics = scenes.moving_picture(W, H)
    for _ in range(start):
        next(pics)
    sizes = []
    for i in range(frames):
        update = link.send(next(pics), [(0, 0, W, H)], (start + i) / FPS)
        assert update is not None
        h264 = [r for r in update.regions if r.encoding == RegionEncoding.H264 and r.data]
        if h264 and not update.keyframe:
            sizes.append(sum(len(r.data) for r in h264))
    assert len(sizes) > 20, "the clip did not go to H.264"
    steady = sizes[4:]  # past the IDR and the VBV's first fill
    return sum(steady) * 8 * FPS / len(steady)


@pytest.mark.parametrize("bitrate", [400_000, 1_600_000])
def test_the_video_regions_take_about_the_configured_bit_rate(bitrate: int) -> None:
    # A full-output region takes the whole rate; x264 plans it per frame at video_fps frames a second.
    link = Link(W, H, EncoderSettings(video_bitrate=bitrate, video_fps=FPS))
    got = _video_bits_per_second(link, 60)
    assert 0.6 * bitrate <= got <= 1.4 * bitrate, f"{got:.0f} bit/s for a target of {bitrate}"


def test_a_lower_rate_set_while_playing_takes_effect_without_a_new_idr() -> None:
    link = Link(W, H, EncoderSettings(video_bitrate=1_600_000, video_fps=FPS))
    before = _video_bits_per_second(link, 40)
    link.encoder.set_video_bitrate(400_000)
    (stream,) = link.encoder.video_streams
    after = _video_bits_per_second(link, 40, start=40)
    assert after < before / 2.5, (before, after)
    assert link.encoder.video_bitrate == 400_000
    # The same stream went on: no end region, no new stream (a new one would start with an IDR).
    ends = [r for u in link.updates for r in u.regions if r.encoding == RegionEncoding.H264 and not r.data]
    assert not ends and link.encoder.video_streams == [stream]
    # Never above the configured rate: the configuration is the ceiling.
    link.encoder.set_video_bitrate(10_000_000)
    assert link.encoder.video_bitrate == 1_600_000


def test_a_smaller_video_region_gets_its_share_of_the_rate() -> None:
    settings = EncoderSettings(video_bitrate=4_000_000, video_fps=FPS)
    link = Link(W, H, settings)
    desk = scenes.Desktop(W, H)
    link.send(desk.fb.copy(), [(0, 0, W, H)], 0.0)
    pics = scenes.moving_picture(320, 180)
    sizes = []
    for i in range(1, 60):
        damage = desk.paste(next(pics), 64, 64)
        update = link.send(desk.fb.copy(), [damage], i / FPS)
        if update is not None and not update.keyframe:
            sizes += [len(r.data) for r in update.regions if r.encoding == RegionEncoding.H264 and r.data]
    (stream,) = link.encoder.video_streams
    share = stream.rect.width * stream.rect.height / (W * H)
    got = sum(sizes[4:]) * 8 * FPS / len(sizes[4:])
    assert got <= 1.4 * share * 4_000_000, (got, share)


def _typed_text_bytes(level: int) -> tuple[int, np.ndarray, Link]:
    """Lossless bytes of typing a line into a terminal, at zstd level ``level`` for small regions."""
    link = Link(800, 600, EncoderSettings(zstd_level_small=level))
    frames = list(scenes.terminal_typing(800, 600, cols=60, rows=20))
    link.run(frames)  # exact after every frame
    typed = sum(len(r.data) for u in link.updates[1:] for r in u.regions)
    return typed, frames[-1][0], link


def test_the_zstd_level_changes_the_bytes_of_typed_text_and_stays_exact() -> None:
    fast, fb, link = _typed_text_bytes(1)
    slow, _, slow_link = _typed_text_bytes(19)
    assert slow < fast * 0.95, (fast, slow)
    assert_same(link.decoder.framebuffer, fb)
    assert_same(slow_link.decoder.framebuffer, fb)
