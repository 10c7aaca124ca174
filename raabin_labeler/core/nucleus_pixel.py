"""A per-pixel nucleus model: logistic regression on colour, smoothed magenta and the distance
to the Easy-GT threshold outline, fitted jointly on two stains (issue 6, "boundary model").

Why: a single threshold on the magenta channel cannot place the nucleus border where experts
draw it on both reference sets (benchmarks/nucleus_accuracy.py: the best threshold chosen per
crop from the truth reaches 0.967 on segmentation_wbc/dataset1 and 0.943 on the BCCD WBC boxes);
it also takes eosinophil granules and dark cytoplasm for nucleus. The model sees, per pixel, the
balanced colour (RGB, and each channel through Lab's lightness function), the nuclear magenta
(B − G)/B and CMYK M normalised by the crop's own Otsu levels, the magenta smoothed over 1-8 px,
its gradient, the signed distance to the thresholded core and the crop's measured edge ramp
width, so it can grow the core into a blurred ramp and cut granular cytoplasm. Everything is measured on the crop resized to
:data:`PIXEL_SIDE` (scale-free: a 100-px crop and a 575-px crop of the same cell agree).

The coefficients were fitted by ``benchmarks/nucleus_accuracy.py --fit-pixel`` on 600 pixels
per crop (drawn near the core's outline) of all 300 dataset1 crops and 303 BCCD crops jointly;
held-out figures (two folds, half of each set) are in that script's output and the module
docstring of :mod:`raabin_labeler.core.nucleus`.

Batch speed (issue 6, ≥ 200 crops/s/core; benchmarks/nucleus_speed.py): the evaluation never
builds the feature stack (:func:`nucleus_logit`), the 4- and 8-px smoothings run at half the
side, and the colour terms are table look-ups: OpenCV's Lab conversion was a quarter of the
model's time. The per-channel root replaced Lab in the refit (held-out nucleus Dice dataset1 /
BCCD / sample 0.9532 / 0.9467 / 0.9772, against 0.9520 / 0.9468 / 0.9725 with Lab).

The crop's own colour discriminant (:func:`_colour_model`: linear and quadratic, core against
its surround, and each smoothed over 2 px), the magenta's local standard deviation and the
red-blue hue (raw and smoothed) were added for eosinophils (granules and the dark rim taken for
nucleus), refitted with C = 3: held-out 0.9579 / 0.9503 / 0.9760. A fixed colour rule did better
on the two fitted stains but not on the third (per-channel colour curves: 0.958 / 0.949 / 0.953);
a second, auto-context stage on this model's logit gave nothing (+0.0003). Cost: about 0.78 ms
more per crop at 144 (benchmarks/nucleus_speed.py's crops; colour moments 0.26, local standard
deviation 0.11, quadratic term 0.07, hue 0.05): the batch gives up ~15 % of its speed for it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .nucleus import _SQUARE3, _SUM3, clean_nucleus, cmyk_magenta, nuclear_magenta, nucleus_thresholds
from .distance import distance_to, inside_distance
from .nucleus_parts import damp_stray_parts

#: The side the model works at: features in units of 1/144 of the crop's side.
PIXEL_SIDE = 144
#: Distances to the core are clipped at 15 px (the ``distance`` feature, the surround's ring at 3-7 px).
_DISTANCE_REACH = 16

#: Names of the features, in the order of :data:`COEFFICIENTS`.
FEATURES = (
    "magenta", "cmyk_m", "red", "green", "blue", "root_r", "root_g", "root_b",
    "magenta_s1", "magenta_s2", "magenta_s4", "gradient", "distance", "core_size",
    "magenta_s8", "root_r_s2", "root_g_s2", "root_b_s2", "distance_sq", "ramp_width",
    "distance_per_ramp", "contrast", "cmyk_m_s2",
    "colour_lda", "colour_lda_s2", "colour_qda", "colour_qda_s2", "magenta_std", "hue", "hue_s2",
)

#: Fitted logistic regression (features as :func:`pixel_features` gives them; intercept last).
#: Re-fit and print: ``python benchmarks/nucleus_accuracy.py --fit-pixel``.
COEFFICIENTS = np.array([
    -0.343032, 0.893784, -69.7075, 78.2717, -90.0862, 75.7763, -101.602, 121.466, -0.845532, 4.34737,
    -1.54059, 11.2294, -3.08568, 2.56479, 2.20789, 24.013, 13.4697, -25.5347, -0.193389, 1.06882,
    4.29388, 1.79878, -4.47017, -0.485913, 3.60299, 0.197825, 0.992037, -6.63489, 8.46758, -26.3466,
    -29.2705], dtype=np.float32)


@dataclass
class _Crop:
    """What both the feature stack and the fast evaluation need from one crop at PIXEL_SIDE."""

    small: np.ndarray  # the balanced crop at PIXEL_SIDE, uint8 RGB
    nm: np.ndarray  # nuclear magenta, float32 0-255
    cm: np.ndarray  # CMYK M, float32 0-255
    smooth1: np.ndarray  # nm smoothed over 1 px
    distance: np.ndarray  # signed distance to the core's outline / 5, clipped to ±3
    t2: float
    span: float  # T3up − T3low, at least 1
    core_size: float  # √(core area) / 100
    width: float  # edge ramp width, px
    contrast: float  # (nucleus level − surround level) / span
    root: np.ndarray  # ROOT of the balanced colour, float32 (side, side, 3)
    lda: np.ndarray  # the crop's colour discriminant on root colour: weights (3,) and offset, shape (4,)
    qda: np.ndarray  # the quadratic colour discriminant [A | b | c], (3, 5)


def _measure(balanced: np.ndarray) -> _Crop:
    small = _to_side(balanced, PIXEL_SIDE)
    nm8 = nuclear_magenta(small)
    nm = np.float32(nm8)
    th = nucleus_thresholds(nm8)
    core = clean_nucleus(nm8 > (th.t2 + th.t3_up) // 2).view(np.uint8)  # integer levels: M > ½(T2 + T3up)
    inside = inside_distance(core)
    outside = distance_to(core, _DISTANCE_REACH)  # what the features read of it is under 15 px
    # The crop's edge ramp width: nucleus-to-surround contrast over the gradient at the outline.
    rim = cv2.dilate(core - cv2.erode(core, _SQUARE3), _SQUARE3) > 0
    deep, ring = inside > 2, (outside > 3) & (outside < 7)
    level_in = _median(nm8, deep) if deep.any() else float(nm[core > 0].mean()) if core.any() else 0.0
    level_out = _median(nm8, ring) if ring.any() else 0.0
    slope = _upper_quartile(_gradient(nm)[rim]) if rim.any() else 1.0
    span = float(max(th.t3_up - th.t3_low, 1))
    distance = cv2.subtract(inside, outside)
    cv2.min(distance, 15.0, dst=distance)
    cv2.max(distance, -15.0, dst=distance)
    root = cv2.LUT(small, _ROOT3)
    lda, qda = _colour_model(root, deep if cv2.countNonZero(deep.view(np.uint8)) >= 10 else core > 0, ring)
    return _Crop(small=small, nm=nm, root=root, lda=lda, qda=qda,
                 cm=np.float32(cmyk_magenta(small)), smooth1=cv2.GaussianBlur(nm, (0, 0), 1),
                 distance=distance * np.float32(0.2), t2=float(th.t2), span=span,
                 core_size=float(np.sqrt(cv2.countNonZero(core)) / 100),
                 width=float(np.clip((level_in - level_out) / max(slope, 1e-3), 0, 20)),
                 contrast=(level_in - level_out) / span)


def _colour_model(root: np.ndarray, nucleus: np.ndarray, surround: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crop's own colour discriminant between its core and the ring around it.

    Why: a colour rule fitted on two stains does not carry to a third (per-channel colour
    curves reached dataset1 0.958 but dropped the sample set to 0.953); measured per crop, the
    core's colour against its surround's separates violet nucleus from orange granules and
    dark cytoplasm in any stain. Returns the linear discriminant (LDA, pooled covariance,
    scaled to 0 at the midpoint and 1 at the core's mean) as (w, offset), shape (4,), and the
    quadratic one (log-likelihood ratio of the two Gaussians / 10) as x·(Ax + b) + c, shape
    (3, 5): [A | b | c in the first row]. Both zero when either region has under 5 pixels.
    Moments from every other pixel and row (a quarter: hundreds of pixels still).
    """
    half = (root.shape[1] // 2, root.shape[0] // 2)
    sub = cv2.resize(root, half, interpolation=cv2.INTER_NEAREST)
    squares, products = cv2.multiply(sub, sub), cv2.multiply(sub, cv2.transform(sub, _NEXT))
    masks = [cv2.resize(region.view(np.uint8), half, interpolation=cv2.INTER_NEAREST) for region in (nucleus, surround)]
    counts = [cv2.countNonZero(m) for m in masks]
    if min(counts) < 5:
        return np.zeros(4), np.zeros((3, 5))
    # The rest is 3×3 algebra on two regions: plain floats, a tenth of NumPy's per-call cost
    # (the whole discriminant 0.26 → 0.16 ms a crop). Masked means in OpenCV: NumPy's product
    # would wake its BLAS threads in every worker.
    means, covs = [], []
    for m, n in zip(masks, counts):
        (r, g, b, _), (rr, gg, bb, _), (rg, gb, br, _) = (cv2.mean(image, m) for image in (sub, squares, products))
        unbiased = n / (n - 1)
        means.append((r, g, b))
        covs.append(_symmetric((rr - r * r) * unbiased + _RIDGE, (gg - g * g) * unbiased + _RIDGE,
                               (bb - b * b) * unbiased + _RIDGE, (rg - r * g) * unbiased,
                               (gb - g * b) * unbiased, (br - b * r) * unbiased))
    share = counts[0] / (counts[0] + counts[1])
    pooled = [[share * x + (1 - share) * y for x, y in zip(row0, row1)] for row0, row1 in zip(*covs)]
    diff = [x - y for x, y in zip(*means)]
    w = _solve(pooled, diff)
    scale = 1 / max(_dot(diff, w), 1e-6)
    w = [v * scale for v in w]
    lda = np.array([*w, -_dot(w, [x + y for x, y in zip(*means)]) / 2])
    (inverse0, log_det0), (inverse1, log_det1) = (_inverse(c) for c in covs)
    whitened = [_matvec(inverse0, means[0]), _matvec(inverse1, means[1])]  # C⁻¹m of each
    quadratic = np.zeros((3, 5))
    quadratic[:, :3] = (np.array(inverse1) - np.array(inverse0)) / 20
    quadratic[:, 3] = [(x - y) / 10 for x, y in zip(*whitened)]
    quadratic[0, 4] = -0.05 * (_dot(means[0], whitened[0]) - _dot(means[1], whitened[1]) + log_det0 - log_det1)
    return lda, quadratic


def _symmetric(xx: float, yy: float, zz: float, xy: float, yz: float, zx: float) -> list[list[float]]:
    return [[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]]


def _dot(x: list[float] | tuple[float, ...], y: list[float] | tuple[float, ...]) -> float:
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]


def _matvec(m: list[list[float]], v: list[float] | tuple[float, ...]) -> list[float]:
    return [_dot(row, v) for row in m]


def _inverse(m: list[list[float]]) -> tuple[list[list[float]], float]:
    """Inverse and log-determinant of a 3×3 covariance (positive definite: the ridge), by its adjugate."""
    (a, b, c), (d, e, f), (g, h, i) = m
    adjugate = [[e * i - f * h, c * h - b * i, b * f - c * e],
                [f * g - d * i, a * i - c * g, c * d - a * f],
                [d * h - e * g, b * g - a * h, a * e - b * d]]
    det = a * adjugate[0][0] + b * adjugate[1][0] + c * adjugate[2][0]
    return [[v / det for v in row] for row in adjugate], math.log(det)


def _solve(m: list[list[float]], v: list[float]) -> list[float]:
    return _matvec(_inverse(m)[0], v)


#: The channels one on (g, b, r): the cross products rg, gb, br.
_NEXT = np.float32([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
#: Added to the covariances' diagonal: a region of one colour still has an inverse.
_RIDGE = 1e-4


def _qda(c: _Crop) -> np.ndarray:
    """The quadratic colour discriminant x·(Ax + b) + c, clipped to ±3 (see :func:`_colour_model`)."""
    affine = cv2.transform(c.root, c.qda[:, :4].astype(np.float32))
    q = cv2.transform(cv2.multiply(c.root, affine), np.float32([[1, 1, 1, c.qda[0, 4]]]))
    return np.clip(q, -3, 3, out=q)


def _local_std(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Standard deviation over a Gaussian window (granular texture)."""
    mean = cv2.GaussianBlur(image, (0, 0), sigma)
    variance = cv2.GaussianBlur(cv2.multiply(image, image), (0, 0), sigma)
    variance -= cv2.multiply(mean, mean)
    return cv2.sqrt(cv2.max(variance, 0.0))


def _hue(small: np.ndarray) -> np.ndarray:
    """(R − B) / (R + B + 0.05), channels 0-1: red granules against a violet nucleus."""
    red, blue = (np.float32(cv2.extractChannel(small, k)) * np.float32(1 / 255) for k in (0, 2))
    return cv2.divide(red - blue, red + blue + np.float32(0.05))


def _median(levels: np.ndarray, where: np.ndarray) -> float:
    """Median of uint8 ``levels`` over ``where`` from a histogram (numpy's median sorts: slower)."""
    hist = cv2.calcHist([levels], [0], where.view(np.uint8), [256], [0, 256]).ravel()
    cumulative = np.cumsum(hist)
    total = cumulative[-1]
    low = int(np.searchsorted(cumulative, (total + 1) // 2))  # the two middle order statistics
    high = int(np.searchsorted(cumulative, total // 2 + 1))
    return (low + high) / 2


def _upper_quartile(values: np.ndarray) -> float:
    """``np.percentile(values, 75)`` (linear interpolation) from a partial sort."""
    rank = 0.75 * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    part = np.partition(values, (low, high))
    return float(part[low] + (part[high] - part[low]) * (rank - low))


def _gradient(smooth: np.ndarray) -> np.ndarray:
    return cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0, scale=0.125),
                         cv2.Sobel(smooth, cv2.CV_32F, 0, 1, scale=0.125))


def _wide_blurs(nm: np.ndarray, w4: float = 1.0, w8: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """nm smoothed over 4 and 8 px (each scaled by its weight), computed at half the side.

    A Gaussian this wide has nothing left at the finest scale: blurring the 2×2 average with
    the matching σ and interpolating back stays within one level (of 255) of the full-size
    blur away from the border, at a quarter of the cost (the batch's budget, issue 6).
    """
    half = cv2.resize(nm, (nm.shape[1] // 2, nm.shape[0] // 2), interpolation=cv2.INTER_AREA)
    size = (nm.shape[1], nm.shape[0])
    # variances: 2×2 box 1/4 and the linear interpolation back about 1/4 (full-side px²)
    s4 = cv2.resize(cv2.GaussianBlur(half, (0, 0), np.sqrt(16 - 0.5) / 2) * np.float32(w4), size,
                    interpolation=cv2.INTER_LINEAR)
    s8 = cv2.resize(cv2.GaussianBlur(half, (0, 0), np.sqrt(64 - 0.5) / 2) * np.float32(w8), size,
                    interpolation=cv2.INTER_LINEAR)
    return s4, s8


#: Lab's lightness function per channel: the cube root of linear light (sRGB decoded), 0-1.
#: Lab itself mixes the channels before the root; this per-channel form keeps its compression
#: of dark levels (nuclei) and is one table look-up instead of a colour conversion (batch speed).
_LEVELS = np.arange(256) / 255
_LINEAR = np.where(_LEVELS > 0.04045, ((_LEVELS + 0.055) / 1.055) ** 2.4, _LEVELS / 12.92)
ROOT = np.where(_LINEAR > (6 / 29) ** 3, np.cbrt(_LINEAR), _LINEAR / (3 * (6 / 29) ** 2) + 4 / 29).astype(np.float32)


def pixel_features(balanced: np.ndarray) -> np.ndarray:
    """The (PIXEL_SIDE, PIXEL_SIDE, len(FEATURES)) float32 features of a gray-world balanced crop."""
    c = _measure(balanced)
    rgb = np.float32(c.small) / 255
    root = ROOT[c.small]
    full = np.ones_like(c.nm)
    s4, s8 = _wide_blurs(c.nm)
    layers = [
        (c.nm - c.t2) / c.span, (c.cm - c.t2) / c.span, rgb[..., 0], rgb[..., 1], rgb[..., 2],
        root[..., 0], root[..., 1], root[..., 2],
        (c.smooth1 - c.t2) / c.span, (cv2.GaussianBlur(c.nm, (0, 0), 2) - c.t2) / c.span,
        (s4 - c.t2) / c.span, _gradient(c.smooth1) / c.span, c.distance,
        full * c.core_size, (s8 - c.t2) / c.span,
        *(cv2.GaussianBlur(np.ascontiguousarray(root[..., k]), (0, 0), 2) for k in range(3)),
        c.distance ** 2, full * (c.width / 5), c.distance * 5 / max(c.width, 0.5), full * c.contrast,
        (cv2.GaussianBlur(c.cm, (0, 0), 2) - c.t2) / c.span,
    ]
    lda = cv2.transform(c.root, c.lda[None].astype(np.float32))
    qda = _qda(c)
    hue = _hue(c.small)
    layers += [lda, cv2.GaussianBlur(lda, (0, 0), 2), qda, cv2.GaussianBlur(qda, (0, 0), 2),
               _local_std(c.nm) / c.span,
               hue, cv2.GaussianBlur(hue, (0, 0), 2)]
    return np.stack(layers, axis=-1)


def nucleus_logit(balanced: np.ndarray, coefficients: np.ndarray = COEFFICIENTS) -> np.ndarray:
    """``pixel_features(balanced) @ w + b`` without building the stack (the batch's time budget).

    Linear terms are regrouped: the colour terms are per-channel functions of the level, so
    two table look-ups (one smoothed over 2 px with the magenta channels), the per-crop
    constants and the ``− T2`` offsets go into the intercept.
    """
    w = dict(zip(FEATURES, (float(v) for v in coefficients[:-1])))
    c = _measure(balanced)
    inv = 1 / c.span
    levels = np.float32(_LEVELS)
    lda, lda_s2 = w["colour_lda"], w["colour_lda_s2"]
    colour = np.stack([w[k] * levels + (w[f"root_{k[0]}"] + lda * float(c.lda[n])) * ROOT
                       for n, k in enumerate(("red", "green", "blue"))], axis=-1)
    colour_s2 = np.stack([(w[f"root_{k}_s2"] + lda_s2 * float(c.lda[n])) * ROOT for n, k in enumerate("rgb")], axis=-1)
    blurred2 = cv2.scaleAdd(c.nm, w["magenta_s2"] * inv, c.cm * np.float32(w["cmyk_m_s2"] * inv))
    blurred2 += _channel_sum(cv2.LUT(c.small, colour_s2.reshape(256, 1, 3)))
    qda = _qda(c)
    hue = _hue(c.small)
    blurred2 += cv2.scaleAdd(qda, w["colour_qda_s2"], hue * np.float32(w["hue_s2"]))
    offset_weight = sum(w[k] for k in ("magenta", "cmyk_m", "magenta_s1", "magenta_s2", "magenta_s4",
                                        "magenta_s8", "cmyk_m_s2"))
    constant = (float(coefficients[-1]) - offset_weight * c.t2 * inv + w["core_size"] * c.core_size
                + w["ramp_width"] * c.width / 5 + w["contrast"] * c.contrast + (lda + lda_s2) * float(c.lda[3]))
    logit = cv2.GaussianBlur(blurred2, (0, 0), 2)
    logit += _channel_sum(cv2.LUT(c.small, colour.reshape(256, 1, 3)))
    logit += cv2.scaleAdd(c.nm, w["magenta"] * inv, c.cm * np.float32(w["cmyk_m"] * inv))
    logit += cv2.scaleAdd(c.smooth1, w["magenta_s1"] * inv, _gradient(c.smooth1) * np.float32(w["gradient"] * inv))
    s4, s8 = _wide_blurs(c.nm, w["magenta_s4"] * inv, w["magenta_s8"] * inv)
    logit += s4
    logit += s8
    qda *= np.float32(w["colour_qda"])
    qda += hue * np.float32(w["hue"])
    logit += cv2.scaleAdd(_local_std(c.nm), w["magenta_std"] * inv, qda)
    d = c.distance
    linear = w["distance"] + w["distance_per_ramp"] * 5 / max(c.width, 0.5)
    logit += d * (d * np.float32(w["distance_sq"]) + np.float32(linear))
    logit += np.float32(constant)
    return logit


_ROOT3 = np.repeat(ROOT[:, None], 3, axis=1).reshape(256, 1, 3)


def _channel_sum(image: np.ndarray) -> np.ndarray:
    return cv2.transform(image, _SUM3)


def nucleus_probability(balanced: np.ndarray, coefficients: np.ndarray = COEFFICIENTS) -> np.ndarray:
    """P(nucleus) per pixel as uint8 0-255 at PIXEL_SIDE × PIXEL_SIDE (over 127: nucleus).

    Parts of P > ½ that are shaped like the cell's rim or a neighbour's nucleus are damped
    (:mod:`.nucleus_parts`).
    """
    negative = nucleus_logit(balanced, coefficients)
    np.negative(negative, out=negative)
    np.clip(negative, -30, 30, out=negative)
    cv2.exp(negative, negative)
    negative += 1
    return damp_stray_parts(np.divide(255, negative, out=negative).astype(np.uint8))


def _to_side(rgb: np.ndarray, side: int) -> np.ndarray:
    if rgb.shape[:2] == (side, side):
        return rgb
    shrink = rgb.shape[0] > side and rgb.shape[1] > side
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
