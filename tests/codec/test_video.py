"""The video path: animated regions go to H.264, and come back exact when they settle."""

from __future__ import annotations

import numpy as np
import pytest
from _pytest.monkeypatch import MonkeyPatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import codec_scenes as scenes
from tests.codec.util import Link, assert_same, encodings, psnr, wire_bytes
from wayray.codec import CodecError, Decoder, EncoderSettings, h264_unavailable
from wayray.wire.display import FrameUpdate, Region, RegionEncoding

W, H = 640, 360


def _play(link: Link, frames: int, *, fps: float = 30.0, start: float = 0.0) -> np.ndarray:
    pics = scenes.moving_picture(W, H)
    fb = next(pics)
    for i in range(frames):
        fb = next(pics)
        link.send(fb, [(0, 0, W, H)], start + i / fps)
    return fb


def test_full_screen_video_goes_to_h264_and_settles_back_to_exact_pixels() -> None:
    link = Link(W, H)
    fb = _play(link, 12)
    streams = link.encoder.video_streams
    assert len(streams) == 1 and streams[0].rect == (0, 0, W, H)
    last = link.updates[-1]
    assert [r.encoding for r in last.regions] == [RegionEncoding.H264]
    # Lossy while it plays, but a faithful picture ...
    assert psnr(link.decoder.framebuffer, fb) > 30
    # ... at a fraction of what lossless costs for this content (~2 bytes per pixel).
    assert wire_bytes(last) < W * H * 0.2
    # The video stops: the encoder asks to be called back, ends the stream and refreshes losslessly.
    now = 12 / 30
    assert link.encoder.next_deadline() is not None
    settled = link.updates[-1]
    link.settle(fb, now)
    assert link.updates[-1] is not settled
    assert link.encoder.video_streams == []
    end = link.updates[-1]
    assert any(r.encoding == RegionEncoding.H264 and r.data == b"" for r in end.regions)
    assert_same(link.decoder.framebuffer, fb)
    assert not link.decoder.needs_keyframe


def test_animation_in_a_window_uses_video_only_there() -> None:
    link = Link(W, H)
    desk = scenes.Desktop(W, H)
    link.send(desk.fb.copy(), [(0, 0, W, H)], 0.0)
    pics = scenes.moving_picture(256, 192)
    for i in range(1, 16):
        damage = desk.paste(next(pics), 100, 70)
        link.send(desk.fb.copy(), [damage], i / 30)
    streams = link.encoder.video_streams
    assert len(streams) == 1
    x, y, w, h = streams[0].rect
    # Tile-aligned, covering the window, not the whole output.
    assert x % 64 == 0 and y % 64 == 0
    assert x <= 100 and y <= 70 and x + w >= 100 + 256 - 64 and y + h >= 70 + 192 - 64
    assert w * h < W * H / 2
    # Outside the stream the client is exact all along.
    fb = desk.fb
    outside = np.ones((H, W), dtype=bool)
    outside[y : y + h, x : x + w] = False
    assert np.array_equal(link.decoder.framebuffer[outside], fb[outside])
    link.settle(fb.copy(), 15 / 30)
    assert_same(link.decoder.framebuffer, fb)


def test_a_scrolling_terminal_never_becomes_video() -> None:
    link = Link(900, 760)
    link.run(scenes.terminal_scroll(900, 760, lines_per_frame=2, frames=40, cols=100, rows=40))
    assert RegionEncoding.H264 not in encodings(link.updates)


def test_a_text_flood_is_not_left_as_video() -> None:
    """A `seq` flood changes every frame; video may be tried, but text must end exact."""
    link = Link(900, 760)
    frames = list(
        scenes.terminal_scroll(
            900, 760, lines_per_frame=5000, frames=40, line=scenes.seq_line, cols=100, rows=40
        )
    )
    link.run(frames, exact=False)
    fb, _, now = frames[-1]
    link.settle(fb, now)
    assert_same(link.decoder.framebuffer, fb)


def test_small_animation_stays_lossless() -> None:
    """A spinner or a blinking cursor changes every frame but is too small to be worth a video stream."""
    link = Link(W, H)
    fb = scenes.wallpaper(W, H)
    link.send(fb, [(0, 0, W, H)], 0.0)
    rng = np.random.default_rng(0)
    for i in range(1, 40):
        fb = fb.copy()
        fb[100:140, 200:240] = rng.integers(0, 2**32, size=(40, 40), dtype=np.uint32)
        link.send(fb, [(200, 100, 40, 40)], i / 60)
        assert_same(link.decoder.framebuffer, fb)
    assert RegionEncoding.H264 not in encodings(link.updates)


def test_video_can_be_turned_off() -> None:
    link = Link(W, H, EncoderSettings(video=False))
    pics = scenes.moving_picture(W, H)
    for i in range(12):
        fb = next(pics)
        link.send(fb, [(0, 0, W, H)], i / 30)
        assert_same(link.decoder.framebuffer, fb)
    assert RegionEncoding.H264 not in encodings(link.updates)


def test_a_client_joining_mid_video_gets_an_idr_in_its_keyframe() -> None:
    link = Link(W, H)
    fb = _play(link, 10)
    assert link.encoder.video_streams
    link.encoder.request_keyframe()
    pics = scenes.moving_picture(W, H, seed=9)
    late = Decoder()
    for i in range(6):
        fb = next(pics)
        update = link.send(fb, [(0, 0, W, H)], (10 + i) / 30)
        assert update is not None
        if i == 0:
            assert update.keyframe
            assert any(r.encoding == RegionEncoding.H264 for r in update.regions)
        late.apply(update)
        assert not late.needs_keyframe
        assert psnr(late.framebuffer, fb) > 30
        assert np.array_equal(late.framebuffer, link.decoder.framebuffer)


def test_odd_sized_output_video_is_cropped_exactly_into_place() -> None:
    w, h = 389, 251  # odd: H.264 codes 390x252 and the decoder crops
    link = Link(w, h)
    pics = scenes.moving_picture(w, h)
    fb = next(pics)
    for i in range(10):
        fb = next(pics)
        link.send(fb, [(0, 0, w, h)], i / 30)
    assert link.encoder.video_streams and link.encoder.video_streams[0].rect == (0, 0, w, h)
    assert psnr(link.decoder.framebuffer, fb) > 30
    link.settle(fb, 10 / 30)
    assert_same(link.decoder.framebuffer, fb)


def test_a_stream_that_does_not_pay_ends_and_is_not_retried_at_once() -> None:
    """Video that costs more than half of lossless is dropped; its tiles wait before another try."""
    settings = EncoderSettings(video_max_cost_ratio=0.0, video_retry_s=100.0)
    link = Link(W, H, settings)
    pics = scenes.moving_picture(W, H)
    starts = 0
    for i in range(30):
        fb = next(pics)
        update = link.send(fb, [(0, 0, W, H)], i / 30)
        assert update is not None
        starts += sum(
            1
            for r in update.regions
            if r.encoding == RegionEncoding.H264 and r.stream_id and _is_idr(r.data)
        )
    assert starts == 1
    assert link.encoder.video_streams == []
    assert_same(link.decoder.framebuffer, fb)


def _is_idr(data: bytes) -> bool:
    # Annex B: an IDR slice is NAL unit type 5.
    return any(data[i + 3] & 0x1F == 5 for i in range(len(data) - 4) if data[i : i + 3] == b"\0\0\1")


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(2, 20), st.integers(0, 2**32 - 1)),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_whatever_animates_the_client_ends_exact(bursts: list[tuple[int, int, int, int]]) -> None:
    """Bursts of animation anywhere (some long enough for video, some not), then a pause: exact."""
    w, h = 320, 256
    link = Link(w, h)
    fb = scenes.wallpaper(w, h)
    link.send(fb, [(0, 0, w, h)], 0.0)
    now = 0.0
    for tx, ty, frames, seed in bursts:
        pics = scenes.moving_picture(128 + 32 * (seed % 3), 96 + 32 * (seed % 4), seed=seed % 5)
        for _ in range(frames):
            pic = next(pics)
            ph, pw = pic.shape
            x, y = min(tx * 48, w - pw), min(ty * 40, h - ph)
            fb = fb.copy()
            fb[y : y + ph, x : x + pw] = pic
            now += 1 / 30
            link.send(fb, [(x, y, pw, ph)], now)
        now = link.settle(fb, now + 0.05)
        assert link.encoder.video_streams == []
        assert_same(link.decoder.framebuffer, fb)


def test_without_h264_the_encoder_stays_lossless_and_the_decoder_says_why(monkeypatch: MonkeyPatch) -> None:
    """Stand-in: PyAV is installed here, so its absence (as on illumos) is simulated."""
    monkeypatch.setattr("wayray.codec.encoder.h264_unavailable", lambda: "PyAV is not installed (test)")
    monkeypatch.setattr("wayray.codec.decoder.h264_unavailable", lambda: "PyAV is not installed (test)")
    link = Link(W, H)
    pics = scenes.moving_picture(W, H)
    for i in range(12):
        fb = next(pics)
        link.send(fb, [(0, 0, W, H)], i / 30)
        assert_same(link.decoder.framebuffer, fb)
    assert RegionEncoding.H264 not in encodings(link.updates)
    region = Region(0, 0, 128, 128, RegionEncoding.H264, b"\0\0\0\1\x65", stream_id=1)
    update = FrameUpdate(
        seq=link.updates[-1].seq + 1, width=W, height=H, keyframe=False, regions=(region,), checksum=0
    )
    with pytest.raises(CodecError, match="cannot decode H.264.*PyAV is not installed"):
        link.decoder.apply(update)


def test_h264_is_available_on_this_machine() -> None:
    assert h264_unavailable() is None
