"""A per-pixel nucleus model: logistic regression on colour, smoothed magenta and the distance
to the Easy-GT threshold outline, fitted jointly on two stains (issue 6, "boundary model").

Why: a single threshold on the magenta channel cannot place the nucleus border where experts
draw it on both reference sets (benchmarks/nucleus_accuracy.py: the best threshold chosen per
crop from the truth reaches 0.967 on segmentation_wbc/dataset1 and 0.943 on the BCCD WBC boxes);
it also takes eosinophil granules and dark cytoplasm for nucleus. The model sees, per pixel, the
balanced colour (RGB, Lab), the nuclear magenta (B − G)/B and CMYK M normalised by the crop's
own Otsu levels, the magenta smoothed over 1-8 px, its gradient, the signed distance to the
thresholded core and the crop's measured edge ramp width, so it can grow the core into a blurred
ramp and cut granular cytoplasm. Everything is measured on the crop resized to
:data:`PIXEL_SIDE` (scale-free: a 100-px crop and a 575-px crop of the same cell agree).

The coefficients were fitted by ``benchmarks/nucleus_accuracy.py --fit-pixel`` on 600 pixels
per crop (drawn near the core's outline) of all 300 dataset1 crops and 303 BCCD crops jointly;
held-out figures (two folds, half of each set) are in that script's output and the module
docstring of :mod:`raabin_labeler.core.nucleus`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .nucleus import clean_nucleus, cmyk_magenta, nuclear_magenta, nucleus_thresholds

#: The side the model works at: features in units of 1/144 of the crop's side.
PIXEL_SIDE = 144

#: Names of the features, in the order of :data:`COEFFICIENTS`.
FEATURES = (
    "magenta", "cmyk_m", "red", "green", "blue", "lab_a", "lab_b", "lab_l",
    "magenta_s1", "magenta_s2", "magenta_s4", "gradient", "distance", "core_size",
    "magenta_s8", "lab_a_s2", "lab_b_s2", "distance_sq", "ramp_width", "distance_per_ramp",
    "contrast", "cmyk_m_s2",
)

#: Fitted logistic regression (features as :func:`pixel_features` gives them; intercept last).
#: Re-fit and print: ``python benchmarks/nucleus_accuracy.py --fit-pixel``.
COEFFICIENTS = np.array([
    -0.389219, 0.0894422, -11.4829, -23.0403, -40.4498, 5.2762, -12.908, 80.4911, 0.935603,
    7.12334, -1.79719, 2.94981, -1.87618, 5.68807, 2.36504, -4.87435, -0.728946, -0.113617,
    -0.318338, 3.22796, 2.49469, -4.41127, -13.5508], dtype=np.float32)


@dataclass
class _Crop:
    """What both the feature stack and the fast evaluation need from one crop at PIXEL_SIDE."""

    rgb: np.ndarray  # float32 0-1
    lab: np.ndarray  # float32, L 0-100, a and b about −128…127 (OpenCV's float Lab)
    nm: np.ndarray  # nuclear magenta, float32 0-255
    cm: np.ndarray  # CMYK M, float32 0-255
    smooth1: np.ndarray  # nm smoothed over 1 px
    distance: np.ndarray  # signed distance to the core's outline / 5, clipped to ±3
    t2: float
    span: float  # T3up − T3low, at least 1
    core_size: float  # √(core area) / 100
    width: float  # edge ramp width, px
    contrast: float  # (nucleus level − surround level) / span


def _measure(balanced: np.ndarray) -> _Crop:
    small = _to_side(balanced, PIXEL_SIDE)
    nm8 = nuclear_magenta(small)
    nm = nm8.astype(np.float32)
    th = nucleus_thresholds(nm8)
    core = clean_nucleus(nm8 > 0.5 * (th.t2 + th.t3_up)).view(np.uint8)
    inside = cv2.distanceTransform(core, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - core, cv2.DIST_L2, 5)
    # The crop's edge ramp width: nucleus-to-surround contrast over the gradient at the outline.
    rim = cv2.dilate(core - cv2.erode(core, _SQUARE), _SQUARE) > 0
    deep, ring = inside > 2, (outside > 3) & (outside < 7)
    level_in = _median(nm8, deep) if deep.any() else float(nm[core > 0].mean()) if core.any() else 0.0
    level_out = _median(nm8, ring) if ring.any() else 0.0
    grad = np.hypot(cv2.Sobel(nm, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(nm, cv2.CV_32F, 0, 1) / 8)
    slope = float(np.percentile(grad[rim], 75)) if rim.any() else 1.0
    span = float(max(th.t3_up - th.t3_low, 1))
    rgb = small.astype(np.float32) / 255
    return _Crop(rgb=rgb, lab=cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), nm=nm,
                 cm=cmyk_magenta(small).astype(np.float32), smooth1=cv2.GaussianBlur(nm, (0, 0), 1),
                 distance=np.clip(inside - outside, -15, 15) / 5, t2=float(th.t2), span=span,
                 core_size=float(np.sqrt(cv2.countNonZero(core)) / 100),
                 width=float(np.clip((level_in - level_out) / max(slope, 1e-3), 0, 20)),
                 contrast=(level_in - level_out) / span)


_SQUARE = np.ones((3, 3), np.uint8)


def _median(levels: np.ndarray, where: np.ndarray) -> float:
    """Median of uint8 ``levels`` over ``where`` from a histogram (numpy's median sorts: slower)."""
    hist = cv2.calcHist([levels], [0], where.view(np.uint8), [256], [0, 256]).ravel()
    cumulative = np.cumsum(hist)
    total = cumulative[-1]
    low = int(np.searchsorted(cumulative, (total + 1) // 2))  # the two middle order statistics
    high = int(np.searchsorted(cumulative, total // 2 + 1))
    return (low + high) / 2


def _gradient(smooth: np.ndarray) -> np.ndarray:
    return np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(smooth, cv2.CV_32F, 0, 1) / 8)


def pixel_features(balanced: np.ndarray) -> np.ndarray:
    """The (PIXEL_SIDE, PIXEL_SIDE, len(FEATURES)) float32 features of a gray-world balanced crop."""
    c = _measure(balanced)
    lab_a, lab_b = c.lab[..., 1] / 50, c.lab[..., 2] / 50
    full = np.ones_like(c.nm)
    layers = [
        (c.nm - c.t2) / c.span, (c.cm - c.t2) / c.span, c.rgb[..., 0], c.rgb[..., 1], c.rgb[..., 2],
        lab_a, lab_b, c.lab[..., 0] / 100,
        (c.smooth1 - c.t2) / c.span, (cv2.GaussianBlur(c.nm, (0, 0), 2) - c.t2) / c.span,
        (cv2.GaussianBlur(c.nm, (0, 0), 4) - c.t2) / c.span, _gradient(c.smooth1) / c.span, c.distance,
        full * c.core_size, (cv2.GaussianBlur(c.nm, (0, 0), 8) - c.t2) / c.span,
        cv2.GaussianBlur(lab_a, (0, 0), 2), cv2.GaussianBlur(lab_b, (0, 0), 2), c.distance ** 2,
        full * (c.width / 5), c.distance * 5 / max(c.width, 0.5), full * c.contrast,
        (cv2.GaussianBlur(c.cm, (0, 0), 2) - c.t2) / c.span,
    ]
    return np.stack(layers, axis=-1)


def nucleus_logit(balanced: np.ndarray, coefficients: np.ndarray = COEFFICIENTS) -> np.ndarray:
    """``pixel_features(balanced) @ w + b`` without building the stack (the batch's time budget).

    Linear terms are regrouped: everything smoothed over 2 px is one blur, the per-crop
    constants and the ``− T2`` offsets go into the intercept.
    """
    w = dict(zip(FEATURES, (float(v) for v in coefficients[:-1])))
    c = _measure(balanced)
    inv = 1 / c.span
    blurred2 = (c.nm * (w["magenta_s2"] * inv) + c.cm * (w["cmyk_m_s2"] * inv)
                + c.lab[..., 1] * (w["lab_a_s2"] / 50) + c.lab[..., 2] * (w["lab_b_s2"] / 50))
    offset_weight = sum(w[k] for k in ("magenta", "cmyk_m", "magenta_s1", "magenta_s2", "magenta_s4",
                                        "magenta_s8", "cmyk_m_s2"))
    constant = (float(coefficients[-1]) - offset_weight * c.t2 * inv + w["core_size"] * c.core_size
                + w["ramp_width"] * c.width / 5 + w["contrast"] * c.contrast)
    d = c.distance
    logit = cv2.GaussianBlur(blurred2, (0, 0), 2)
    logit += c.nm * (w["magenta"] * inv) + c.cm * (w["cmyk_m"] * inv)
    logit += c.rgb @ np.array([w["red"], w["green"], w["blue"]], np.float32)
    logit += c.lab @ np.array([w["lab_l"] / 100, w["lab_a"] / 50, w["lab_b"] / 50], np.float32)
    logit += c.smooth1 * (w["magenta_s1"] * inv) + _gradient(c.smooth1) * (w["gradient"] * inv)
    logit += cv2.GaussianBlur(c.nm, (0, 0), 4) * (w["magenta_s4"] * inv)
    logit += cv2.GaussianBlur(c.nm, (0, 0), 8) * (w["magenta_s8"] * inv)
    logit += d * (w["distance"] + w["distance_per_ramp"] * 5 / max(c.width, 0.5) + w["distance_sq"] * d)
    logit += constant
    return logit


def nucleus_probability(balanced: np.ndarray, coefficients: np.ndarray = COEFFICIENTS) -> np.ndarray:
    """P(nucleus) per pixel as uint8 0-255 at PIXEL_SIDE × PIXEL_SIDE (over 127: nucleus)."""
    logit = np.clip(nucleus_logit(balanced, coefficients), -30, 30)
    return (255 / (1 + np.exp(-logit))).astype(np.uint8)


def _to_side(rgb: np.ndarray, side: int) -> np.ndarray:
    if rgb.shape[:2] == (side, side):
        return rgb
    shrink = rgb.shape[0] > side and rgb.shape[1] > side
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
