"""The colour-filter WBC detector: fit a per-pixel colour model from labeled cells, propose boxes.

The Raabin-WBC paper's first approach (issue 4): "a number of white blood cells were extracted
manually as ground truth, and a colour filter was trained to separate the white blood cells from
the background". WBC nuclei stain a purple that red cells, platelets and background lack, so a
nucleus filter finds the cells; a second filter (whole cell: nucleus plus the pale cytoplasm)
gives each cell's extent, and a margin fitted to the experts' boxes makes the box match how
experts draw them.

Everything here works on a reduced copy of the photo in which the expected WBC is about
``WORK_CELL_PX`` pixels across; proposals come back in the input's pixel frame. Pure functions,
no Tk, safe to run in worker processes.

The shipped default (``assets/detector_default.json``) is fitted on BCCD's train split by::

    raabin-labeler evaluate-detection --save-model assets/detector_default.json
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
from skimage.measure import label as label_regions

from ..errors import FileProblem

MODEL_FORMAT = "raabin-labeler/colorfilter-1"
DETECTOR_SOURCE = "detector:colorfilter-1"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "assets" / "detector_default.json"

#: Expected WBC diameter in the working copy: enough pixels for lobes and a tight box
#: (one working pixel ≈ 2 % of a cell), few enough for ≤ 150 ms on a 13 MP photo.
WORK_CELL_PX = 56.0
#: Nucleus fragments closer than this (× cell diameter) belong to one cell (neutrophil lobes).
LOBE_GAP = 0.08
#: Cytoplasm is searched no further than this (× cell diameter) from the cell's nucleus.
CELL_REACH = 0.7
#: The survey copy used to estimate the scale from red cells.
SURVEY_SIDE = 512
#: When a photo shows no red cells to measure, assume BCCD's framing (a WBC ≈ 0.3 of the long side).
FALLBACK_CELL_FRACTION = 0.3
#: Holes in stained areas larger than this fraction of the photo are background, never pale centres.
SMALL_HOLE = 0.005
#: A hole this convex (area / convex hull area) is a red cell's pale centre, not a gap between cells.
PALE_CENTRE_SOLIDITY = 0.8
#: detect_photo decodes at most this long side (JPEG: a 1/4-size DCT decode of a 4160×3120 photo).
DECODE_SIDE = 1040


def _features(rgb: np.ndarray) -> np.ndarray:
    """Quadratic colour features of each pixel: [1, r, g, b, r², g², b², rg, rb, gb], rgb in 0..1."""
    x = rgb.reshape(-1, 3).astype(np.float32) / np.float32(255.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return np.stack([np.ones_like(r), r, g, b, r * r, g * g, b * b, r * g, r * b, g * b], axis=1)


N_FEATURES = 10


def _quadratic(rgb: np.ndarray, w: Sequence[float]) -> np.ndarray:
    """``_features(rgb) @ w`` per pixel, in Horner form (no feature matrix: 3× faster)."""
    x = rgb.astype(np.float32) * np.float32(1 / 255)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    w = [np.float32(v) for v in w]
    return w[0] + r * (w[1] + w[4] * r + w[7] * g + w[8] * b) + g * (w[2] + w[5] * g + w[9] * b) + b * (w[3] + w[6] * b)

N_CELL_FEATURES = 7


@dataclass(frozen=True)
class ColorModel:
    """A fitted detector: two per-pixel logistic colour filters, a cell rule and a box margin.

    ``nucleus`` and ``cell`` are weights of quadratic logistic regressions on RGB (log-odds of
    "nucleus" and of "inside a WBC" per pixel). ``cell_rule`` weighs a nucleus group's
    features (``_cell_features``) into the probability that it is a WBC and not a platelet,
    platelet clump or stain spot. Areas are in units of D², D the expected cell diameter.
    """

    nucleus: tuple[float, ...]
    cell: tuple[float, ...]
    nucleus_threshold: float = 0.0
    cell_threshold: float = 0.0
    cell_per_rbc: float = 2.1  # expected WBC box side / red-cell diameter measured by estimate_cell_scale
    cell_rule: tuple[float, ...] = (0.0,) * N_CELL_FEATURES
    min_confidence: float = 0.5
    max_nucleus_area: float = 1.5
    box_margin: float = 0.0  # added on each side, as a fraction of the box's side
    fitted_on: str = ""
    format: str = MODEL_FORMAT

    def __post_init__(self) -> None:
        for name, size in (("nucleus", N_FEATURES), ("cell", N_FEATURES), ("cell_rule", N_CELL_FEATURES)):
            weights = getattr(self, name)
            if len(weights) != size or not all(math.isfinite(w) for w in weights):
                raise ValueError(f"{name}: expected {size} finite weights")
        if self.cell_per_rbc <= 0 or self.max_nucleus_area <= 0:
            raise ValueError("cell_per_rbc and max_nucleus_area must be positive")

    def nucleus_logit(self, rgb: np.ndarray) -> np.ndarray:
        return _quadratic(rgb, self.nucleus)

    def cell_logit(self, rgb: np.ndarray) -> np.ndarray:
        return _quadratic(rgb, self.cell)

    def to_json(self) -> dict:
        return asdict(self) | {k: list(getattr(self, k)) for k in ("nucleus", "cell", "cell_rule")}

    @classmethod
    def from_json(cls, data: dict) -> "ColorModel":
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a {MODEL_FORMAT} detector model")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("nucleus", "cell", "cell_rule"):
            values[name] = tuple(float(w) for w in values[name])
        return cls(**values)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "ColorModel":
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise FileProblem(path, "detector model not found") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise FileProblem(path, f"is not a usable detector model: {exc}") from None


_default: ColorModel | None = None


def default_model() -> ColorModel:
    """The model shipped in assets/, fitted on BCCD's train split (loaded once per process)."""
    global _default
    if _default is None:
        _default = ColorModel.load(DEFAULT_MODEL_PATH)
    return _default


@dataclass(frozen=True)
class CellScale:
    """The expected WBC diameter (box side) in the input photo's pixels."""

    cell_diameter_px: float

    def __post_init__(self) -> None:
        if not self.cell_diameter_px > 1:
            raise ValueError(f"cell diameter must exceed 1 px, got {self.cell_diameter_px}")


@dataclass(frozen=True)
class Proposal:
    """A detector's cell not yet accepted: box in the input's pixels, x2/y2 exclusive.

    ``kind`` is "wbc" for every proposal of this colour filter; "artifact" is kept for a
    future stain-spot proposal (issue 4), which it does not make yet.
    """

    box: tuple[int, int, int, int]
    confidence: float
    kind: str = "wbc"


def _reduce(rgb: np.ndarray, factor: float) -> np.ndarray:
    """A smaller copy; pixel averaging (INTER_AREA) where it matters against aliasing, below ½."""
    if factor >= 1:
        return rgb
    h, w = rgb.shape[:2]
    method = cv2.INTER_AREA if factor <= 0.5 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=method)


def _fill_pale_centres(stained: np.ndarray) -> np.ndarray:
    """``stained`` with red cells' pale centres filled and the gaps between red cells left open.

    A pale centre is a round hole; a gap enclosed by touching red cells is bounded by their
    convex outlines, so its sides bow inwards (the gap between three touching discs has a
    solidity of ≈ 0.4). Telling them apart by shape holds at any magnification, where a size
    limit (a fraction of the photo) fills the gaps of a dense field on a high-resolution photo
    and makes its red cells look like one big blob.
    """
    contours, hierarchy = cv2.findContours(stained, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return stained
    limit = SMALL_HOLE * stained.size
    holes = []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0]):
        if parent < 0:
            continue  # an outer boundary, not a hole
        area = cv2.contourArea(contour)
        if area < limit and area >= PALE_CENTRE_SOLIDITY * cv2.contourArea(cv2.convexHull(contour)):
            holes.append(contour)
    filled = stained.copy()
    cv2.drawContours(filled, holes, -1, 1, -1)
    return filled


def rbc_diameter(rgb: np.ndarray) -> float | None:
    """The typical red-cell diameter in px, or None when the photo shows too few stained cells.

    Stained objects are darker in green than the background (Otsu on G); pale centres are
    filled. Each red cell then has a peak of the distance to background at its centre whose
    height is its radius, also where red cells overlap (two overlapping discs keep both
    centre peaks, of height R); the median peak height is the typical radius. Peaks are
    taken among points at least 0.5 × a first radius guess (the 90th percentile of the
    distance) apart, so necks and rims between cells do not count.
    """
    green = cv2.GaussianBlur(np.ascontiguousarray(rgb[..., 1]), (0, 0), 1.0)
    _, stained = cv2.threshold(green, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if not 0.02 < stained.mean() < 0.95:
        return None
    stained = _fill_pale_centres(stained)
    depth = cv2.distanceTransform(stained, cv2.DIST_L2, 5)
    guess = float(np.percentile(depth[stained > 0], 90))
    if guess < 2:
        return None
    peaks = (depth >= cv2.dilate(depth, _disc(max(1, round(guess / 2))))) & (depth >= guess / 2)
    return 2 * float(np.median(depth[peaks]))


def estimate_cell_scale(rgb: np.ndarray, model: ColorModel) -> CellScale:
    """The expected WBC size in ``rgb``'s pixels, from the red cells it shows."""
    long_side = max(rgb.shape[:2])
    factor = 1 / math.ceil(long_side / SURVEY_SIDE)  # an integer step: the fast path of INTER_AREA
    diameter = rbc_diameter(_reduce(rgb, factor))
    if diameter is None:
        return CellScale(FALLBACK_CELL_FRACTION * long_side)
    return CellScale(model.cell_per_rbc * diameter / factor)


@dataclass(frozen=True)
class _Candidate:
    """A nucleus group and its cell region in working pixels (before the cell rule and margin).

    Areas are in units of D². ``features`` feed the fitted cell rule that tells WBCs from
    platelets, platelet clumps and stain spots.
    """

    box: tuple[int, int, int, int]
    nucleus_area: float
    features: np.ndarray


#: Nucleus groups smaller than this (× D²) are specks, never a cell, and not worth judging.
MIN_GROUP_AREA = 0.008


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _cell_features(area: float, largest: float, logit: float, solidity: float, border: bool,
                   cell_area: float) -> np.ndarray:
    """What tells a WBC from a platelet: a big, solid, deeply stained nucleus with cytoplasm."""
    return np.array([1.0, math.log(area), math.log(largest), logit / 5, solidity, float(border),
                     math.log(cell_area / area)])


def _candidates(work: np.ndarray, model: ColorModel, diameter: float) -> list[_Candidate]:
    """Nucleus groups of the working copy with their whole-cell boxes, no cell rule applied."""
    h, w = work.shape[:2]
    nuc_logit = cv2.GaussianBlur(model.nucleus_logit(work), (0, 0), 0.8)
    nucleus = (nuc_logit > model.nucleus_threshold).astype(np.uint8)
    nucleus = cv2.morphologyEx(nucleus, cv2.MORPH_OPEN, _disc(1))
    # Lobes of one neutrophil or eosinophil lie closer together than two cells' nuclei, whose
    # cytoplasm keeps them apart: dilating by a fraction of D joins the lobes only.
    gap = max(1, round(LOBE_GAP * diameter / 2))
    n_groups, groups, group_stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(nucleus, _disc(gap)),
                                                                         connectivity=8)
    if n_groups <= 1:
        return []
    nucleus_groups = groups * nucleus
    areas = np.bincount(nucleus_groups.ravel(), minlength=n_groups).astype(float)
    logit_sums = np.bincount(nucleus_groups.ravel(), weights=nuc_logit.ravel(), minlength=n_groups)
    n_frag, fragments, frag_stats, _ = cv2.connectedComponentsWithStats(nucleus, connectivity=8)
    largest = np.zeros(n_groups)
    frag_group = np.zeros(n_frag, int)
    frag_group[fragments[nucleus > 0]] = nucleus_groups[nucleus > 0]
    np.maximum.at(largest, frag_group[1:], frag_stats[1:, cv2.CC_STAT_AREA])
    unit = diameter ** 2
    judged = [g for g in range(1, n_groups) if areas[g] >= MIN_GROUP_AREA * unit]
    if not judged:
        return []

    cell_logit = cv2.GaussianBlur(model.cell_logit(work), (0, 0), 1.0)
    cell = ((cell_logit > model.cell_threshold) | (nucleus > 0)).astype(np.uint8)
    cell = cv2.morphologyEx(cell, cv2.MORPH_OPEN, _disc(max(1, round(0.05 * diameter))))
    # Each cell pixel belongs to the nearest nucleus group within reach; this splits two
    # touching cells along the line between their nuclei.
    seeds = np.where(np.isin(nucleus_groups, judged), nucleus_groups, 0)
    distance, nearest = cv2.distanceTransformWithLabels((seeds == 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                        labelType=cv2.DIST_LABEL_CCOMP)
    seed_of = np.zeros(nearest.max() + 1, seeds.dtype)
    seed_of[nearest[seeds > 0]] = seeds[seeds > 0]
    owner = seed_of[nearest]
    owner[(distance > CELL_REACH * diameter) | (cell == 0)] = 0
    owner[seeds > 0] = seeds[seeds > 0]
    regions = label_regions(owner, background=0, connectivity=1)

    reach = math.ceil(CELL_REACH * diameter) + 1
    out = []
    for g in judged:
        # A cell lies within reach of its nucleus: look only there.
        gx, gy, gw, gh = group_stats[g, :4]
        wx1, wy1 = max(0, gx - reach), max(0, gy - reach)
        wx2, wy2 = min(w, gx + gw + reach), min(h, gy + gh + reach)
        mine = seeds[wy1:wy2, wx1:wx2] == g
        window = regions[wy1:wy2, wx1:wx2]
        region = np.isin(window, np.unique(window[mine]))
        ys, xs = np.nonzero(region)
        x1, y1, x2, y2 = int(xs.min()) + wx1, int(ys.min()) + wy1, int(xs.max()) + 1 + wx1, int(ys.max()) + 1 + wy1
        hull = cv2.convexHull(np.column_stack(np.nonzero(mine)[::-1]).astype(np.int32))
        solidity = areas[g] / max(areas[g], cv2.contourArea(hull) + 1)
        border = x1 == 0 or y1 == 0 or x2 == w or y2 == h
        features = _cell_features(areas[g] / unit, largest[g] / unit, logit_sums[g] / areas[g],
                                  solidity, border, region.sum() / unit)
        out.append(_Candidate((x1, y1, x2, y2), areas[g] / unit, features))
    return out


def _to_input_frame(box: tuple[int, int, int, int], factor: float, margin: float,
                    width: int, height: int) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = (v / factor for v in box)
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    out = (max(0, round(x1 - dx)), max(0, round(y1 - dy)), min(width, round(x2 + dx)), min(height, round(y2 + dy)))
    return out if out[2] > out[0] and out[3] > out[1] else None


def _confidence(c: _Candidate, model: ColorModel) -> float:
    """The fitted cell rule's probability that this nucleus group is a WBC."""
    z = float(c.features @ np.asarray(model.cell_rule))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


def propose_cells(rgb: np.ndarray, model: ColorModel | None = None,
                  scale: CellScale | None = None) -> list[Proposal]:
    """WBC proposals on one photo (an RGB uint8 array), boxes in its pixel frame.

    ``scale`` is the expected WBC diameter in this photo's pixels (project.json); without it
    the scale is estimated from the red cells. Cells cut by the border are proposed, clipped.
    """
    model = model or default_model()
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise ValueError("expected an RGB uint8 image of shape (height, width, 3)")
    rgb = rgb[..., :3]
    height, width = rgb.shape[:2]
    scale = scale or estimate_cell_scale(rgb, model)
    work = _reduce(rgb, WORK_CELL_PX / scale.cell_diameter_px)
    factor = work.shape[1] / width
    diameter = scale.cell_diameter_px * factor
    proposals = []
    for c in _candidates(work, model, diameter):
        confidence = _confidence(c, model)
        if confidence < model.min_confidence or c.nucleus_area > model.max_nucleus_area:
            continue
        box = _to_input_frame(c.box, factor, model.box_margin, width, height)
        if box is not None:
            proposals.append(Proposal(box, round(confidence, 4)))
    return sorted(proposals, key=lambda p: -p.confidence)


def detect_photo(path: Path, model: ColorModel | None = None,
                 scale: CellScale | None = None) -> list[Proposal]:
    """Decode ``path`` (reduced, for speed) and propose cells in its full displayed frame.

    Safe to run in a worker process (the CLI maps it over a folder with PoolRunner).
    ``scale`` is in full-size pixels.
    """
    from .imageio import open_reduced  # imageio imports annotation; keep this module light

    image, ratio = open_reduced(Path(path), max_side=DECODE_SIDE)
    arr = np.asarray(image)
    full_w, full_h = round(arr.shape[1] / ratio), round(arr.shape[0] / ratio)
    reduced_scale = CellScale(scale.cell_diameter_px * ratio) if scale else None
    out = []
    for p in propose_cells(arr, model, reduced_scale):
        x1, y1, x2, y2 = p.box
        box = (max(0, math.floor(x1 / ratio)), max(0, math.floor(y1 / ratio)),
               min(full_w, math.ceil(x2 / ratio)), min(full_h, math.ceil(y2 / ratio)))
        out.append(replace(p, box=box))
    return out


# --- fitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabeledPhoto:
    """A photo with experts' WBC boxes and, where drawn, nucleus / whole-cell masks (bool)."""

    rgb: np.ndarray
    boxes: Sequence[tuple[int, int, int, int]]
    nucleus_mask: np.ndarray | None = None
    cell_mask: np.ndarray | None = None
    name: str = ""


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iterations: int = 30) -> np.ndarray:
    """Class-balanced L2 logistic regression by Newton's method (IRLS); x includes the bias."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    pos = max(1.0, y.sum())
    neg = max(1.0, len(y) - y.sum())
    weight = np.where(y > 0, 0.5 / pos, 0.5 / neg)
    w = np.zeros(x.shape[1])
    ridge = l2 * np.eye(x.shape[1])
    ridge[0, 0] = 0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (weight * (p - y)) + ridge @ w
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x + ridge
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w


def _box_mask(shape: tuple[int, int], boxes: Iterable[tuple[int, int, int, int]], grow: float = 0.0,
              ellipse: bool = False) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for x1, y1, x2, y2 in boxes:
        dx, dy = grow * (x2 - x1), grow * (y2 - y1)
        if ellipse:
            cv2.ellipse(mask, (round((x1 + x2) / 2), round((y1 + y2) / 2)),
                        (max(1, round((x2 - x1) / 2 + dx)), max(1, round((y2 - y1) / 2 + dy))), 0, 0, 360, 1, -1)
        else:
            mask[max(0, round(y1 - dy)):max(0, round(y2 + dy)), max(0, round(x1 - dx)):max(0, round(x2 + dx))] = 1
    return mask > 0


def _purple_pixels(rgb: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Inside the boxes, the most purple pixels (blue over green, Otsu-split): nucleus examples."""
    purple = rgb[..., 2].astype(np.int16) - rgb[..., 1].astype(np.int16)
    values = np.clip(purple[inside] + 128, 0, 255).astype(np.uint8)
    if values.size == 0:
        return np.zeros_like(inside)
    threshold, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return inside & (purple + 128 > threshold)


def _photo_diameter(photo: LabeledPhoto) -> float | None:
    sides = [max(x2 - x1, y2 - y1) for x1, y1, x2, y2 in photo.boxes]
    return float(np.median(sides)) if sides else None


def _pixel_examples(photo: LabeledPhoto, factor: float, rng: np.random.Generator, per_class: int):
    """Working-scale colour samples: (features, nucleus?) and (features, inside a cell?)."""
    work = _reduce(photo.rgb, factor)
    shape = work.shape[:2]
    f = work.shape[1] / photo.rgb.shape[1]
    boxes = [tuple(v * f for v in b) for b in photo.boxes]

    def resized(mask):
        return cv2.resize(mask.astype(np.uint8), shape[::-1], interpolation=cv2.INTER_NEAREST) > 0

    outside = ~_box_mask(shape, boxes, grow=0.1)
    inside = _box_mask(shape, boxes)
    if photo.nucleus_mask is not None:
        nucleus = resized(photo.nucleus_mask)
        not_nucleus = ~nucleus & ~cv2.dilate(nucleus.astype(np.uint8), _disc(1)).astype(bool) | outside
    else:
        nucleus = _purple_pixels(work, _box_mask(shape, boxes, grow=-0.05))
        not_nucleus = (inside & ~cv2.dilate(nucleus.astype(np.uint8), _disc(2)).astype(bool)) | outside
    if photo.cell_mask is not None:
        cell = resized(photo.cell_mask)
        eroded = cv2.erode(cell.astype(np.uint8), _disc(1)).astype(bool)
        not_cell = ~cv2.dilate(cell.astype(np.uint8), _disc(1)).astype(bool)
        cell = eroded
    else:
        cell = _box_mask(shape, boxes, grow=-0.1, ellipse=True)
        not_cell = outside
    feats = _features(work)

    def draw(pos, neg):
        take = []
        for mask, value in ((pos, 1), (neg, 0)):
            idx = np.flatnonzero(mask.ravel())
            if idx.size:
                idx = rng.choice(idx, min(per_class, idx.size), replace=False)
                take.append((idx, np.full(idx.size, value)))
        if not take:
            return np.zeros((0, N_FEATURES), np.float32), np.zeros(0)
        idx = np.concatenate([t[0] for t in take])
        return feats[idx], np.concatenate([t[1] for t in take])

    return draw(nucleus, not_nucleus), draw(cell, not_cell)


def _box_iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(truth: Sequence[tuple[int, int, int, int]], proposed: Sequence[tuple[int, int, int, int]],
                min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, best IoU first: (truth index, proposal index, IoU) pairs."""
    pairs = sorted(((_box_iou(t, p), i, j) for i, t in enumerate(truth) for j, p in enumerate(proposed)),
                   reverse=True)
    used_t, used_p, out = set(), set(), []
    for iou, i, j in pairs:
        if iou < min_iou:
            break
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            out.append((i, j, iou))
    return out


def fit_color_model(photos: Sequence[LabeledPhoto], *, name: str = "", seed: int = 0,
                    samples_per_photo: int = 3000) -> ColorModel:
    """Fit both colour filters, the cell rule and the box margin from labeled photos.

    Nucleus examples are the nucleus masks where present, else the most purple pixels inside
    the boxes; whole-cell examples are the cell masks, else an ellipse inside each box.
    The cell rule and the box margin are then fitted on the detector's own candidates on
    these photos, matched to the boxes (so boxes come out drawn the way these experts draw).
    """
    rng = np.random.default_rng(seed)
    usable = [p for p in photos if p.boxes]
    if not usable:
        raise ValueError("no labeled cells to fit the detector on")
    nx, ny, cx, cy, ratios = [], [], [], [], []
    for photo in usable:
        diameter = _photo_diameter(photo)
        survey = 1 / math.ceil(max(photo.rgb.shape[:2]) / SURVEY_SIDE)
        rbc = rbc_diameter(_reduce(photo.rgb, survey))
        if rbc:
            ratios.append(diameter * survey / rbc)
        (a, b), (c, d) = _pixel_examples(photo, WORK_CELL_PX / diameter, rng, samples_per_photo)
        nx.append(a), ny.append(b), cx.append(c), cy.append(d)
    nucleus = _fit_logistic(np.concatenate(nx), np.concatenate(ny))
    cell = _fit_logistic(np.concatenate(cx), np.concatenate(cy))
    model = ColorModel(tuple(nucleus), tuple(cell), cell_per_rbc=float(np.median(ratios)) if ratios else 2.1,
                       fitted_on=name)
    return _fit_cell_rule(model, usable)


def _fit_cell_rule(model: ColorModel, photos: Sequence[LabeledPhoto]) -> ColorModel:
    """The cell rule from candidates that match a box (WBC) or none (platelet, spot, fragment);
    the box margin from the sides of matched boxes; the largest plausible nucleus."""
    features, is_cell, areas, deltas = [], [], [], []
    for photo in photos:
        # The scale the detector will estimate at run time, not the true one: the rule must
        # hold for the estimate's errors too.
        diameter = estimate_cell_scale(photo.rgb, model).cell_diameter_px
        work = _reduce(photo.rgb, WORK_CELL_PX / diameter)
        factor = work.shape[1] / photo.rgb.shape[1]
        h, w = photo.rgb.shape[:2]
        cands = _candidates(work, model, diameter * factor)
        boxes = [_to_input_frame(c.box, factor, 0.0, w, h) for c in cands]
        matches = match_boxes(photo.boxes, boxes, min_iou=0.3)
        matched = {j for _, j, _ in matches}
        for j, c in enumerate(cands):
            features.append(c.features)
            is_cell.append(j in matched)
        for i, j, _ in matches:
            areas.append(cands[j].nucleus_area)
            t, p = photo.boxes[i], boxes[j]
            pw, ph = p[2] - p[0], p[3] - p[1]
            # Sides on the photo border are clipped in both boxes and say nothing about margin.
            if p[0] > 0:
                deltas.append((p[0] - t[0]) / pw)
            if p[1] > 0:
                deltas.append((p[1] - t[1]) / ph)
            if p[2] < w:
                deltas.append((t[2] - p[2]) / pw)
            if p[3] < h:
                deltas.append((t[3] - p[3]) / ph)
    if not areas:
        raise ValueError("the colour filter found none of the labeled cells; check the labels")
    rule = _fit_logistic(np.array(features), np.array(is_cell), l2=1e-3)
    return replace(model, cell_rule=tuple(float(v) for v in rule), max_nucleus_area=float(1.5 * max(areas)),
                   box_margin=float(np.median(deltas)) if deltas else 0.0)
