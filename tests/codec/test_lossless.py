"""The lossless path: what the client shows is the source, bit for bit, at a fraction of the bytes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import codec_scenes as scenes
from tests.codec.util import Link, assert_same, encodings, wire_bytes
from wayray.codec import Decoder, Encoder, EncoderSettings
from wayray.codec.geometry import TILE, tile_blocks, tile_grid
from wayray.codec.lossless import TileDiff, changed_tiles, diff_tiles
from wayray.wire.display import RegionEncoding

LOSSLESS = EncoderSettings(video=False)

#: waypipe 0.8.4 with zstd, weston-terminal, bytes up per typed character (waypipe-baseline.md (c)).
WAYPIPE_BYTES_PER_CHAR = 359


def test_first_update_is_a_keyframe_covering_the_output() -> None:
    fb = scenes.wallpaper(300, 200)
    link = Link(300, 200)
    update = link.send(fb, [(0, 0, 300, 200)], 0.0)
    assert update is not None and update.keyframe and update.seq == 1
    assert (update.width, update.height) == (300, 200)
    assert_same(link.decoder.framebuffer, fb)


def test_an_encoder_can_continue_the_seqs_of_another() -> None:
    """wrsrvd switches a viewer from the greeter's compositor to the user's on the same connection:
    the new encoder's keyframe carries on the seqs, and a decoder that showed the other picture
    takes it whole."""
    first = Link(300, 200)
    first.send(scenes.wallpaper(300, 200), [(0, 0, 300, 200)], 0.0)
    encoder = Encoder(320, 240, LOSSLESS, first_seq=17)
    fb = scenes.wallpaper(320, 240)
    update = encoder.encode(fb, [(0, 0, 320, 240)], now=0.0)
    assert update is not None and update.keyframe and update.seq == 17
    first.decoder.apply(update)
    assert not first.decoder.needs_keyframe
    assert_same(first.decoder.framebuffer, fb)
    with pytest.raises(ValueError):
        Encoder(10, 10, LOSSLESS, first_seq=0)


def test_typing_sends_only_the_new_character_and_stays_exact() -> None:
    link = Link(900, 760, LOSSLESS)
    frames = list(scenes.terminal_typing(900, 760, text="ls -l /etc/wayray", cols=100, rows=40))
    link.run(frames[:1])
    window = frames[1][1][0]
    sizes = []
    for fb, damage, now in frames[1:]:
        update = link.send(fb, damage, now)
        assert update is not None and not update.keyframe
        assert_same(link.decoder.framebuffer, fb)
        sizes.append(wire_bytes(update))
        # The damage is the whole terminal window; what is sent is two character cells (the new
        # glyph and the cursor that moved right), not the window.
        assert sum(r.width * r.height for r in update.regions) <= 3 * 8 * 17
        assert window[2] * window[3] > 100 * 8 * 17
    assert max(sizes) < WAYPIPE_BYTES_PER_CHAR, sizes


def test_scrolling_terminal_copies_rows_the_client_has() -> None:
    link = Link(900, 760, LOSSLESS)
    frames = list(scenes.terminal_scroll(900, 760, lines_per_frame=1, frames=12, cols=100, rows=40))
    link.run(frames[:1])
    for fb, damage, now in frames[1:]:
        update = link.send(fb, damage, now)
        assert update is not None
        assert_same(link.decoder.framebuffer, fb)
        kinds = [r.encoding for r in update.regions]
        assert kinds[0] == RegionEncoding.COPY, kinds
        # One new line of ~60 characters; the window is 800x680 pixels (2 MB raw).
        assert wire_bytes(update) < 2500


def test_a_scroll_right_after_a_keyframe_still_copies_rows() -> None:
    """The scroll search keeps each frame's row hashes as the model's for the next frame; a keyframe
    in between (the model then holds another picture) must not leave them behind."""
    link = Link(900, 760, LOSSLESS)
    frames = list(scenes.terminal_scroll(900, 760, lines_per_frame=1, frames=4, cols=100, rows=40))
    link.run(frames[:2])
    link.encoder.request_keyframe()
    fb, damage, now = frames[2]
    update = link.send(fb, damage, now)
    assert update is not None and update.keyframe
    fb, damage, now = frames[3]
    update = link.send(fb, damage, now)
    assert update is not None
    assert_same(link.decoder.framebuffer, fb)
    assert update.regions[0].encoding == RegionEncoding.COPY, [r.encoding for r in update.regions]


def test_text_flood_without_copy_still_exact_and_small() -> None:
    link = Link(900, 760, LOSSLESS)
    frames = scenes.terminal_scroll(
        900, 760, lines_per_frame=5000, frames=8, line=scenes.seq_line, cols=100, rows=40
    )
    link.run(frames)
    raw = 100 * 8 * 40 * 17 * 4
    assert all(wire_bytes(u) < raw / 50 for u in link.updates[1:])


def test_damaged_but_unchanged_pixels_send_nothing() -> None:
    fb = scenes.wallpaper(200, 150)
    link = Link(200, 150)
    link.send(fb, [(0, 0, 200, 150)], 0.0)
    assert link.send(fb, [(0, 0, 200, 150), (10, 10, 5, 5)], 0.1) is None
    assert link.send(fb, [], 0.2) is None


def test_damage_outside_the_output_is_clipped() -> None:
    fb = scenes.wallpaper(200, 150)
    link = Link(200, 150)
    link.send(fb, [(0, 0, 200, 150)], 0.0)
    fb = fb.copy()
    fb[140:150, 190:200] = 0xFF123456
    update = link.send(fb, [(-50, -50, 30, 30), (180, 130, 500, 500), (1000, 1000, 10, 10)], 0.1)
    assert update is not None
    assert [(r.x, r.y, r.width, r.height) for r in update.regions] == [(190, 140, 10, 10)]
    assert_same(link.decoder.framebuffer, fb)


def test_damage_as_rectangle_objects() -> None:
    """The compositor hands damage as frozen dataclasses with x, y, width, height."""

    @dataclasses.dataclass(frozen=True)
    class CompositorRect:
        x: int
        y: int
        width: int
        height: int

    fb = scenes.wallpaper(200, 150)
    link = Link(200, 150)
    link.send(fb, [CompositorRect(0, 0, 200, 150)], 0.0)
    fb = fb.copy()
    fb[10:20, 10:20] = 0
    update = link.send(fb, (CompositorRect(5, 5, 20, 20),), 0.1)
    assert update is not None and [(r.x, r.y, r.width, r.height) for r in update.regions] == [
        (10, 10, 10, 10)
    ]
    assert_same(link.decoder.framebuffer, fb)


def test_uniform_area_is_sent_as_fill() -> None:
    fb = scenes.wallpaper(300, 200)
    link = Link(300, 200)
    link.send(fb, [(0, 0, 300, 200)], 0.0)
    fb = fb.copy()
    fb[20:120, 30:230] = 0xFF336699  # a window closed, revealing a flat panel
    update = link.send(fb, [(30, 20, 200, 100)], 0.1)
    assert update is not None and encodings([update]) == {RegionEncoding.FILL}
    assert all(len(r.data) == 4 for r in update.regions)
    assert_same(link.decoder.framebuffer, fb)


def test_noise_frames_round_trip_exactly() -> None:
    rng = np.random.default_rng(5)
    link = Link(333, 211, LOSSLESS)
    for i in range(5):
        fb = rng.integers(0, 2**32, size=(211, 333), dtype=np.uint32)
        link.send(fb, [(0, 0, 333, 211)], i / 30)
        assert_same(link.decoder.framebuffer, fb)


def test_resize_sends_a_keyframe_at_the_new_size() -> None:
    link = Link(320, 200)
    link.send(scenes.wallpaper(320, 200), [(0, 0, 320, 200)], 0.0)
    link.encoder.resize(257, 129)
    fb = scenes.wallpaper(257, 129, seed=2)
    update = link.send(fb, [], 0.1)
    assert update is not None and update.keyframe and (update.width, update.height) == (257, 129)
    assert_same(link.decoder.framebuffer, fb)


def test_framebuffer_of_the_wrong_size_is_refused() -> None:
    enc = Encoder(100, 100)
    with pytest.raises(ValueError, match="call resize"):
        enc.encode(np.zeros((100, 101), dtype=np.uint32), [], now=0.0)


def test_encoder_is_deterministic() -> None:
    frames = list(scenes.terminal_typing(640, 480, text="abc", cols=60, rows=20))
    out = []
    for _ in range(2):
        enc = Encoder(640, 480, LOSSLESS)
        out.append([enc.encode(fb.copy(), d, now=t) for fb, d, t in frames])
    assert out[0] == out[1]


# --- property: any sequence of changes with honest damage round-trips exactly -------------------

W, H = 150, 131  # not multiples of the tile: edge tiles are cut

rects = st.tuples(
    st.integers(-20, W + 10), st.integers(-20, H + 10), st.integers(1, W + 30), st.integers(1, H + 30)
)
Op = tuple[str, tuple[int, int, int, int], int]
op = st.tuples(
    st.sampled_from(["fill", "noise", "scroll", "text", "nothing"]), rects, st.integers(0, 2**32 - 1)
)
#: Frames of one to three changes each; the damage is their rectangles (which may touch or overlap).
frames = st.lists(st.lists(op, min_size=1, max_size=3), min_size=1, max_size=10)


def _apply(
    fb: np.ndarray, kind: str, rect: tuple[int, int, int, int], value: int, rng: np.random.Generator
) -> None:
    x, y, w, h = rect
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if kind == "fill" and x1 > x0 and y1 > y0:
        fb[y0:y1, x0:x1] = value
    elif kind == "noise" and x1 > x0 and y1 > y0:
        fb[y0:y1, x0:x1] = rng.integers(0, 2**32, size=(y1 - y0, x1 - x0), dtype=np.uint32)
    elif kind == "scroll" and y1 - y0 > 2 and x1 > x0:
        dy = 1 + value % (y1 - y0 - 1)
        fb[y0 : y1 - dy, x0:x1] = fb[y0 + dy : y1, x0:x1].copy()
        fb[y1 - dy : y1, x0:x1] = value
    elif kind == "text" and x1 - x0 >= 8 and y1 - y0 >= 17:
        term = scenes.Terminal(cols=(x1 - x0) // 8, rows=(y1 - y0) // 17)
        term.write(f"{value:x} wayray {value % 977}")
        img = term.render()
        fb[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img


@given(frames)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_changes_round_trip_exactly(sequence: list[list[Op]]) -> None:
    rng = np.random.default_rng(0)
    fb = scenes.wallpaper(W, H)
    link = Link(W, H, EncoderSettings(video=False, scroll_min_size=8, scroll_min_rows=2))
    link.send(fb, [(0, 0, W, H)], 0.0)
    for i, changes in enumerate(sequence):
        for kind, rect, value in changes:
            _apply(fb, kind, rect, value, rng)
        link.send(fb, [rect for _, rect, _ in changes], 0.05 * (i + 1))
        assert_same(link.decoder.framebuffer, fb)


def test_decoder_framebuffer_is_independent_of_the_source() -> None:
    fb = scenes.wallpaper(64, 64)
    link = Link(64, 64)
    link.send(fb, [(0, 0, 64, 64)], 0.0)
    fb[:] = 0
    assert not np.array_equal(link.decoder.framebuffer, fb)
    assert isinstance(link.decoder, Decoder)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("video_qp_min", 60, "0..51"),
        ("zstd_level_small", 30, "zstd level"),
        ("scroll_min_rows", -1, "negative"),
        ("video_keep_fraction", 1.5, r"\(0, 1\]"),
        ("video_fast_changes", 9, "video_fast_changes"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        EncoderSettings(**{field: value})
    assert field in str(err.value)


def _tile_diff_reference(fb: np.ndarray, model: np.ndarray, damaged: np.ndarray) -> TileDiff:
    """Tile by tile, the obvious way: what diff_tiles must find."""
    rows, cols = damaged.shape
    ref = TileDiff.empty(rows, cols)
    for ty, tx in zip(*np.nonzero(damaged), strict=True):
        y0, x0 = int(ty) * TILE, int(tx) * TILE
        ne = fb[y0 : y0 + TILE, x0 : x0 + TILE] != model[y0 : y0 + TILE, x0 : x0 + TILE]
        if ne.any():
            ys, xs = np.nonzero(ne)
            ref.changed[ty, tx] = True
            ref.bbox[ty, tx] = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
            ref.count[ty, tx] = ne.sum()
    return ref


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_tile_diff_finds_exactly_the_changed_pixels_of_damaged_tiles(data: st.DataObject) -> None:
    width, height = data.draw(st.integers(1, 300)), data.draw(st.integers(1, 220))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    model = rng.integers(0, 4, size=(height, width), dtype=np.uint32)
    fb = model.copy()
    for _ in range(data.draw(st.integers(0, 6))):  # a few changed patches, some outside the damage
        x, y = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
        w, h = data.draw(st.integers(1, 70)), data.draw(st.integers(1, 70))
        fb[y : y + h, x : x + w] ^= rng.integers(0, 2, size=fb[y : y + h, x : x + w].shape, dtype=np.uint32)
    rows, cols = tile_grid(width, height)
    damaged = rng.random((rows, cols)) < data.draw(st.sampled_from([0.2, 0.6, 1.0]))
    got = TileDiff.empty(rows, cols)
    diff_tiles(fb, model, damaged, got)
    want = _tile_diff_reference(fb, model, damaged)
    assert np.array_equal(got.changed, want.changed)
    assert np.array_equal(got.count[want.changed], want.count[want.changed])
    assert np.array_equal(got.bbox[want.changed], want.bbox[want.changed])
    # changed_tiles (video streams' tiles) finds the same changed tiles, also in an output that is a
    # rectangle of a wider picture, starting at an odd pixel (its rows strided, its pixel pairs cut).
    only = TileDiff.empty(rows, cols)
    changed_tiles(fb, model, damaged, only)
    assert np.array_equal(only.changed, want.changed)
    wide_fb, wide_model = np.zeros((height, width + 3), np.uint32), np.zeros((height, width + 3), np.uint32)
    wide_fb[:, 1 : width + 1], wide_model[:, 1 : width + 1] = fb, model
    only = TileDiff.empty(rows, cols)
    changed_tiles(wide_fb[:, 1 : width + 1], wide_model[:, 1 : width + 1], damaged, only)
    assert np.array_equal(only.changed, want.changed)
    # The blocks diff_tiles works on cover the damaged tiles, each exactly once.
    cover = np.zeros((rows, cols), dtype=np.int64)
    for sp in tile_blocks(damaged):
        cover[sp.ty0 : sp.ty1, sp.tx0 : sp.tx1] += 1
    assert np.array_equal(cover, damaged.astype(np.int64))


def test_raw_or_xor_follows_the_content_when_it_changes_character() -> None:
    """The RAW/XOR winner is reused for a while, then tried again: an animation that turns into a
    terminal flood goes back to RAW within a few frames, and the picture stays exact throughout."""
    flood = scenes.terminal_scroll(
        640, 480, lines_per_frame=50, frames=12, line=scenes.seq_line, cols=40, rows=14
    )
    text_frames = list(flood)
    link = Link(640, 480, LOSSLESS)
    fb, _damage, _now = text_frames[0]
    link.send(fb, [(0, 0, 640, 480)], 0.0)
    # An animation: a quarter of the pixels change a little each frame (XOR wins).
    rng = np.random.default_rng(7)
    for i in range(12):
        mask = rng.random((480, 640)) < 0.25
        fb = np.where(mask, fb ^ np.uint32(1 << (i % 8)), fb).astype(np.uint32)
        link.send(fb, [(0, 0, 640, 480)], 0.05 * (i + 1))
    assert {r.encoding for r in link.updates[-1].regions} == {RegionEncoding.XOR_ZSTD}
    # Then unrelated text over it: RAW wins, and is found again after at most 8 reused frames.
    seen: list[RegionEncoding] = []
    for i, (text, _damage, _now) in enumerate(text_frames[1:]):
        update = link.send(text, [(0, 0, 640, 480)], 1.0 + 0.05 * i)
        assert update is not None
        assert_same(link.decoder.framebuffer, text)
        seen.append(max(update.regions, key=lambda r: r.width * r.height).encoding)
    assert seen[-1] == RegionEncoding.RAW_ZSTD, seen
