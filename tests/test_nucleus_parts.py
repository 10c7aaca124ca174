"""Shape rules on the per-pixel model's nucleus (core/nucleus_parts.py): the cell's rim and a
neighbour's nucleus cut by the crop's edge are left out; real nuclei and lobes are kept."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from raabin_labeler.core import nucleus_pixel
from raabin_labeler.core.nucleus import NucleusSession
from raabin_labeler.core.nucleus_parts import damp_stray_parts

from tests.test_nucleus import crop, dice, truth

HIGH = 230  # a confident P inside every drawn part


def probability(*shapes) -> np.ndarray:
    """A 144×144 P map: 20 outside, HIGH inside the drawn shapes (circle or arc)."""
    p = np.full((144, 144), 20, np.uint8)
    for kind, centre, radius, *rest in shapes:
        if kind == "disk":
            cv2.circle(p, centre, radius, HIGH, cv2.FILLED)
        else:  # ("arc", centre, radius, thickness, start, end)
            thickness, start, end = rest
            cv2.ellipse(p, centre, (radius, radius), 0, start, end, HIGH, thickness)
    return p


def kept(p: np.ndarray) -> np.ndarray:
    return damp_stray_parts(p) > 127


def test_a_round_nucleus_and_two_lobes_are_left_alone():
    one = probability(("disk", (72, 72), 25))
    assert damp_stray_parts(one) is one
    lobes = probability(("disk", (55, 72), 16), ("disk", (92, 72), 15))  # two lobes, 5 px apart
    assert np.array_equal(kept(lobes), lobes > 127)


def test_a_thin_rim_arc_on_its_own_is_left_out():
    p = probability(("disk", (72, 72), 22), ("arc", (72, 72), 55, 4, 200, 340))
    assert np.array_equal(kept(p), probability(("disk", (72, 72), 22)) > 127)


def test_a_rim_joined_to_the_nucleus_is_cut_off():
    nucleus = probability(("disk", (72, 80), 24))
    p = probability(("disk", (72, 80), 24), ("arc", (72, 80), 40, 5, 180, 360))
    cv2.line(p, (72, 80 - 24), (72, 80 - 40), HIGH, 4)  # the rim touches the nucleus here
    result = kept(p)
    assert (p > 127).sum() > 1.2 * (nucleus > 127).sum()
    assert (result & ~(nucleus > 127)).sum() < 0.05 * (nucleus > 127).sum()  # the rim gone
    assert (result & (nucleus > 127)).sum() > 0.95 * (nucleus > 127).sum()  # the nucleus kept


def test_a_neighbour_at_the_edge_is_left_out_but_a_near_second_nucleus_is_kept():
    far = probability(("disk", (60, 72), 22), ("disk", (144, 20), 20))  # cut by the edge, far away
    assert np.array_equal(kept(far), probability(("disk", (60, 72), 22)) > 127)
    near = probability(("disk", (100, 72), 22), ("disk", (144, 80), 15))  # cut by the edge, 7 px away
    assert np.array_equal(kept(near), near > 127)


def test_left_out_parts_come_back_when_the_slider_goes_low():
    p = probability(("disk", (60, 72), 22), ("disk", (144, 20), 20))
    damped = damp_stray_parts(p)
    assert not (damped[20, 140] > 127) and damped[20, 140] > 100  # halved: back below P = 0.4


@pytest.mark.parametrize("number, before", [(5, 0.80), (149, 0.78), (293, 0.86)])
def test_real_crops_lose_the_neighbour_or_the_rim(monkeypatch, number, before):
    # 005: a neighbour's nucleus at the edge; 149: the rim joined to the nucleus; 293: a rim arc
    improved = dice(NucleusSession(crop(number)).crop_mask(), truth(number))
    monkeypatch.setattr(nucleus_pixel, "damp_stray_parts", lambda p: p)
    plain = dice(NucleusSession(crop(number)).crop_mask(), truth(number))
    assert plain < before and improved > plain + 0.08, (plain, improved)


def test_ordinary_real_crops_are_unchanged(monkeypatch):
    masks = [NucleusSession(crop(n)).crop_mask() for n in (1, 2, 3, 51)]
    monkeypatch.setattr(nucleus_pixel, "damp_stray_parts", lambda p: p)
    assert all(np.array_equal(m, NucleusSession(crop(n)).crop_mask()) for m, n in zip(masks, (1, 2, 3, 51)))


def test_a_map_that_is_all_nucleus_is_left_alone():
    everywhere = np.full((144, 144), 230, np.uint8)  # no background pixel: no inscribed radius
    assert damp_stray_parts(everywhere) is everywhere


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("size", [(1, 1), (7, 300), (144, 144), (287, 138)])
def test_degenerate_crops_give_masks_of_their_size(split, size):
    # one colour, or half violet and half pale: the model then calls a whole half nucleus, and
    # after the work resize every pixel (this crashed the rim rule: no inscribed radius)
    from raabin_labeler.core.nucleus import batch_mask, cell_outline
    rgb = np.full((size[1], size[0], 3), (200, 170, 200), np.uint8)
    if split:
        rgb[:, : size[0] // 2] = (90, 40, 150)
    assert batch_mask(rgb, size).shape == cell_outline(rgb).shape == (size[1], size[0])
