"""Mask PNGs of the nucleus batch (core/png.py): any reader gets the mask's values back."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core.png import encode_gray_png


@pytest.mark.parametrize("shape", [(1, 1), (575, 575), (90, 130), (1000, 3)])
def test_masks_read_back_equal_in_pillow_and_opencv(shape):
    rng = np.random.default_rng(shape[0])
    mask = rng.choice(np.array([0, 128, 255], np.uint8), size=shape)
    mask[: shape[0] // 2] = 128  # runs as in a real mask, next to noise
    data = encode_gray_png(mask)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # chunk CRCs and structure
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L" and image.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(image), mask)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), mask)


def test_a_real_mask_is_small():
    mask = np.zeros((575, 575), np.uint8)
    cv2.circle(mask, (287, 287), 200, 128, cv2.FILLED)
    cv2.ellipse(mask, (280, 290), (120, 90), 30, 0, 360, 255, cv2.FILLED)
    assert len(encode_gray_png(mask)) < 6000  # 330 kB of pixels


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint16), np.zeros((0, 5), np.uint8)])
def test_other_arrays_are_refused(bad):
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_gray_png(bad)
