"""Easy-GT nucleus ground truth: colour balance, a magenta channel, Otsu thresholds, masks.

The method of issue 6 (Easy-GT, the paper and the public program of the same group): resize the
crop to 575×575, gray-world colour balance, CMYK magenta M, two-class Otsu T2 and three-class
Otsu T3low < T3up on M, nucleus = M > (1 − α)·T2 + α·T3up. ``EASY_GT`` is the program's own
automatic mask (α = 0, no clean-up).

``FITTED`` is the default automatic method: since the boundary work of issue 6 it is
``PIXEL_MODEL``, the per-pixel logistic model of :mod:`.nucleus_pixel` (nucleus where P > 0.5;
the slider moves the cut on P), with the shape rules of :mod:`.nucleus_parts` (the cell's rim
and a neighbour's nucleus left out). Mean nucleus Dice dataset1 / BCCD / sample, held out (two
folds, half of each set fitted): 0.962 / 0.950 / 0.976, against 0.935 / 0.927 / 0.967 for the
threshold rule below; targets 0.96 / 0.95: both met.
``FITTED_THRESHOLD`` keeps that rule.
Its constants were fitted jointly on
segmentation_wbc/dataset1 (300 crops, yellowish rapid stain) and the BCCD WBC boxes (303 crops,
Giemsa-like), maximising the smaller of the two margins to the issue's targets
(Dice − 0.96, Dice − 0.95); ``benchmarks/nucleus_accuracy.py`` re-runs the fit and prints it.
Fit result (grid: channel × α ∈ {0, .25, .4, .5, .6, .75} × dilation ∈ {0, .01, .02, .03}), mean
nucleus Dice dataset1 / BCCD: plain Otsu on M 0.801 / 0.922, Easy-GT 0.878 / 0.900, FITTED
0.935 / 0.927. The targets (0.96 / 0.95) are not reached: the best grid point for one set alone
gives 0.956 (BCCD 0.876) and 0.948 (dataset1 0.891). The two changes to the program:
- the channel: magenta measured against the blue channel, (B − G) / B, instead of CMYK's
  (max − G) / max. The nuclear dye (azure / hematoxylin-like) leaves a nucleus blue-violet; eosin
  (eosinophil granules, red cells) is red, so CMYK M, which divides by max = R there, calls it as
  magenta as a nucleus. Per-crop best-threshold Dice rises on both sets (0.963 → 0.967,
  0.931 → 0.943).
- clean-up: drop components under a tenth of the largest (the Easy-GT paper), fill holes, then
  dilate by a fixed fraction of the nucleus' own size (scale-free). The dilation is the price of
  one method for both sets: the BCCD masks are hand polygons drawn around the blurred edge
  (2-3 px outside the half-maximum), dataset1's are tight. None of the features tried tells the
  two conventions apart (adaptive α from class means or percentiles, a threshold maximising the
  edge gradient along the outline, the per-crop edge ramp width).

Everything below is numpy/OpenCV on uint8 images: no Tk, safe in worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from .otsu import otsu_four, otsu_three, otsu_two

#: The Easy-GT program works on every crop resized to this side (issue 6).
WORK_SIZE = 575
#: The batch works at a quarter of that side, the per-pixel model's own (nucleus_pixel.PIXEL_SIDE):
#: 16× fewer pixels toward ≥ 200 crops/s/core (issue 6), and a 575 JPEG decodes straight to it.
#: The nucleus is drawn at the crop's size from the model's probability, so the outline is not
#: a 4× staircase (benchmarks/nucleus_accuracy.py, "batch" and "change").
BATCH_WORK_SIZE = 144

#: Mask values of FORMAT.md ("Masks").
BACKGROUND, CYTOPLASM, NUCLEUS = 0, 128, 255


def gray_world_balance(rgb: np.ndarray) -> np.ndarray:
    """Scale each channel by g / mean(channel), g the mean gray level; rounded, clipped to 255.

    A channel whose mean is 0 (nothing to scale) is left as it is.
    """
    rgb = _as_rgb(rgb)
    means = np.array(cv2.mean(rgb)[:3])
    gray = means.mean()
    scale = np.divide(gray, means, out=np.ones(3), where=means > 0)
    levels = np.arange(256, dtype=np.float64)
    lut = np.clip(np.floor(levels[:, None] * scale[None, :] + 0.5), 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut.reshape(256, 1, 3))


def cmyk_magenta(rgb: np.ndarray) -> np.ndarray:
    """CMYK M as 8 bit: K = 1 − max(r, g, b), M = (1 − g − K) / (1 − K) = (max − g) / max; 0 where K = 1.

    Rounded to the nearest level (OpenCV rounds halves to even).
    """
    rgb = _as_rgb(rgb)
    top = cv2.max(cv2.max(cv2.extractChannel(rgb, 0), cv2.extractChannel(rgb, 1)),
                  cv2.extractChannel(rgb, 2))
    return _ratio(top, cv2.extractChannel(rgb, 1))


def nuclear_magenta(rgb: np.ndarray) -> np.ndarray:
    """Magenta against the blue channel: max(B − G, 0) / B as 8 bit; 0 where B = 0.

    Like CMYK M for violet pixels (there max = B), but low for red eosin, where M is high.
    """
    rgb = _as_rgb(rgb)
    return _ratio(cv2.extractChannel(rgb, 2), cv2.extractChannel(rgb, 1))


def _ratio(top: np.ndarray, green: np.ndarray) -> np.ndarray:
    """255·max(top − green, 0) / top in uint8, 0 where top = 0 (OpenCV's divide by zero)."""
    return cv2.divide(cv2.subtract(top, green), top, scale=255)


def pixel_model(rgb: np.ndarray) -> np.ndarray:
    """P(nucleus) of the per-pixel model (:mod:`.nucleus_pixel`) as 8 bit, at the image's size."""
    from .nucleus_pixel import nucleus_probability  # it builds on this module's channels
    rgb = _as_rgb(rgb)
    probability = nucleus_probability(rgb)
    if probability.shape == rgb.shape[:2]:  # the batch works at the model's side
        return probability
    return cv2.resize(probability, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


_CHANNELS = {"cmyk_magenta": cmyk_magenta, "nuclear_magenta": nuclear_magenta, "pixel_model": pixel_model}


@dataclass(frozen=True)
class NucleusThresholds:
    """Otsu thresholds of one crop's channel, computed once (the slider only compares)."""

    t2: int
    t3_low: int
    t3_up: int


def nucleus_thresholds(channel: np.ndarray) -> NucleusThresholds:
    """Two-class and three-class Otsu on the 8-bit channel (scikit-image's, see :mod:`.otsu`).

    A crop with fewer than three grey levels has no three-class split; both T3 equal T2 then.
    """
    span, first, used = _histogram_span(channel)
    if used < 2:
        return NucleusThresholds(first, first, first)
    t2 = otsu_two(span, first)
    if used < 3:
        return NucleusThresholds(t2, t2, t2)
    return NucleusThresholds(t2, *otsu_three(span, first))


def _histogram_span(channel: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(counts of every level from the lowest used to the highest, that lowest level, how many
    levels are used): the histogram scikit-image builds itself for an integer image. An empty
    channel gives level 0."""
    hist = cv2.calcHist([channel], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    levels = np.flatnonzero(hist)
    if not len(levels):
        return hist[:0], 0, 0
    return hist[levels[0]:levels[-1] + 1], int(levels[0]), len(levels)


def background_threshold(channel: np.ndarray) -> int:
    """The lowest of the four-class Otsu thresholds of an 8-bit channel: background below it.

    Why four classes for the whole-cell outline: a crop holds background, pale cytoplasm, red
    cells and the nucleus; split in three, pale cytoplasm went with the background wherever the
    crop holds little of it (whole-cell Dice dataset1 / BCCD 0.924 / 0.808 with the lower
    three-class threshold, 0.950 / 0.831 with this one; benchmarks/nucleus_accuracy.py).
    With fewer than four grey levels, the lower three-class threshold.
    """
    span, first, used = _histogram_span(channel)
    if used < 4:
        return nucleus_thresholds(channel).t3_low
    return otsu_four(span, first)[0]


def combined_threshold(th: NucleusThresholds, alpha: float) -> int:
    """T = (1 − α)·T2 + α·T3up (issue 6, step 4), as the slider's integer: M > T ⇔ M > floor(T)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return int(np.floor((1.0 - alpha) * th.t2 + alpha * th.t3_up))


@dataclass(frozen=True)
class NucleusMethod:
    """One way to turn a crop into a nucleus mask; ``dilate`` is a fraction of √(nucleus area).

    ``threshold`` fixes the automatic threshold on the channel (the model's P = 0.5) instead of
    the Otsu combination with ``alpha``.
    """

    channel: str
    alpha: float
    balance: bool = True
    clean: bool = False
    dilate: float = 0.0
    threshold: int | None = None

    def __post_init__(self) -> None:
        if self.channel not in _CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}; known: {', '.join(_CHANNELS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.threshold is not None and not 0 <= self.threshold <= 255:
            raise ValueError(f"threshold must be in 0-255, got {self.threshold}")


#: The public Easy-GT program: gray world, CMYK M, M > T2, nothing else.
EASY_GT = NucleusMethod("cmyk_magenta", alpha=0.0)
#: The plain baseline of the README: two-class Otsu on M of the unbalanced crop.
PLAIN_OTSU = NucleusMethod("cmyk_magenta", alpha=0.0, balance=False)
#: The best single threshold rule (module docstring; benchmarks/nucleus_accuracy.py prints the fit).
FITTED_THRESHOLD = NucleusMethod("nuclear_magenta", alpha=0.5, clean=True, dilate=0.02)
#: The default: the per-pixel model of :mod:`.nucleus_pixel`, nucleus where P ≥ 0.5.
PIXEL_MODEL = NucleusMethod("pixel_model", alpha=0.0, clean=True, threshold=127)
FITTED = PIXEL_MODEL
#: The panel's methods by the channel their slider threshold is a level of: a saved threshold
#: records its channel, so a cell adjusted under the earlier default reopens on that scale.
SLIDER_METHODS = {m.channel: m for m in (FITTED_THRESHOLD, PIXEL_MODEL)}


def clean_nucleus(mask: np.ndarray, dilate: float = 0.0) -> np.ndarray:
    """Drop parts under a tenth of the largest, fill holes, dilate by ``dilate``·√area px.

    Works on outer outlines: a part's size is the area inside its outline, and drawing the
    kept outlines filled is the hole filling, in one pass (fast enough for the live slider).
    """
    binary = mask.view(np.uint8) if mask.dtype == bool else (mask > 0).astype(np.uint8)
    kept = _kept_outlines(binary)
    if not kept:
        return np.zeros(binary.shape, dtype=bool)
    filled = cv2.drawContours(np.zeros_like(binary), kept, -1, 1, thickness=cv2.FILLED)
    radius = int(round(dilate * np.sqrt(cv2.countNonZero(filled)))) if dilate else 0
    if radius > 0:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        filled = cv2.dilate(filled, disk)
    return filled.view(bool)


def _kept_outlines(binary: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    """Outer outlines of the parts of a 0/1 mask at least a tenth of the largest (clean_nucleus),
    shifted by ``offset`` (x, y)."""
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=offset)
    if not contours:
        return []
    # contourArea of a one-pixel-wide part is 0; count its pixels instead (the outline length).
    areas = [max(cv2.contourArea(c), len(c)) for c in contours]
    largest = max(areas)
    return [c for c, area in zip(contours, areas) if area >= largest / 10]


class NucleusSession:
    """A crop prepared for the live slider: channel and thresholds at 575×575, computed once.

    ``mask_for`` and ``overlay`` are a comparison, the clean-up and a blend (≤ 16 ms, issue 6);
    higher threshold = smaller nucleus. ``crop_mask`` gives the mask at the crop's own size.
    ``work_size`` other than 575 is for the batch (:data:`BATCH_WORK_SIZE`).
    """

    def __init__(self, rgb: np.ndarray, method: NucleusMethod = FITTED, work_size: int = WORK_SIZE):
        rgb = _as_rgb(rgb)
        self.method = method
        self.crop_size = (rgb.shape[1], rgb.shape[0])
        self.rgb = _to_work_size(rgb, work_size)
        self._work = gray_world_balance(self.rgb) if method.balance else self.rgb
        self.channel = _CHANNELS[method.channel](self._work)
        self.auto_threshold = (combined_threshold(self.thresholds, method.alpha)
                               if method.threshold is None else method.threshold)
        self._tint: tuple[tuple[int, int, int], float, np.ndarray] | None = None

    @cached_property
    def thresholds(self) -> NucleusThresholds:
        """Otsu on the channel (only the threshold methods need it)."""
        return nucleus_thresholds(self.channel)

    def mask_for(self, threshold: int) -> np.ndarray:
        """Nucleus at 575×575 for a slider threshold (0-255): channel > threshold, then clean-up."""
        mask = self.channel > threshold
        return clean_nucleus(mask, self.method.dilate) if self.method.clean else mask

    def overlay(self, threshold: int, color: tuple[int, int, int] = (0, 255, 0),
                opacity: float = 0.4) -> np.ndarray:
        """The 575×575 crop with the nucleus blended in ``color``: what the panel shows."""
        if self._tint is None or self._tint[:2] != (color, opacity):
            tint = cv2.addWeighted(self.rgb, 1 - opacity, np.full_like(self.rgb, color), opacity, 0)
            self._tint = (color, opacity, tint)
        out = self.rgb.copy()
        cv2.copyTo(self._tint[2], self.mask_for(threshold).view(np.uint8), out)
        return out

    def crop_mask(self, threshold: int | None = None) -> np.ndarray:
        """The nucleus at the crop's own size (default: the automatic threshold)."""
        mask = self.mask_for(self.auto_threshold if threshold is None else threshold)
        return to_crop_size(mask, self.crop_size)

    def cell_mask(self, nucleus: np.ndarray | None = None) -> np.ndarray:
        """The automatic whole-cell outline at the crop's size (see :func:`_cell_outline`).

        ``nucleus`` is a 575×575 mask (``mask_for`` after the expert's adjustment); default:
        the automatic one.
        """
        if nucleus is None:
            nucleus = self.mask_for(self.auto_threshold)
        return _cell_outline(self._work, nucleus, self.crop_size) | to_crop_size(nucleus, self.crop_size)

    def automatic_mask(self, size: tuple[int, int], nucleus_only: bool = False) -> np.ndarray:
        """The automatic FORMAT.md mask at ``size`` = (width, height): 0/128/255, or 0/255.

        No outline work with ``nucleus_only``. When ``size`` is larger than the work side, the
        nucleus is the interpolated channel over the threshold, cleaned at ``size``: a smooth
        outline where enlarging the work mask would give a staircase.
        """
        out = np.zeros((size[1], size[0]), np.uint8)  # BACKGROUND is 0
        work = None  # the work-size nucleus: the cell's seed, or the nucleus itself when shrinking
        if not nucleus_only:
            work = self.mask_for(self.auto_threshold)
            _draw_cell(self._work, work, out, CYTOPLASM)
        if size[0] > self.channel.shape[1] or size[1] > self.channel.shape[0]:
            channel = cv2.resize(self.channel, size, interpolation=cv2.INTER_LINEAR)
            if self.method.clean and not self.method.dilate:  # drawn straight from the kept outlines
                return cv2.drawContours(out, self._outlines_over(channel), -1, NUCLEUS, thickness=cv2.FILLED)
            nucleus = cv2.threshold(channel, self.auto_threshold, 1, cv2.THRESH_BINARY)[1]
            if self.method.clean:
                nucleus = clean_nucleus(nucleus, self.method.dilate)
        else:
            nucleus = to_crop_size(self.mask_for(self.auto_threshold) if work is None else work, size)
        out[nucleus.view(bool)] = NUCLEUS  # the nucleus always counts as part of the cell
        return out

    def _outlines_over(self, enlarged: np.ndarray) -> list[np.ndarray]:
        """Kept outlines of ``enlarged`` (the channel interpolated up) over the automatic threshold.

        Only the box around the work-size pixels over it is searched: a linear interpolation of
        levels that are all at most the threshold stays at most the threshold, so nothing outside
        that box (widened by the interpolation's reach) can be over it. A third of the time of
        searching the whole crop, the same outlines.
        """
        over = cv2.threshold(self.channel, self.auto_threshold, 1, cv2.THRESH_BINARY)[1]
        x, y, w, h = cv2.boundingRect(over)  # of the non-zero pixels; 5× faster than via findNonZero
        if not w:
            return []
        (sh, sw), (eh, ew) = self.channel.shape, enlarged.shape
        left, top = max(0, (x - 1) * ew // sw - 2), max(0, (y - 1) * eh // sh - 2)
        right, bottom = min(ew, -(-(x + w + 1) * ew // sw) + 2), min(eh, -(-(y + h + 1) * eh // sh) + 2)
        box = cv2.threshold(enlarged[top:bottom, left:right], self.auto_threshold, 1, cv2.THRESH_BINARY)[1]
        return _kept_outlines(box, offset=(left, top))


def segment_nucleus(rgb: np.ndarray, method: NucleusMethod = FITTED, *,
                    threshold: int | None = None, threshold_offset: int = 0) -> np.ndarray:
    """The nucleus of one crop as a bool mask of the crop's size.

    ``threshold`` replaces the automatic one; ``threshold_offset`` shifts it (the −20…+20
    buttons of Easy-GT).
    """
    session = NucleusSession(rgb, method)
    base = session.auto_threshold if threshold is None else threshold
    return session.crop_mask(int(np.clip(base + threshold_offset, 0, 255)))


def cell_outline(rgb: np.ndarray, method: NucleusMethod = FITTED) -> np.ndarray:
    """The automatic whole-cell mask of a crop (the pen's starting outline, issue 6 step 6)."""
    return NucleusSession(rgb, method).cell_mask()


def batch_mask(rgb: np.ndarray, size: tuple[int, int], nucleus_only: bool = False,
               method: NucleusMethod = FITTED) -> np.ndarray:
    """The automatic FORMAT.md mask of a crop of ``size`` = (width, height), for the batch.

    ``rgb`` may be a reduced decode of the crop (a JPEG decoded at 1/2 scale); the work is
    done at :data:`BATCH_WORK_SIZE` and the mask drawn at ``size``.
    """
    return NucleusSession(rgb, method, BATCH_WORK_SIZE).automatic_mask(size, nucleus_only)


#: The whole-cell outline is a smooth convex hull: a 144-px view of the crop is enough (the
#: batch's own work side: no resizing there).
_CELL_SIDE = BATCH_WORK_SIZE
#: Smoothing of the stain before its threshold, as a fraction of the side. 1.5 % (was 1 % on a
#: 143-px area resize, which smoothed a little more; measured with the three-class threshold):
#: whole-cell Dice dataset1 / BCCD / sample, batch 0.922 / 0.805 / 0.622 against
#: 0.922 / 0.807 / 0.620 before (benchmarks/nucleus_accuracy.py).
_CELL_SMOOTH = 0.015


def _cell_outline(balanced: np.ndarray, nucleus: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The convex hull of the stained region that holds ``nucleus``, drawn at ``size`` = (w, h).

    Stained: CMYK M, smoothed over 1.5 % of the side (granular cytoplasm), above its lowest
    four-class Otsu threshold (:func:`background_threshold`: background | pale cytoplasm | red
    cells and granules | nucleus); the nuclear channel would miss orange-brown cytoplasm. An
    opening of 1 % of the side first cuts red cells that only touch the white cell; the hull,
    since a white cell is a convex blob, closes the pale gaps. United with the hull of what is
    coloured like the cytoplasm next to the nucleus (:func:`_cytoplasm_like`), for cells whose
    pale cytoplasm fills a tight box. Whole-cell Dice: benchmarks/nucleus_accuracy.py.
    """
    outline = np.zeros((size[1], size[0]), dtype=np.uint8)
    return _draw_cell(balanced, nucleus, outline, 1).view(bool)


def _draw_cell(balanced: np.ndarray, nucleus: np.ndarray, out: np.ndarray, value: int) -> np.ndarray:
    """Fill the whole-cell outline of :func:`_cell_outline` with ``value`` into ``out`` (any size)."""
    full_h, full_w = out.shape
    small = _to_work_size(balanced, _CELL_SIDE)
    seed = nucleus.view(np.uint8)
    if seed.shape != (_CELL_SIDE, _CELL_SIDE):
        seed = cv2.resize(seed, (_CELL_SIDE, _CELL_SIDE), interpolation=cv2.INTER_NEAREST)
    # A separable float kernel on uint8: 3× faster than GaussianBlur's bit-exact path.
    magenta = cv2.sepFilter2D(cmyk_magenta(small), -1, _CELL_KERNEL, _CELL_KERNEL)
    stained = cv2.threshold(magenta, background_threshold(magenta), 1, cv2.THRESH_BINARY)[1]
    stained = cv2.morphologyEx(stained, cv2.MORPH_OPEN, _CELL_OPENING)
    # The stained parts that hold a nucleus pixel, and the nucleus: outer outlines of the union
    # that contain one of the nucleus' own outline points.
    parts, _ = cv2.findContours(stained | seed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cores, _ = cv2.findContours(seed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = [tuple(float(v) for v in core[0, 0]) for core in cores]
    kept = [part for part in parts if any(cv2.pointPolygonTest(part, point, False) >= 0 for point in points)]
    hulls = [cv2.convexHull(np.vstack(kept))] if kept else []
    like = _cytoplasm_like(small, seed)
    if like is not None:
        hulls.append(like)
    scale = np.array([full_w / _CELL_SIDE, full_h / _CELL_SIDE])
    for hull in hulls:  # the union of the two hulls
        corners = hull.reshape(-1, 2) + 0.5
        cv2.fillPoly(out, [np.round(corners * scale - 0.5).astype(np.int32)], value)
    return out


#: The cytoplasm's colour is the mean of a ring this far outside the nucleus (px at half of
#: _CELL_SIDE), and pixels within _CYTOPLASM_DELTA of it (CIELAB as OpenCV scales it to 8 bits)
#: count as cytoplasm.
_CYTOPLASM_RING = (1, 3)
_CYTOPLASM_DELTA = 15


def _cytoplasm_like(small: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
    """Convex hull (OpenCV points at _CELL_SIDE) of the region coloured like the ring just
    outside the nucleus and connected to that ring; None when there is no ring to sample.

    Why: the stain threshold of :func:`_draw_cell` misses pale cytoplasm when the crop holds
    little background (a box drawn tight around the cell: the sample project's cells fill
    theirs); the cytoplasm's own colour, measured next to the nucleus, finds it in any stain.
    Whole-cell Dice dataset1 / BCCD / sample 0.953 / 0.837 / 0.637 → 0.958 / 0.916 / 0.954 with
    this hull added (benchmarks/nucleus_accuracy.py; no crop worse by more than 0.05 but 7 of
    BCCD's 303). Worked at half the side: 0.3 ms; at the full side 0.960 / 0.921 / 0.954 for
    0.8 ms. δ 10 / 20 lost on BCCD or the sample set; the ring's median instead of its mean
    traded dataset1 for the sample set (0.955 / 0.916 / 0.968).
    """
    half = (small.shape[1] // 2, small.shape[0] // 2)
    small = cv2.resize(small, half, interpolation=cv2.INTER_AREA)
    seed = cv2.resize(seed, half, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(cv2.sepFilter2D(small, -1, _CYTOPLASM_BLUR, _CYTOPLASM_BLUR), cv2.COLOR_RGB2LAB)
    outside = cv2.distanceTransform(1 - seed, cv2.DIST_L2, 3)
    near, far = _CYTOPLASM_RING
    ring = cv2.inRange(outside, near + 1e-3, far - 1e-3)  # 255 strictly between
    if cv2.countNonZero(ring) < 10:
        return None
    # The squared difference to the ring's colour of each 8-bit level, looked up: 40 % faster
    # than subtracting and squaring every pixel, the same float32 values.
    offset = _LEVELS_32F[:, None] - np.float32(cv2.mean(lab, ring)[:3])
    squares = cv2.LUT(lab, (offset * offset).reshape(256, 1, 3))
    similar = cv2.compare(cv2.transform(squares, _SUM3), _CYTOPLASM_DELTA ** 2, cv2.CMP_LT)
    region = cv2.morphologyEx(similar, cv2.MORPH_OPEN, _SQUARE3)
    count, labels = cv2.connectedComponents(region)
    # the parts that reach the ring: the nucleus' blurred edge may leave a gap up to its inner side
    reach = np.zeros(count, np.uint8)
    reach[labels[(ring > 0) & (region > 0)]] = 1
    reach[0] = 0
    if not reach.any():
        return None
    parts, _ = cv2.findContours(reach[labels] | seed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.convexHull(np.vstack(parts)) * 2 + 0.5


#: The smoothing before the colour is compared (σ 1.5 px at _CELL_SIDE: granules, noise).
_CYTOPLASM_BLUR = cv2.getGaussianKernel(5, 0.75, cv2.CV_32F)  # at half the side
_SQUARE3 = np.ones((3, 3), np.uint8)
_SUM3 = np.ones((1, 3), np.float32)
_LEVELS_32F = np.arange(256, dtype=np.float32)


#: The Gaussian of that smoothing (σ = _CELL_SMOOTH · side, OpenCV's own size for 8-bit images).
_CELL_KERNEL = cv2.getGaussianKernel(int(round(_CELL_SMOOTH * _CELL_SIDE * 6 + 1)) | 1, _CELL_SMOOTH * _CELL_SIDE,
                                     cv2.CV_32F)
#: The opening of :func:`_draw_cell`: a disk of 1 % of the side (1 px at 144). With the four-class
#: threshold (before the cytoplasm hull was added), whole-cell Dice dataset1 / BCCD / sample
#: 0.953 / 0.837 / 0.637 against 0.951 / 0.835 / 0.631 at 2 % and 0.948 / 0.833 / 0.627 at 3 %.
_CELL_OPENING = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(0.01 * _CELL_SIDE)) + 1,) * 2)


def compose_mask(cell: np.ndarray, nucleus: np.ndarray | None) -> np.ndarray:
    """The FORMAT.md mask: 0 background, 128 cytoplasm, 255 nucleus.

    ``nucleus=None`` gives a whole-cell mask with 128 only (basophils: granules hide the
    nucleus border, issue 6). The nucleus always counts as part of the cell.
    """
    cell = np.ascontiguousarray(cell, dtype=bool)
    out = cell.view(np.uint8) * np.uint8(CYTOPLASM)  # BACKGROUND is 0
    if nucleus is not None:
        nucleus = np.ascontiguousarray(nucleus, dtype=bool)
        if nucleus.shape != cell.shape:
            raise ValueError(f"nucleus mask {nucleus.shape} and cell mask {cell.shape} differ in size")
        out = cv2.max(out, nucleus.view(np.uint8) * np.uint8(NUCLEUS))
    return out


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got shape {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError("the crop is empty (0 pixels)")
    return np.ascontiguousarray(rgb)


def _to_work_size(rgb: np.ndarray, side: int) -> np.ndarray:
    if rgb.shape[:2] == (side, side):
        return rgb
    # Area averaging when shrinking (no aliasing of granules); linear when enlarging, as Easy-GT.
    shrink = rgb.shape[0] > side and rgb.shape[1] > side
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_crop_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A work-size mask at (width, height) = ``size``: interpolate (area-average when shrinking,
    linear when enlarging) and keep pixels over half."""
    if mask.shape[::-1] == size:
        return mask
    shrink = size[0] <= mask.shape[1] and size[1] <= mask.shape[0]
    resized = cv2.resize(mask.view(np.uint8) * np.uint8(255), size,
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized > 127
