"""The cursor: its image crosses the wire only when it changes; moving it costs a position."""

from __future__ import annotations

import numpy as np
import pytest

from wayray.codec import CodecError, CursorDecoder, CursorEncoder, CursorShape
from wayray.wire.display import CursorImage, CursorPosition


def _shape(seed: int, size: int = 24, hotspot: tuple[int, int] = (1, 1)) -> CursorShape:
    rng = np.random.default_rng(seed)
    return CursorShape.from_array(rng.integers(0, 2**32, size=(size, size), dtype=np.uint32), *hotspot)


def _deliver(dec: CursorDecoder, messages: list[CursorImage | CursorPosition]) -> None:
    for m in messages:
        dec.apply(m)


def test_image_sent_once_then_only_positions() -> None:
    enc, dec = CursorEncoder(), CursorDecoder()
    arrow = _shape(1)
    first = enc.set_shape(arrow)
    assert [type(m) for m in first] == [CursorImage, CursorPosition]
    _deliver(dec, first)
    for x in range(10, 20):
        msgs = enc.move(x, 2 * x)
        assert msgs == [CursorPosition(x, 2 * x, True, first[0].serial)]
        _deliver(dec, msgs)
    assert enc.set_shape(_shape(1)) == []  # the same image again: nothing to send
    assert enc.move(19, 38) == []  # not moved: nothing to send
    state = dec.state
    assert state is not None and (state.x, state.y, state.hotspot_x, state.hotspot_y) == (19, 38, 1, 1)
    assert state.image.tobytes() == arrow.pixels


def test_every_new_image_has_a_new_serial() -> None:
    """Switching back to an earlier cursor resends it: the client never relies on an image it may lack."""
    enc, dec = CursorEncoder(), CursorDecoder()
    arrow, ibeam = _shape(1), _shape(2, size=16, hotspot=(8, 8))
    sent = [enc.set_shape(arrow), enc.set_shape(ibeam), enc.set_shape(arrow)]
    images = [m[0] for m in sent]
    assert all(isinstance(i, CursorImage) for i in images)
    assert len({i.serial for i in images if isinstance(i, CursorImage)}) == 3
    for msgs in sent:
        _deliver(dec, msgs)
    state = dec.state
    assert state is not None and state.image.tobytes() == arrow.pixels
    assert (state.hotspot_x, state.hotspot_y) == (1, 1)


def test_position_overtaking_its_image_is_drawn_once_the_image_arrives() -> None:
    enc, dec = CursorEncoder(), CursorDecoder()
    image, position = enc.set_shape(_shape(5))
    dec.apply(position)
    assert dec.state is None
    dec.apply(image)
    assert dec.state is not None


def test_update_from_the_compositors_cursor_state() -> None:
    enc, dec = CursorEncoder(), CursorDecoder()
    img = np.full((16, 16), 0xFF00FF00, dtype=np.uint32)
    first = enc.update(img, (3, 4), 10, 20)
    assert [type(m) for m in first] == [CursorImage, CursorPosition]
    assert enc.update(img.copy(), (3, 4), 10, 20) == []
    assert enc.update(img, (3, 4), 11, 20) == [CursorPosition(11, 20, True, first[0].serial)]
    assert enc.update(img, (3, 4), 11, 20, visible=False) == [CursorPosition(11, 20, False, 0)]
    _deliver(dec, first)
    state = dec.state
    assert state is not None and (state.x, state.hotspot_y) == (10, 4)


def test_hidden_cursor() -> None:
    enc, dec = CursorEncoder(), CursorDecoder()
    _deliver(dec, enc.set_shape(_shape(3)))
    hide = enc.set_shape(None)
    assert hide == [CursorPosition(0, 0, False, 0)]
    _deliver(dec, hide)
    assert dec.state is None
    assert enc.move(5, 5) == [CursorPosition(5, 5, False, 0)]


def test_snapshot_for_a_new_client() -> None:
    enc = CursorEncoder()
    enc.set_shape(_shape(4))
    enc.move(100, 50)
    dec = CursorDecoder()
    _deliver(dec, enc.snapshot())
    state = dec.state
    assert state is not None and (state.x, state.y) == (100, 50)


def test_position_before_its_image_draws_nothing() -> None:
    dec = CursorDecoder()
    dec.apply(CursorPosition(1, 1, True, 42))
    assert dec.state is None


def test_malformed_cursor_image() -> None:
    dec = CursorDecoder()
    with pytest.raises(CodecError, match="corrupt"):
        dec.apply(CursorImage(1, 4, 4, 0, 0, b"junk"))
    with pytest.raises(CodecError, match="size"):
        dec.apply(CursorImage(1, 5000, 4, 0, 0, b""))
    with pytest.raises(ValueError, match="bytes"):
        CursorShape(4, 4, 0, 0, b"\0" * 10)
