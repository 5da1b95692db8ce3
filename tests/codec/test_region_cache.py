"""The region cache: pixels the viewer already saw in a small region go as a slot number, both sides
stay in step through keyframes and evictions, and a viewer without the cache never gets one."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import codec_scenes as scenes
from tests.codec.util import Link, assert_same, wire_bytes
from wayray.codec import CodecError, Decoder, EncoderSettings
from wayray.codec.cache import MAX_PIXELS, SLOTS
from wayray.wire.display import FrameUpdate, Region, RegionEncoding

LOSSLESS = EncoderSettings(video=False)
CACHED = dataclasses.replace(LOSSLESS, region_cache=True)
#: Text with letters that come back, as typed text does.
TEXT = "the cat sat on the mat and the rat ate the hat; that is that " * 2


def typed(text: str = TEXT) -> list[scenes.Frame]:
    return list(scenes.terminal_typing(900, 760, text=text, cols=100, rows=40))


def test_letters_typed_again_go_as_a_slot_and_the_viewer_stays_exact() -> None:
    frames = typed()
    with_cache, without = Link(900, 760, CACHED), Link(900, 760, LOSSLESS)
    with_cache.run(frames)  # exact after every frame
    without.run(frames)
    kinds = [r.encoding for u in with_cache.updates[1:] for r in u.regions]
    assert RegionEncoding.CACHED not in {r.encoding for u in without.updates for r in u.regions}
    # The first time a letter (with the text cursor after it) is typed its pixels go; after that it
    # is named: most of the second round of the sentence is slot numbers.
    second_round = [r.encoding for u in with_cache.updates[1 + len(TEXT) // 2 :] for r in u.regions]
    assert second_round.count(RegionEncoding.CACHED) >= 0.9 * len(TEXT) // 2
    assert kinds.count(RegionEncoding.CACHED) < len(kinds)
    sent = sum(wire_bytes(u) for u in with_cache.updates[1:])
    before = sum(wire_bytes(u) for u in without.updates[1:])
    assert sent < 0.6 * before, (sent, before)


def test_a_keyframe_empties_the_cache_on_both_sides() -> None:
    frames = typed("aaaa")
    link = Link(900, 760, CACHED)
    link.run(frames[:3])  # the keyframe, then "a" twice: the second "a" is named
    assert link.updates[-1].regions[0].encoding == RegionEncoding.CACHED
    link.encoder.request_keyframe()
    link.run(frames[3:4])
    assert link.updates[-1].keyframe
    fb, damage, now = frames[3]
    fb2, damage2, now2 = frames[4]
    link.run([(fb2, damage2, now2)])
    # What was cached before the keyframe is gone on both sides: the letter goes as pixels again.
    assert {r.encoding for r in link.updates[-1].regions} <= {
        RegionEncoding.RAW_ZSTD,
        RegionEncoding.XOR_ZSTD,
    }


def _blocks(n: int, size: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 1 << 32, (size, size), dtype=np.uint32) for _ in range(n)]


def test_more_regions_than_slots_keep_both_sides_in_step() -> None:
    """The oldest slot is replaced: a block seen SLOTS regions ago goes as pixels again, a recent one
    as a slot, and the viewer is exact throughout."""
    w, h = 256, 128
    fb = np.zeros((h, w), dtype=np.uint32)
    link = Link(w, h, CACHED)
    link.send(fb, [(0, 0, w, h)], 0.0)
    blocks = _blocks(SLOTS + 20)
    t = 0.0

    def show(block: np.ndarray, x: int) -> FrameUpdate:
        nonlocal t
        t += 1.0  # far apart: nothing looks like an animation
        fb[8:16, x : x + 8] = block
        update = link.send(fb, [(x, 8, 8, 8)], t)
        assert update is not None
        assert_same(link.decoder.framebuffer, fb)
        return update

    for i, block in enumerate(blocks):
        show(block, 8 * (i % 2))  # two places, so that every block changes the picture
    old = show(blocks[0], 64)  # its slot was taken by block SLOTS
    recent = show(blocks[-3], 64 + 8 * 4)
    assert old.regions[0].encoding != RegionEncoding.CACHED
    assert recent.regions[0].encoding == RegionEncoding.CACHED


def test_big_regions_are_not_cached() -> None:
    w, h = 256, 128
    fb = np.zeros((h, w), dtype=np.uint32)
    link = Link(w, h, CACHED)
    link.send(fb, [(0, 0, w, h)], 0.0)
    side = int(np.sqrt(MAX_PIXELS)) + 8
    (block,) = _blocks(1, side)
    for i, x in enumerate((0, side + 4, 0)):
        fb[:] = 0
        fb[0:side, x : x + side] = block
        update = link.send(fb, [(0, 0, w, h)], 1.0 + i)
        assert update is not None
        assert RegionEncoding.CACHED not in {r.encoding for r in update.regions}
        assert_same(link.decoder.framebuffer, fb)


def _decoder_with_one_slot() -> tuple[Decoder, FrameUpdate]:
    link = Link(900, 760, CACHED)
    link.run(typed("aa"))
    last = link.updates[-1]
    assert last.regions[0].encoding == RegionEncoding.CACHED
    return link.decoder, last


@pytest.mark.parametrize(
    ("data", "size", "message"),
    [
        (struct.pack("<H", 7), None, "slot 7, which holds nothing"),
        (struct.pack("<H", SLOTS), None, f"slot {SLOTS}; there are {SLOTS}"),
        (b"\x00", None, "must be 2 bytes"),
        (struct.pack("<H", 0), (5, 5), "slot 0 holds"),
    ],
)
def test_a_bad_cached_region_is_refused_and_the_viewer_waits_for_a_keyframe(
    data: bytes, size: tuple[int, int] | None, message: str
) -> None:
    decoder, last = _decoder_with_one_slot()
    r = last.regions[0]
    w, h = size or (r.width, r.height)
    bad = dataclasses.replace(
        last, seq=last.seq + 1, regions=(dataclasses.replace(r, data=data, width=w, height=h),)
    )
    before = decoder.framebuffer.copy()  # type: ignore[union-attr]
    with pytest.raises(CodecError, match=message):
        decoder.apply(bad)
    assert decoder.needs_keyframe
    assert np.array_equal(decoder.framebuffer, before)  # type: ignore[arg-type]


def test_a_keyframe_s_regions_are_not_remembered() -> None:
    """A CACHED region right after a keyframe names nothing, even when the keyframe's one region is
    small enough to be cached: a keyframe leaves the cache empty on both sides."""
    (block,) = _blocks(1, 48)
    link = Link(48, 48, CACHED)
    keyframe = link.send(block, [(0, 0, 48, 48)], 0.0)
    assert keyframe is not None and [r.encoding for r in keyframe.regions] == [RegionEncoding.RAW_ZSTD]
    named = Region(0, 0, 48, 48, RegionEncoding.CACHED, struct.pack("<H", 0))
    bad = dataclasses.replace(keyframe, seq=keyframe.seq + 1, keyframe=False, regions=(named,))
    with pytest.raises(CodecError, match="holds nothing"):
        link.decoder.apply(bad)


def test_the_regions_of_an_update_are_remembered_in_order() -> None:
    """Two regions in one update take two slots, in the order they are applied (the decoder's rule
    and the encoder's must agree, or the picture would be wrong after a few letters)."""
    w, h = 256, 128
    fb = np.zeros((h, w), dtype=np.uint32)
    link = Link(w, h, CACHED)
    link.send(fb, [(0, 0, w, h)], 0.0)
    a, b = _blocks(2)
    fb[0:8, 0:8] = a
    fb[0:8, 128:136] = b
    link.send(fb, [(0, 0, w, h)], 1.0)
    fb[:] = 0
    link.send(fb, [(0, 0, w, h)], 2.0)
    fb[64:72, 128:136] = b
    fb[64:72, 0:8] = a
    update = link.send(fb, [(0, 0, w, h)], 3.0)
    assert update is not None
    assert [r.encoding for r in update.regions] == [RegionEncoding.CACHED] * 2
    assert sorted(struct.unpack("<H", r.data)[0] for r in update.regions) == [0, 1]
    assert_same(link.decoder.framebuffer, fb)


def test_region_data_layout() -> None:
    """CACHED's data is the slot as a little-endian u16 (docs/encoding.md)."""
    region = Region(1, 2, 3, 4, RegionEncoding.CACHED, struct.pack("<H", 258))
    assert region.data == b"\x02\x01"


# --- property: stamps of a few small pictures, scrolls, noise and keyframes in any order ------------

W, H = 150, 131  # not multiples of the tile: edge tiles are cut
STAMPS = _blocks(3, 12)
step = st.one_of(
    st.tuples(st.just("stamp"), st.integers(0, 2), st.integers(0, W - 12), st.integers(0, H - 12)),
    st.tuples(st.just("noise"), st.integers(1, 40), st.integers(0, W - 40), st.integers(0, H - 40)),
    st.tuples(st.just("scroll"), st.integers(1, 30), st.integers(0, 0), st.integers(0, 0)),
    st.tuples(st.just("keyframe"), st.integers(0, 0), st.integers(0, 0), st.integers(0, 0)),
)


@given(st.lists(st.lists(step, min_size=1, max_size=4), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_sequence_stays_exact_with_the_cache(sequence: list[list[tuple[str, int, int, int]]]) -> None:
    rng = np.random.default_rng(1)
    fb = scenes.wallpaper(W, H)
    link = Link(W, H, dataclasses.replace(CACHED, scroll_min_size=8, scroll_min_rows=2))
    link.send(fb, [(0, 0, W, H)], 0.0)
    for i, changes in enumerate(sequence):
        damage = []
        for kind, a, x, y in changes:
            if kind == "stamp":
                fb[y : y + 12, x : x + 12] = STAMPS[a]
                damage.append((x, y, 12, 12))
            elif kind == "noise":
                fb[y : y + a, x : x + a] = rng.integers(0, 1 << 32, (a, a), dtype=np.uint32)
                damage.append((x, y, a, a))
            elif kind == "scroll":
                fb[: H - a] = fb[a:].copy()
                damage.append((0, 0, W, H))
            else:
                link.encoder.request_keyframe()
        link.send(fb, damage, 1.0 * (i + 1))  # a second apart: nothing becomes video
        assert_same(link.decoder.framebuffer, fb)
