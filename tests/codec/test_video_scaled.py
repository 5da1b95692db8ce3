"""Video regions coded at half size (the ``video-scaled`` capability): the viewer scales them back up,
a stream switches size with an IDR and keeps its id, and the picture is exact once the video stops."""

from __future__ import annotations

import av
import numpy as np
import pytest

from bench import codec_scenes as scenes
from tests.codec.util import Link, assert_same, psnr
from wayray.codec import CodecError, Decoder, EncoderSettings
from wayray.codec.video import scaled_size
from wayray.wire.display import FrameUpdate, RegionEncoding

W, H = 800, 480  # 384,000 pixels: above the smallest region that is scaled
SCALING = EncoderSettings(video_scaling=True)


def _picture_size(idr: bytes) -> tuple[int, int]:
    """The size an IDR access unit's picture is coded at (its SPS says)."""
    ctx = av.CodecContext.create("h264", "r")
    frame = ctx.decode(av.Packet(idr))[-1]
    return frame.width, frame.height


def _video(update: FrameUpdate) -> list[bytes]:
    return [r.data for r in update.regions if r.encoding == RegionEncoding.H264 and r.data]


def _scaled_link(w: int = W, h: int = H, settings: EncoderSettings = SCALING) -> Link:
    link = Link(w, h, settings)
    link.decoder = Decoder(video_scaled=True)
    link.encoder.set_video_scaled(True)
    return link


def _play(link: Link, frames: int, *, first: int = 0, w: int = W, h: int = H) -> np.ndarray:
    pics = scenes.moving_picture(w, h)
    fb = next(pics)
    for i in range(first, first + frames):
        fb = next(pics)
        link.send(fb, [(0, 0, w, h)], i / 30)
    return fb


def test_a_big_video_region_goes_at_half_size_and_settles_exact() -> None:
    link = _scaled_link()
    fb = _play(link, 12)
    assert link.encoder.video_streams[0].rect == (0, 0, W, H)
    idrs = [au for u in link.updates for au in _video(u)][:1]
    assert _picture_size(idrs[0]) == (W // 2, H // 2)
    # The viewer shows it scaled back up to the whole rectangle: a faithful, if softer, picture.
    assert psnr(link.decoder.framebuffer, fb) > 25
    link.settle(fb, 12 / 30)
    assert link.encoder.video_streams == []
    assert_same(link.decoder.framebuffer, fb)
    assert not link.decoder.needs_keyframe


def test_a_stream_switches_size_with_an_idr_and_keeps_its_id() -> None:
    link = Link(W, H, SCALING)
    link.decoder = Decoder(video_scaled=True)
    _play(link, 10)
    (stream,) = link.encoder.video_streams
    sizes = []
    for n, scaled in enumerate((True, False, True)):
        link.encoder.set_video_scaled(scaled)
        before = len(link.updates)
        fb = _play(link, 4, first=10 + 4 * n)
        assert link.encoder.video_streams == [stream]  # the same stream, the same id
        sizes.append(_picture_size(_video(link.updates[before])[0]))
        assert psnr(link.decoder.framebuffer, fb) > 25
    assert sizes == [(W // 2, H // 2), (W, H), (W // 2, H // 2)]
    link.settle(fb, 22 / 30)
    assert_same(link.decoder.framebuffer, fb)


def test_odd_sized_regions_scale_to_an_even_picture_and_back_into_place() -> None:
    w, h = 777, 403  # half: 389x202, coded at 390x202
    assert scaled_size(w, h) == (390, 202)
    link = _scaled_link(w, h)
    fb = _play(link, 12, w=w, h=h)
    idr = [au for u in link.updates for au in _video(u)][0]
    assert _picture_size(idr) == (390, 202)
    assert psnr(link.decoder.framebuffer, fb) > 25
    link.settle(fb, 12 / 30)
    assert_same(link.decoder.framebuffer, fb)


def test_small_regions_and_viewers_without_the_capability_keep_full_size() -> None:
    small = _scaled_link(640, 352)  # 225,280 pixels: under the limit
    _play(small, 12, w=640, h=352)
    idr = [au for u in small.updates for au in _video(u)][0]
    assert _picture_size(idr) == (640, 352)
    # Without the capability the pump leaves video_scaling off, and set_video_scaled does nothing.
    plain = Link(W, H)
    plain.encoder.set_video_scaled(True)
    assert not plain.encoder.video_scaled
    _play(plain, 12)
    idr = [au for u in plain.updates for au in _video(u)][0]
    assert _picture_size(idr) == (W, H)


def test_a_viewer_that_did_not_take_the_capability_refuses_a_half_size_picture() -> None:
    link = _scaled_link()
    _play(link, 12)
    strict = Decoder()
    # It cannot show the picture and says why (CodecError: the viewer then waits for a keyframe). The
    # server never sends it half-size video: the pump scales only for a viewer that took the capability.
    with pytest.raises(CodecError, match="400x240, stream rectangle needs 800x480$"):
        for update in link.updates:
            strict.apply(update)
