"""The batch's Otsu thresholds are scikit-image's own, near-ties included (core/otsu.py)."""
from __future__ import annotations

import itertools
import numpy as np
import pytest
from skimage.filters import threshold_multiotsu, threshold_otsu

from raabin_labeler.core.nucleus import cmyk_magenta, gray_world_balance, nucleus_thresholds
from raabin_labeler.core.otsu import otsu_four, otsu_three, otsu_two


def scikit(hist: np.ndarray) -> tuple[int, int, int]:
    levels = np.flatnonzero(hist)
    span = (hist[levels[0]:levels[-1] + 1], np.arange(levels[0], levels[-1] + 1))
    return int(threshold_otsu(hist=span)), *(int(t) for t in threshold_multiotsu(classes=3, hist=span))


def ours(hist: np.ndarray) -> tuple[int, int, int]:
    levels = np.flatnonzero(hist)
    span, first = hist[levels[0]:levels[-1] + 1], int(levels[0])
    return otsu_two(span, first), *otsu_three(span, first)


def histograms(seed: int) -> list[np.ndarray]:
    """Noise, one to three Gaussian modes of many widths (ties and wide spans), few levels."""
    rng = np.random.default_rng(seed)
    out = [np.bincount(rng.integers(0, 256, 20736), minlength=256)]
    for size in (400, 20736, 330625):  # a tiny crop, the batch's 144 px, the panel's 575 px
        modes = [rng.normal(rng.uniform(0, 255), rng.uniform(1, 40), size // k) for k in (1, 3, 6)]
        out.append(np.bincount(np.clip(np.concatenate(modes), 0, 255).astype(int), minlength=256))
    out.append(np.bincount(rng.integers(0, 5, 1000) * rng.integers(1, 60), minlength=256))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_thresholds_equal_scikit_image_on_random_histograms(seed):
    for hist in histograms(seed):
        if np.count_nonzero(hist) >= 3:
            assert ours(hist) == scikit(hist)


def test_thresholds_equal_scikit_image_on_an_exact_tie():
    # two mirror-image modes: the search must keep scikit-image's first pair in scan order
    hist = np.zeros(256, np.int64)
    hist[[10, 11, 100, 189, 190]] = [50, 50, 7, 50, 50]
    assert ours(hist) == scikit(hist)


def test_three_levels_split_between_them_and_fewer_are_refused():
    hist = np.zeros(256, np.int64)
    hist[[20, 90, 200]] = [5, 1, 9]
    assert ours(hist) == scikit(hist) == (90, 20, 90)
    with pytest.raises(ValueError, match="three used levels"):
        otsu_three(np.array([4, 0, 3]), 0)


def test_channel_thresholds_equal_scikit_image_on_a_made_crop():
    rng = np.random.default_rng(7)
    rgb = np.clip(rng.normal(170, 40, (144, 144, 3)), 0, 255).astype(np.uint8)
    rgb[40:100, 40:100] = (120, 60, 170)  # a violet "nucleus"
    channel = cmyk_magenta(gray_world_balance(rgb))
    th = nucleus_thresholds(channel)
    assert (th.t2, th.t3_low, th.t3_up) == (threshold_otsu(channel), *threshold_multiotsu(channel, classes=3))


def _between_class(counts: np.ndarray, cuts: tuple[int, ...]) -> float:
    """Σ S_k² / P_k of the classes the cuts (last level of each class but the last) make."""
    bounds = [0, *(c + 1 for c in cuts), len(counts)]
    levels = np.arange(len(counts))
    total = 0.0
    for lo, hi in zip(bounds, bounds[1:]):
        mass = counts[lo:hi].sum()
        if mass:
            total += float((counts[lo:hi] * levels[lo:hi]).sum()) ** 2 / mass
    return total


@pytest.mark.parametrize("seed", range(30))
def test_four_classes_find_the_best_split(seed):
    rng = np.random.default_rng(seed)
    levels = int(rng.integers(6, 30))
    modes = [rng.normal(rng.uniform(0, levels), rng.uniform(0.5, 4), int(rng.integers(10, 400))) for _ in range(4)]
    counts = np.bincount(np.clip(np.concatenate(modes), 0, levels - 1).astype(int), minlength=levels)
    if np.count_nonzero(counts) < 4:
        return
    a, b, c = otsu_four(counts, 0)
    assert 0 <= a < b < c < levels - 1
    best = max(_between_class(counts, cuts) for cuts in itertools.combinations(range(levels - 1), 3))
    assert _between_class(counts, (a, b, c)) == pytest.approx(best, rel=1e-6)


def test_four_separated_modes_are_cut_between_them():
    counts = np.zeros(200, np.int64)
    counts[[20, 21, 80, 81, 130, 131, 180, 181]] = [500, 400, 300, 300, 200, 250, 100, 90]
    a, b, c = otsu_four(counts[20:182], 20)
    assert 21 <= a < 80 and 81 <= b < 130 and 131 <= c < 180
    with pytest.raises(ValueError, match="four used levels"):
        otsu_four(np.array([3, 0, 4, 5]), 0)
