"""The per-pixel nucleus model (issue 6, boundary model): fast path, scale, the session's slider."""
from __future__ import annotations

import cv2
import numpy as np

from raabin_labeler.core.nucleus import (BATCH_WORK_SIZE, FITTED, FITTED_THRESHOLD, NUCLEUS, NucleusSession,
                                         batch_mask, gray_world_balance, to_crop_size)
from raabin_labeler.core.nucleus_pixel import (COEFFICIENTS, FEATURES, PIXEL_SIDE, ROOT, _wide_blurs,
                                               nucleus_logit, pixel_features)

from tests.test_nucleus import crop, dice, truth  # one reading of dataset1's crops and truth


def test_fast_logit_equals_the_fitted_feature_stack():
    balanced = gray_world_balance(crop(2))
    features = pixel_features(balanced)
    assert features.shape == (PIXEL_SIDE, PIXEL_SIDE, len(FEATURES)) == (144, 144, len(COEFFICIENTS) - 1)
    slow = features @ COEFFICIENTS[:-1] + COEFFICIENTS[-1]
    np.testing.assert_allclose(nucleus_logit(balanced), slow, atol=1e-3)


def test_default_is_the_model_and_beats_the_threshold_rule_on_real_crops():
    numbers = (1, 2, 3, 51, 101, 151, 201, 251, 133, 134)
    model = [dice(NucleusSession(crop(n)).crop_mask(), truth(n)) for n in numbers]
    threshold = [dice(NucleusSession(crop(n), FITTED_THRESHOLD).crop_mask(), truth(n)) for n in numbers]
    assert NucleusSession(crop(1)).method == FITTED and FITTED.channel == "pixel_model"
    assert np.mean(model) > 0.94 and np.mean(model) > np.mean(threshold), (model, threshold)


def test_model_is_scale_free():
    small = crop(1)
    large = cv2.resize(small, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    size = (small.shape[1], small.shape[0])
    assert dice(NucleusSession(small).crop_mask(), to_crop_size(NucleusSession(large).crop_mask(), size)) > 0.98


def test_slider_on_the_model_probability_shrinks_the_nucleus():
    session = NucleusSession(crop(3))
    assert session.auto_threshold == 127
    areas = [session.mask_for(t).sum() for t in (20, 127, 235)]
    assert areas[0] > areas[1] > areas[2] > 0


def test_batch_at_144_agrees_with_the_panel_at_575():
    big = cv2.resize(crop(51), (575, 575), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(big, (BATCH_WORK_SIZE, BATCH_WORK_SIZE), interpolation=cv2.INTER_AREA)
    mask = batch_mask(small, (575, 575))
    assert mask.shape == (575, 575) and set(np.unique(mask)) == {0, 128, 255}
    assert dice(mask == NUCLEUS, NucleusSession(big).crop_mask()) > 0.97


def test_root_is_lab_lightness_of_gray_levels():
    gray = np.repeat(np.arange(256, dtype=np.float32)[None, :, None], 3, axis=2) / 255
    lightness = cv2.cvtColor(gray, cv2.COLOR_RGB2LAB)[0, :, 0]
    np.testing.assert_allclose(116 * ROOT - 16, lightness, atol=0.25)  # OpenCV tabulates the sRGB curve
    assert ROOT[0] == np.float32(4 / 29) and ROOT[255] == 1


def test_wide_smoothing_at_half_side_matches_the_full_gaussian():
    nm = cv2.GaussianBlur(np.float32(cv2.cvtColor(crop(5), cv2.COLOR_RGB2GRAY)), (0, 0), 1)
    nm = cv2.resize(nm, (PIXEL_SIDE, PIXEL_SIDE))
    s4, s8 = _wide_blurs(nm)
    inner = (slice(12, -12), slice(12, -12))  # borders: both reflect, at different scales
    assert np.abs(s4 - cv2.GaussianBlur(nm, (0, 0), 4))[inner].max() < 1
    assert np.abs(s8 - cv2.GaussianBlur(nm, (0, 0), 8))[inner].max() < 1
