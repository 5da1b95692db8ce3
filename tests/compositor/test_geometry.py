"""Pure geometry: xdg_positioner rules and the buffer/surface/output maps."""

from __future__ import annotations

import pytest

from wayray.compositor.geometry import Rect, Transform, apply, buffer_mapping, output_to_buffer
from wayray.compositor.positioner import Adjust, Anchor, PositionerRules, place

OUTPUT = Rect(0, 0, 1000, 800)


def rules(**kw: object) -> PositionerRules:
    base = dict(width=200, height=100, anchor_rect=Rect(50, 40, 20, 10))
    base.update(kw)
    return PositionerRules(**base)  # type: ignore[arg-type]


def test_anchor_and_gravity_put_a_menu_below_right_of_the_anchor_point() -> None:
    r = rules(anchor=Anchor.BOTTOM_LEFT, gravity=Anchor.BOTTOM_RIGHT)
    assert place(r, OUTPUT) == Rect(50, 50, 200, 100)


def test_no_anchor_no_gravity_centres_on_the_anchor_rect_and_offset_applies() -> None:
    r = rules(offset_x=3, offset_y=-4)
    assert place(r, OUTPUT) == Rect(60 - 100 + 3, 45 - 50 - 4, 200, 100)


def test_flip_y_when_the_popup_would_leave_the_bottom() -> None:
    r = rules(
        anchor_rect=Rect(50, 750, 20, 10), anchor=Anchor.BOTTOM, gravity=Anchor.BOTTOM, adjust=Adjust.FLIP_Y
    )
    assert place(r, OUTPUT) == Rect(60 - 100, 650, 200, 100)  # above the anchor rect instead


def test_flip_is_skipped_when_flipping_does_not_help_and_slide_takes_over() -> None:
    r = rules(
        width=200,
        height=700,
        anchor_rect=Rect(10, 400, 10, 10),
        anchor=Anchor.BOTTOM,
        gravity=Anchor.BOTTOM,
        adjust=Adjust.FLIP_Y | Adjust.SLIDE_Y,
    )
    assert place(r, OUTPUT).y == 100  # slid up to end at the output's bottom edge


def test_slide_x_keeps_the_left_edge_visible_first() -> None:
    r = rules(
        width=1200,
        anchor_rect=Rect(900, 10, 10, 10),
        anchor=Anchor.TOP_LEFT,
        gravity=Anchor.BOTTOM_RIGHT,
        adjust=Adjust.SLIDE_X,
    )
    assert place(r, OUTPUT).x == 0


def test_resize_shrinks_to_the_bounds() -> None:
    r = rules(
        width=300,
        anchor_rect=Rect(900, 10, 10, 10),
        anchor=Anchor.TOP_LEFT,
        gravity=Anchor.BOTTOM_RIGHT,
        adjust=Adjust.RESIZE_X,
    )
    assert place(r, OUTPUT) == Rect(900, 10, 100, 100)


def test_unconstrained_popups_are_left_alone_even_with_adjustments() -> None:
    r = rules(anchor=Anchor.BOTTOM_LEFT, gravity=Anchor.BOTTOM_RIGHT, adjust=Adjust(63))
    assert place(r, OUTPUT) == Rect(50, 50, 200, 100)


@pytest.mark.parametrize(
    ("transform", "surface_point", "buffer_point"),
    [
        (Transform.NORMAL, (1, 2), (1, 2)),
        (Transform.ROTATE_90, (0, 0), (0, 40)),  # surface is 40x30 for a 30x40 buffer
        (Transform.ROTATE_180, (0, 0), (30, 40)),
        (Transform.ROTATE_270, (0, 0), (30, 0)),
        (Transform.FLIPPED, (0, 0), (30, 0)),
    ],
)
def test_buffer_transforms_map_surface_points_like_weston(
    transform: Transform, surface_point: tuple[int, int], buffer_point: tuple[int, int]
) -> None:
    m = buffer_mapping(30, 40, 1, transform, None, None)
    assert (m.surface_width, m.surface_height) == ((40, 30) if transform.swaps_axes else (30, 40))
    assert apply(m.surface_to_buffer, *surface_point) == pytest.approx(buffer_point)


def test_buffer_scale_and_viewport_give_the_surface_size_and_sampling() -> None:
    scaled = buffer_mapping(200, 100, 2, Transform.NORMAL, None, None)
    assert (scaled.surface_width, scaled.surface_height) == (100, 50)
    assert scaled.trivial  # only a scale: the renderer blits 1:1 when the output has the same scale
    vp = buffer_mapping(200, 100, 1, Transform.NORMAL, (50.0, 25.0, 100.0, 50.0), (400, 200))
    assert (vp.surface_width, vp.surface_height) == (400, 200)
    assert apply(vp.surface_to_buffer, 400, 200) == pytest.approx((150, 75))
    # Output scale 2 on a scale-2 buffer: output pixels are buffer pixels.
    assert apply(output_to_buffer(scaled, 2), 10, 20) == pytest.approx((10, 20))


def test_damage_rectangles_round_outward_through_the_maps() -> None:
    m = buffer_mapping(200, 100, 2, Transform.NORMAL, None, None)
    assert m.buffer_rect_to_surface(Rect(3, 3, 2, 2)) == Rect(1, 1, 2, 2)
    assert m.surface_rect_to_buffer(Rect(1, 1, 2, 2)) == Rect(2, 2, 4, 4)
