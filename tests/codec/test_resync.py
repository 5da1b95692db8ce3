"""Divergence is noticed (checksum, sequence gap, bad data) and a keyframe brings the client back."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
import zstandard

from bench import codec_scenes as scenes
from tests.codec.util import Link, assert_same
from wayray.codec import (
    CodecError,
    Decoder,
    Desync,
    Encoder,
    EncoderSettings,
    frame_checksum,
    h264_unavailable,
)
from wayray.codec.checksum import TileChecksums
from wayray.codec.decoder import MAX_VIDEO_STREAMS
from wayray.codec.geometry import TileSpan
from wayray.wire.display import FrameUpdate, Region, RegionEncoding

W, H = 320, 240


def _typing_stream() -> list[tuple[np.ndarray, list[tuple[int, int, int, int]], float]]:
    return list(scenes.terminal_typing(W, H, text="uptime; df -h", cols=36, rows=12))


def test_checksum_is_the_documented_function() -> None:
    fb = scenes.wallpaper(W, H)
    link = Link(W, H)
    update = link.send(fb, [(0, 0, W, H)], 0.0)
    assert update is not None
    # docs/encoding.md: CRC-32 over width, height and the row-major tile CRC-32s, all u32 little-endian.
    tiles = [
        zlib.crc32(np.ascontiguousarray(fb[ty : ty + 64, tx : tx + 64]).tobytes())
        for ty in range(0, H, 64)
        for tx in range(0, W, 64)
    ]
    want = zlib.crc32(np.array([W, H, *tiles], dtype="<u4").tobytes())
    assert update.checksum == want == frame_checksum(fb)


def test_incremental_checksum_matches_a_full_recompute() -> None:
    rng = np.random.default_rng(1)
    fb = rng.integers(0, 2**32, size=(H, W), dtype=np.uint32)
    sums = TileChecksums(W, H)
    sums.refresh_all(fb)
    for _ in range(20):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        fb[y, x] ^= 1 << int(rng.integers(0, 32))
        sums.refresh_mask(fb, _mask_at(x, y))
        assert sums.value() == frame_checksum(fb)
    sums.blank(TileSpan(0, 2, 1, 3))
    assert sums.value() == frame_checksum(fb, [TileSpan(0, 2, 1, 3)]) != frame_checksum(fb)


def _mask_at(x: int, y: int) -> np.ndarray:
    m = np.zeros(((H + 63) // 64, (W + 63) // 64), dtype=bool)
    m[y // 64, x // 64] = True
    return m


def test_a_dropped_region_is_detected_and_a_keyframe_restores_the_picture() -> None:
    frames = _typing_stream()
    enc, dec = Encoder(W, H), Decoder()
    dec.apply(_encode(enc, frames[0]))
    assert not dec.needs_keyframe
    update = _encode(enc, frames[1])
    # A relay bug loses one region but keeps the rest of the update.
    dec.apply(dataclasses.replace(update, regions=update.regions[1:]))
    assert (
        dec.needs_keyframe
        and dec.desync == Desync.CHECKSUM_MISMATCH
        and "checksum" in (dec.desync_reason or "")
    )
    # Later deltas still apply (the picture keeps moving) but the flag stays until a keyframe.
    dec.apply(_encode(enc, frames[2]))
    assert dec.needs_keyframe
    enc.request_keyframe()
    keyframe = _encode(enc, frames[3])
    assert keyframe.keyframe
    dec.apply(keyframe)
    assert not dec.needs_keyframe and dec.desync is None
    assert_same(dec.framebuffer, frames[3][0])
    for frame in frames[4:]:
        dec.apply(_encode(enc, frame))
        assert not dec.needs_keyframe
        assert_same(dec.framebuffer, frame[0])


def test_corrupted_pixels_are_detected() -> None:
    frames = _typing_stream()
    enc, dec = Encoder(W, H), Decoder()
    dec.apply(_encode(enc, frames[0]))
    update = _encode(enc, frames[1])
    region = next(r for r in update.regions if r.encoding == RegionEncoding.XOR_ZSTD)
    w, h = region.width, region.height
    bogus = zstandard.ZstdCompressor().compress(np.full((h, w), 0x00010101, dtype="<u4").tobytes())
    bad = tuple(dataclasses.replace(r, data=bogus) if r is region else r for r in update.regions)
    dec.apply(dataclasses.replace(update, regions=bad))
    assert dec.needs_keyframe


def test_a_lost_update_is_noticed_by_its_sequence_number() -> None:
    frames = _typing_stream()
    enc, dec = Encoder(W, H), Decoder()
    dec.apply(_encode(enc, frames[0]))
    _encode(enc, frames[1])  # never delivered
    dec.apply(_encode(enc, frames[2]))
    assert dec.needs_keyframe and dec.desync == Desync.UPDATES_LOST and "lost" in (dec.desync_reason or "")


def test_deltas_before_the_first_keyframe_are_ignored() -> None:
    frames = _typing_stream()
    enc, dec = Encoder(W, H), Decoder()
    _encode(enc, frames[0])
    assert dec.apply(_encode(enc, frames[1])) == []
    assert dec.framebuffer is None and dec.needs_keyframe
    enc.request_keyframe()
    dec.apply(_encode(enc, frames[2]))
    assert not dec.needs_keyframe
    assert_same(dec.framebuffer, frames[2][0])


def test_forced_keyframe_in_encode() -> None:
    frames = _typing_stream()
    enc = Encoder(W, H)
    _encode(enc, frames[0])
    fb, damage, now = frames[1]
    update = enc.encode(fb, damage, now=now, force_keyframe=True)
    assert update is not None and update.keyframe
    fresh = Decoder()
    fresh.apply(update)
    assert_same(fresh.framebuffer, fb)


def _encode(enc: Encoder, frame: tuple[np.ndarray, list[tuple[int, int, int, int]], float]) -> FrameUpdate:
    fb, damage, now = frame
    update = enc.encode(fb, damage, now=now)
    assert update is not None
    return update


# --- malformed input: a clear error, never a crash or a huge allocation ---------------------------


def _synced_decoder() -> tuple[Decoder, FrameUpdate]:
    enc, dec = Encoder(W, H, EncoderSettings(video=False)), Decoder()
    key = enc.encode(scenes.wallpaper(W, H), [], now=0.0)
    assert key is not None
    dec.apply(key)
    return dec, key


def _delta(seq: int, *regions: Region) -> FrameUpdate:
    return FrameUpdate(seq=seq, width=W, height=H, keyframe=False, regions=regions, checksum=0)


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (Region(300, 0, 64, 10, RegionEncoding.FILL, b"\0\0\0\0"), "outside"),
        (Region(0, 0, 0, 10, RegionEncoding.FILL, b"\0\0\0\0"), "outside"),
        (Region(0, 0, 8, 8, RegionEncoding.FILL, b"\0\0"), "needs 4"),
        (Region(0, 0, 8, 8, RegionEncoding.RAW_ZSTD, b"not zstd"), "zstd"),
        (
            Region(0, 0, 8, 8, RegionEncoding.RAW_ZSTD, zstandard.compress(bytes(8 * 8 * 4 + 4))),
            "rectangle needs",
        ),
        # A zstd bomb: a tiny frame declaring 4 GiB must be refused before anything is allocated.
        (Region(0, 0, 8, 8, RegionEncoding.XOR_ZSTD, zstandard.compress(bytes(1 << 20))), "rectangle needs"),
        (Region(0, 0, 8, 8, RegionEncoding.COPY, b"\x00" * 7), "needs 8"),
        (Region(0, 0, 64, 64, RegionEncoding.COPY, (300).to_bytes(4, "little") + bytes(4)), "outside"),
        (Region(0, 0, 64, 64, RegionEncoding.H264, b"\x00\x00\x00\x01\x41garbage", stream_id=9), "H.264"),
    ],
)
def test_malformed_regions_raise_a_codec_error_and_wait_for_a_keyframe(region: Region, message: str) -> None:
    dec, key = _synced_decoder()
    with pytest.raises(CodecError, match=message):
        dec.apply(_delta(key.seq + 1, region))
    assert dec.needs_keyframe and dec.desync == Desync.BAD_UPDATE


def test_a_keyframe_with_an_absurd_size_is_refused() -> None:
    dec = Decoder()
    huge = FrameUpdate(seq=1, width=100_000, height=100_000, keyframe=True, regions=(), checksum=0)
    with pytest.raises(CodecError, match="size"):
        dec.apply(huge)
    assert dec.framebuffer is None


@pytest.mark.skipif(h264_unavailable() is not None, reason="needs PyAV with libx264")
def test_video_streams_may_neither_overlap_nor_pile_up() -> None:
    # Each stream is an H.264 decoder with its own pictures: a server sending many streams over the
    # same pixels (one small access unit, repeated) must not make the viewer allocate a screen each.
    from wayray.codec.video import H264StreamEncoder

    au = H264StreamEncoder(64, 64, bitrate=2_000_000).encode(np.zeros((64, 64), np.uint32), idr=True)
    dec, key = _synced_decoder()
    dec.apply(_delta(key.seq + 1, Region(0, 0, 64, 64, RegionEncoding.H264, au, stream_id=1)))
    with pytest.raises(CodecError, match="overlaps"):
        dec.apply(_delta(key.seq + 2, Region(32, 0, 64, 64, RegionEncoding.H264, au, stream_id=2)))
    dec, key = _synced_decoder()
    tiles = [(x, y) for y in range(0, H - 63, 64) for x in range(0, W - 63, 64)]
    assert len(tiles) > MAX_VIDEO_STREAMS
    regions = [
        Region(x, y, 64, 64, RegionEncoding.H264, au, stream_id=i + 1) for i, (x, y) in enumerate(tiles)
    ]
    with pytest.raises(CodecError, match=f"more than {MAX_VIDEO_STREAMS} video streams"):
        dec.apply(_delta(key.seq + 1, *regions))
    with pytest.raises(ValueError, match="video_max_streams"):
        EncoderSettings(video_max_streams=MAX_VIDEO_STREAMS + 1)


@pytest.mark.skipif(h264_unavailable() is not None, reason="needs PyAV with libx264")
def test_an_access_unit_bigger_than_its_stream_is_refused_undecoded() -> None:
    from wayray.codec.video import H264StreamDecoder, H264StreamEncoder

    au = H264StreamEncoder(1024, 1024, bitrate=2_000_000).encode(np.zeros((1024, 1024), np.uint32), idr=True)
    assert len(au) < 16384  # a black picture: tiny to send, 1.5 MiB to decode
    with pytest.raises(CodecError, match="failed to decode"):
        H264StreamDecoder(64, 64).decode(au)
