"""Zoom and pan: the point under the pointer stays put, fit shows and centres the whole photo."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raabin_labeler.app.view import MAX_ZOOM, MIN_ZOOM, ViewTransform

W, H = 4160, 3120
CW, CH = 1200, 800


def test_screen_and_image_coordinates_are_inverse():
    view = ViewTransform(zoom=0.37, origin_x=-120.5, origin_y=300.25)
    sx, sy = view.to_screen(*view.to_image(431, 217))
    assert (sx, sy) == pytest.approx((431, 217))


@settings(max_examples=200, deadline=None)
@given(st.floats(0.05, 8), st.floats(-5000, 5000), st.floats(-5000, 5000),
       st.floats(0, CW), st.floats(0, CH), st.floats(0.1, 10))
def test_zoom_at_keeps_the_image_point_under_the_pointer(zoom, ox, oy, sx, sy, factor):
    view = ViewTransform(zoom, ox, oy)
    before = view.to_image(sx, sy)
    view.zoom_at(sx, sy, factor)
    assert view.to_image(sx, sy) == pytest.approx(before, abs=1e-6)


def test_zoom_is_clamped_and_the_pointer_point_still_holds_at_the_limit():
    view = ViewTransform(zoom=10.0)
    before = view.to_image(300, 200)
    view.zoom_at(300, 200, 100.0)
    assert view.zoom == MAX_ZOOM
    assert view.to_image(300, 200) == pytest.approx(before)
    view.zoom_at(10, 10, 1e-9)
    assert view.zoom == MIN_ZOOM


def test_wheel_in_then_out_returns_to_the_same_view():
    view = ViewTransform(0.25, 100, 50)
    view.zoom_at(700, 300, 1.25)
    view.zoom_at(700, 300, 1 / 1.25)
    assert (view.zoom, view.origin_x, view.origin_y) == pytest.approx((0.25, 100, 50))


@pytest.mark.parametrize("canvas", [(CW, CH), (800, 1400), (5000, 4000)])
def test_fit_shows_the_whole_photo_centred(canvas):
    cw, ch = canvas
    view = ViewTransform(zoom=3.0, origin_x=999, origin_y=-999)
    view.fit(W, H, cw, ch)
    left, top = view.to_screen(0, 0)
    right, bottom = view.to_screen(W, H)
    assert left >= -1e-6 and top >= -1e-6 and right <= cw + 1e-6 and bottom <= ch + 1e-6
    assert min(left, top) == pytest.approx(0, abs=1e-6) or min(cw - right, ch - bottom) == pytest.approx(0, abs=1e-6)
    assert view.to_screen(W / 2, H / 2) == pytest.approx((cw / 2, ch / 2))
    assert left == pytest.approx(cw - right) and top == pytest.approx(ch - bottom)


def test_pan_moves_the_photo_with_the_pointer():
    view = ViewTransform(0.5, 1000, 800)
    point = view.to_screen(2000, 1500)
    view.pan(40, -25)
    assert view.to_screen(2000, 1500) == pytest.approx((point[0] + 40, point[1] - 25))
    assert view.zoom == 0.5


def test_set_zoom_keeps_the_canvas_centre_on_the_same_image_point():
    view = ViewTransform()
    view.fit(W, H, CW, CH)
    centre = view.to_image(CW / 2, CH / 2)
    view.set_zoom(1.0, CW, CH)  # the 100 % key
    assert view.zoom == 1.0
    assert view.to_image(CW / 2, CH / 2) == pytest.approx(centre)


def test_center_on_puts_an_image_point_in_the_middle_of_the_canvas():
    view = ViewTransform(zoom=2.0)
    view.center_on(1234, 567, CW, CH)
    assert view.to_screen(1234, 567) == pytest.approx((CW / 2, CH / 2))


def test_visible_region_is_what_the_canvas_shows_clipped_to_the_photo():
    view = ViewTransform(zoom=1.0, origin_x=1000, origin_y=500)
    assert view.visible_region(CW, CH, W, H) == (1000, 500, 2201, 1301)
    view = ViewTransform(zoom=2.0, origin_x=-100.5, origin_y=3000)
    assert view.visible_region(CW, CH, W, H) == (0, 3000, 500, H)
    fitted = ViewTransform()
    fitted.fit(W, H, CW, CH)
    assert fitted.visible_region(CW, CH, W, H) == (0, 0, W, H)


def test_visible_region_is_none_when_the_photo_is_panned_off_screen():
    assert ViewTransform(1.0, W + 10, 0).visible_region(CW, CH, W, H) is None
    assert ViewTransform(1.0, 0, -CH - 50).visible_region(CW, CH, W, H) is None
