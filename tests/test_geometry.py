"""Box editing geometry without a window: what is under the pointer, and boxes stay in the photo."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raabin_labeler.core import geometry
from raabin_labeler.core.annotation import Box, Cell
from raabin_labeler.core.geometry import HANDLES, MIN_SIZE

W, H = 4160, 3120  # the Raabin-WBC phone photos


def cell(cid: str, *box: int) -> Cell:
    return Cell(cid, Box(*box))


# -- hit-testing ---------------------------------------------------------------------------
def test_smallest_box_under_the_pointer_wins_whatever_the_drawing_order():
    big, small, tiny = cell("big", 0, 0, 1000, 1000), cell("small", 100, 100, 400, 400), cell("tiny", 150, 150, 170, 170)
    for cells in ([big, small, tiny], [tiny, small, big], [small, tiny, big]):
        assert geometry.cell_at(cells, 160, 160).id == "tiny"
        assert geometry.cell_at(cells, 300, 300).id == "small"
        assert geometry.cell_at(cells, 900, 900).id == "big"
    assert geometry.cell_at([big, small], 1500, 10) is None
    assert geometry.cell_at([], 1, 1) is None


def test_overlapping_boxes_each_stay_reachable_in_their_own_part():
    left, right = cell("left", 0, 0, 300, 200), cell("right", 200, 0, 600, 200)
    cells = [left, right]
    assert geometry.cell_at(cells, 100, 100).id == "left"
    assert geometry.cell_at(cells, 250, 100).id == "left"  # overlap: the smaller one
    assert geometry.cell_at(cells, 500, 100).id == "right"


def test_eight_handles_at_corners_and_side_midpoints():
    points = geometry.handle_points(Box(100, 200, 300, 600))
    assert set(points) == set(HANDLES)
    assert points["nw"] == (100, 200) and points["se"] == (300, 600)
    assert points["n"] == (200, 200) and points["s"] == (200, 600)
    assert points["w"] == (100, 400) and points["e"] == (300, 400)


def test_handle_at_finds_handles_within_tolerance_only():
    box = Box(100, 200, 300, 600)
    assert geometry.handle_at(box, 103, 198, tolerance=5) == "nw"
    assert geometry.handle_at(box, 301, 402, tolerance=5) == "e"
    assert geometry.handle_at(box, 200, 604, tolerance=5) == "s"
    assert geometry.handle_at(box, 200, 400, tolerance=5) is None  # the inside moves, not resizes
    assert geometry.handle_at(box, 110, 200, tolerance=5) is None  # along the edge, between handles


def test_handle_at_picks_the_nearest_handle_on_a_small_box():
    box = Box(100, 100, 108, 108)  # handles 4 px apart, tolerance bigger than that
    assert geometry.handle_at(box, 100, 100, tolerance=10) == "nw"
    assert geometry.handle_at(box, 108, 109, tolerance=10) == "se"
    assert geometry.handle_at(box, 104, 99, tolerance=10) == "n"


# -- moves --------------------------------------------------------------------------------
@pytest.mark.parametrize("dx, dy, expected", [
    (50, 20, Box(150, 120, 250, 220)),
    (-500, 0, Box(0, 100, 100, 200)),  # stopped at the left edge, same size
    (0, -500, Box(100, 0, 200, 100)),
    (5000, 5000, Box(W - 100, H - 100, W, H)),
])
def test_moved_stops_at_the_photo_edges_without_resizing(dx, dy, expected):
    assert geometry.moved(Box(100, 100, 200, 200), dx, dy, W, H) == expected


# -- resizes ------------------------------------------------------------------------------
@pytest.mark.parametrize("handle, x, y, expected", [
    ("nw", 50, 60, Box(50, 60, 300, 400)),
    ("n", 999, 60, Box(100, 60, 300, 400)),  # a side handle moves one side only
    ("ne", 350, 60, Box(100, 60, 350, 400)),
    ("e", 350, 999, Box(100, 200, 350, 400)),
    ("se", 350, 450, Box(100, 200, 350, 450)),
    ("s", 0, 450, Box(100, 200, 300, 450)),
    ("sw", 50, 450, Box(50, 200, 300, 450)),
    ("w", 50, 0, Box(50, 200, 300, 400)),
])
def test_each_handle_moves_its_own_sides(handle, x, y, expected):
    assert geometry.resized(Box(100, 200, 300, 400), handle, x, y, W, H) == expected


def test_resize_past_the_opposite_side_keeps_a_minimal_box():
    box = Box(100, 200, 300, 400)
    assert geometry.resized(box, "e", 0, 300, W, H) == Box(100, 200, 100 + MIN_SIZE, 400)
    assert geometry.resized(box, "nw", 1000, 1000, W, H) == Box(300 - MIN_SIZE, 400 - MIN_SIZE, 300, 400)


def test_resize_beyond_the_photo_stops_at_its_edge():
    box = Box(100, 200, 300, 400)
    assert geometry.resized(box, "nw", -80, -90, W, H) == Box(0, 0, 300, 400)
    assert geometry.resized(box, "se", W + 500, H + 500, W, H) == Box(100, 200, W, H)


# -- new boxes ----------------------------------------------------------------------------
def test_box_from_drag_in_any_direction_and_clipped_to_the_photo():
    assert geometry.box_from_drag(300, 400, 100, 200, W, H) == Box(100, 200, 300, 400)
    assert geometry.box_from_drag(-50, -50, 100.4, 99.6, W, H) == Box(0, 0, 100, 100)
    assert geometry.box_from_drag(W - 10, 10, W + 300, 40, W, H) == Box(W - 10, 10, W, 40)


def test_a_click_or_a_tiny_drag_draws_no_box():
    assert geometry.box_from_drag(100, 100, 100, 100, W, H) is None
    assert geometry.box_from_drag(100, 100, 102, 300, W, H) is None
    assert geometry.box_from_drag(-100, 10, -10, 90, W, H) is None  # entirely off the photo


def test_placed_box_is_575_px_centred_on_the_click():
    assert geometry.placed_box(1000, 1000, 575, W, H) == Box(712, 712, 1287, 1287)


@pytest.mark.parametrize("cx, cy", [(0, 0), (W, H), (10, H - 3), (W - 1, 5), (W / 2, 2)])
def test_placed_box_near_an_edge_is_shifted_in_not_shrunk(cx, cy):
    box = geometry.placed_box(cx, cy, 575, W, H)
    assert box.inside(W, H) and (box.width, box.height) == (575, 575)


def test_placed_box_on_a_photo_smaller_than_the_default_size_fills_its_short_side():
    box = geometry.placed_box(200, 100, 575, 400, 300)
    assert box.inside(400, 300) and (box.width, box.height) == (300, 300)


# -- boxes never leave the photo (properties over random drags) ------------------------------
coords = st.floats(min_value=-3000, max_value=3000, allow_nan=False)


@st.composite
def photo_and_box(draw):
    w, h = draw(st.integers(8, 5000)), draw(st.integers(8, 5000))
    x1, y1 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
    x2, y2 = draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h))
    return w, h, Box(x1, y1, x2, y2)


@settings(max_examples=200, deadline=None)
@given(photo_and_box(), coords, coords)
def test_moved_box_is_inside_and_the_same_size(pb, dx, dy):
    w, h, box = pb
    out = geometry.moved(box, round(dx), round(dy), w, h)
    assert out.inside(w, h) and (out.width, out.height) == (box.width, box.height)


@settings(max_examples=300, deadline=None)
@given(photo_and_box(), st.sampled_from(HANDLES), coords, coords)
def test_resized_box_is_inside_and_never_inverted(pb, handle, x, y):
    w, h, box = pb
    out = geometry.resized(box, handle, x, y, w, h)  # Box itself refuses x2 <= x1
    assert out.inside(w, h)


@settings(max_examples=200, deadline=None)
@given(st.integers(8, 5000), st.integers(8, 5000), coords, coords, st.integers(8, 2000))
def test_placed_box_is_inside_and_square(w, h, cx, cy, size):
    out = geometry.placed_box(cx, cy, size, w, h)
    assert out.inside(w, h) and out.width == out.height == min(size, w, h)


# -- Tab order ----------------------------------------------------------------------------
def test_reading_order_is_rows_top_to_bottom_then_left_to_right():
    cells = [cell("r2-right", 900, 700, 1000, 800), cell("r1-right", 800, 110, 900, 210),
             cell("r2-left", 100, 690, 200, 790), cell("r1-left", 50, 100, 150, 200),
             cell("r1-mid", 400, 130, 500, 230)]
    order = [c.id for c in geometry.reading_order(cells)]
    assert order == ["r1-left", "r1-mid", "r1-right", "r2-left", "r2-right"]
    assert geometry.reading_order([]) == []


def test_level_cells_on_a_row_band_boundary_are_read_left_to_right():
    left, right = cell("left", 0, 51, 100, 151), cell("right", 300, 49, 400, 149)  # centres y 101, 99
    assert [c.id for c in geometry.reading_order([right, left])] == ["left", "right"]
