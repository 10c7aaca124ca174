"""Distance transforms over a mask's box only: OpenCV's own values wherever they can matter."""
from __future__ import annotations

import cv2
import numpy as np

from raabin_labeler.core.distance import distance_to, inside_distance


def _masks():
    rng = np.random.default_rng(5)
    for _ in range(60):
        mask = np.zeros((144, 144), np.uint8)
        for _ in range(rng.integers(1, 4)):  # blobs, some cut by the image border
            centre = tuple(int(v) for v in rng.integers(-10, 154, 2))
            axes = tuple(int(v) for v in rng.integers(2, 40, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        mask[rng.random(mask.shape) < 0.01] ^= 1  # specks and holes
        yield mask
    yield np.zeros((144, 144), np.uint8)
    yield np.ones((144, 144), np.uint8)


def test_inside_distance_is_opencvs_over_the_whole_image():
    for mask in _masks():
        assert np.array_equal(inside_distance(mask), cv2.distanceTransform(mask, cv2.DIST_L2, 5))
        assert np.array_equal(inside_distance(mask * 255), cv2.distanceTransform(mask, cv2.DIST_L2, 5))


def test_distance_to_a_mask_is_opencvs_under_its_reach():
    for mask in _masks():
        if not mask.any():
            assert (distance_to(mask, 16) == 16).all()  # nothing to be near
            continue
        full = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
        for reach in (4, 16):
            assert np.array_equal(distance_to(mask, reach), np.minimum(full, np.float32(reach)))
