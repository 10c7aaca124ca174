"""Parts of the per-pixel model's nucleus that belong to something else (issue 6, accuracy).

Why: the model judges each pixel by its colour and surroundings, so it cannot see shape. Mean
nucleus Dice was lost mostly on a few crops where it took for nucleus the cell's dark membrane
rim (a thin arc, on its own or joined to the nucleus) or a neighbouring cell's nucleus cut by
the crop's edge. Each rule below is scale-free and sits in a wide empty gap between the crops
it helps and the crops it would hurt, on both reference stains (for the thin rule: ratios
≤ 0.34 on helped crops, ≥ 0.57 on hurt ones; for the far rule: gaps ≤ 0.72 of the nucleus'
radius between BCCD's pairs of real nuclei, ≥ 0.92 to dataset1's neighbours).
Held-out nucleus Dice (benchmarks/nucleus_accuracy.py --fit-pixel) dataset1 0.958 → 0.962,
BCCD and the sample set unchanged, no crop worse on three fold splits.

The parts are damped, not erased: their P is halved, so they stay out of the automatic
nucleus (P over one half) and come back when the expert lowers the slider far enough.
"""
from __future__ import annotations

import cv2
import numpy as np

#: The rim joined to the nucleus: what an opening by a disk of this fraction of the mask's
#: largest inscribed radius removes, in pieces of at least ``RIM_AREA`` of the mask.
RIM_OPENING = 0.3
RIM_AREA = 0.1
#: A rim arc on its own: a part whose inscribed radius is under this fraction of the largest part's.
THIN = 0.45
#: A neighbour's nucleus: a part touching the crop's edge, further from the largest part than
#: this fraction of that part's equivalent radius.
FAR = 0.8
#: The automatic cut on P (uint8): over it is nucleus.
CUT = 127


def damp_stray_parts(probability: np.ndarray) -> np.ndarray:
    """``probability`` (uint8) with the P of the stray parts of P > CUT halved (a copy if any)."""
    mask = cv2.compare(probability, CUT, cv2.CMP_GT)  # 0/255
    area = cv2.countNonZero(mask)
    if area == 0 or area == mask.size:  # nothing, or nothing but nucleus: no shape to judge
        return probability
    stray = np.zeros_like(mask)
    radius = cv2.distanceTransform(mask, cv2.DIST_L2, 3)  # each pixel's inscribed radius
    rim = _joined_rim(mask, radius, area)
    if rim is not None:
        stray |= rim
        mask = cv2.subtract(mask, rim)
        radius = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    stray |= _stray_pieces(mask, radius)
    if not stray.any():
        return probability
    out = probability.copy()
    out[stray > 0] >>= 1
    return out


def _joined_rim(mask: np.ndarray, radius: np.ndarray, area: int) -> np.ndarray | None:
    """The pieces (0/255) an opening by a disk of RIM_OPENING × the largest inscribed radius
    cuts off, when one is at least RIM_AREA of the mask; None when there is none."""
    widest = cv2.minMaxLoc(radius)[1]
    r = max(2, round(RIM_OPENING * widest))
    if widest <= r:  # nothing survives the erosion: a speck, not a nucleus with a rim
        return None
    # The opening as two distance transforms: eroded = radius > r, opened = within r of it.
    to_core = cv2.distanceTransform(cv2.compare(radius, r, cv2.CMP_LE), cv2.DIST_L2, 3)
    band = cv2.subtract(mask, cv2.compare(to_core, r, cv2.CMP_LE))
    if cv2.countNonZero(band) < RIM_AREA * area:  # the usual case: no labelling needed
        return None
    _, labels, stats, _ = cv2.connectedComponentsWithStats(band, connectivity=8)
    big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= RIM_AREA * area) + 1
    if not big.size:
        return None
    return np.isin(labels, big).view(np.uint8) * np.uint8(255)


def _stray_pieces(mask: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Parts (0/255) other than the largest that are thin arcs, or far neighbours at the edge."""
    out = np.zeros_like(mask)
    parts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if len(parts) < 2:
        return out
    areas = [max(cv2.contourArea(c), len(c)) for c in parts]  # as clean_nucleus measures them
    big = int(np.argmax(areas))
    largest = cv2.drawContours(np.zeros_like(mask), parts, big, 255, cv2.FILLED)
    thickest = cv2.minMaxLoc(radius, largest)[1]
    reach = FAR * np.sqrt(cv2.countNonZero(largest) / np.pi)
    gap = None
    height, width = mask.shape
    for k, part in enumerate(parts):
        if k == big or areas[k] < areas[big] / 20:  # clean_nucleus drops parts under a tenth anyway
            continue
        filled = cv2.drawContours(np.zeros_like(mask), parts, k, 255, cv2.FILLED)
        stray = cv2.minMaxLoc(radius, filled)[1] < THIN * thickest
        x, y, w, h = cv2.boundingRect(part)
        if not stray and (x == 0 or y == 0 or x + w == width or y + h == height):
            if gap is None:
                gap = cv2.distanceTransform(cv2.bitwise_not(largest), cv2.DIST_L2, 3)
            stray = cv2.minMaxLoc(gap, filled)[0] > reach
        if stray:
            out |= filled
    return out
