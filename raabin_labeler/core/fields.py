"""Overlapping microscope fields: one stretch of smear in two photos, found from the whole photos.

Why (issue 5): the crop-level test of :mod:`.dedup` only sees the cell. A cell cut to a strip by
one photo's border, or out of focus in one photo, lacks the texture to prove it is the same
(BCCD rows 172/178 and 160/192, never linked from their crops), yet the red cells around it
are in both photos. Two fields of one slide under one microscope differ by a move of the stage,
a translation; the normalised cross-correlation of the two photos over every shift finds it:
band-passed (red-cell edges, not the illumination), minus the pattern every photo of that size
shares (dust on the sensor, vignetting: on BCCD it peaked at zero shift for unrelated photos),
scored over the part the two photos share only. All pairs are screened at a small side (one
batched FFT per photo), the few that pass are measured again at a larger side. Photos of other
sizes are not compared: another camera, another scale, left to the crop-level test.

On BCCD's 292 photos (benchmarks/dedup_accuracy.py) the search reports 31 overlapping pairs,
scoring 0.90-0.98 at the verify side: the 22 that hold a duplicated white cell, and 9 that share
only red cells (00107/00108, 00147/00148, 00276/00277 looked at by eye: the same red cells at
the shift found). At the screening side those 31 score 0.82 or more, any other pair at most 0.67.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image
from scipy import fft

from .annotation import Box


@dataclass(frozen=True)
class FieldRule:
    screen_side: int = 80  # longer side of the screening view, px
    verify_side: int = 320
    min_overlap: float = 0.1  # the shared part, as a fraction of a photo
    screen_ncc_at_least: float = 0.6
    ncc_at_least: float = 0.8
    #: The shared pattern is the mean of the views of one size; with fewer photos than this the
    #: mean holds too much of each photo, and only the zero shift is left out instead.
    common_pattern_from: int = 8
    box_iou_at_least: float = 0.5  # of two cells' boxes within the shared part


@dataclass(frozen=True)
class FieldPhoto:
    """What the search keeps of a photo: its full size and a grey view at the verify side."""

    name: str
    size: tuple[int, int]  # full resolution (width, height)
    view: np.ndarray  # uint8 grey, longer side = FieldRule.verify_side
    smear: str | None = None  # photos of two known smears never overlap: not compared


@dataclass(frozen=True)
class FieldOverlap:
    """Photo ``b`` shows at (x + dx, y + dy) what photo ``a`` shows at (x, y) (full-size px)."""

    a: str
    b: str
    dx: float
    dy: float
    ncc: float
    overlap: float  # fraction of photo a's area that b shows too

    def evidence(self) -> dict:
        return {"photos": [self.a, self.b], "shift": [round(self.dx), round(self.dy)],
                "field_ncc": round(self.ncc, 4), "field_overlap": round(self.overlap, 3)}


def field_photo(name: str, photo: Image.Image | np.ndarray, rule: FieldRule = FieldRule(),
                smear: str | None = None) -> FieldPhoto:
    """The search's view of one photo (a PIL image, or a grey or RGB array); the full photo is
    not kept: 4160×3120 photos add up."""
    if isinstance(photo, Image.Image):
        photo = np.asarray(photo.convert("L"))
    grey = photo if photo.ndim == 2 else cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    return FieldPhoto(name, (w, h), _resize(grey, rule.verify_side), smear)


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def band_pass(grey: np.ndarray, side: int) -> np.ndarray:
    """The view at ``side`` (longer side), difference of Gaussians σ side/160 − side/40: cell
    edges kept, illumination and pixel noise out."""
    view = np.float32(_resize(grey, side))
    return cv2.GaussianBlur(view, (0, 0), side / 160) - cv2.GaussianBlur(view, (0, 0), side / 40)


#: Band-passed RMS (grey levels) under which a shared part counts as blank.
_FLAT = 0.5


class _Correlator:
    """Normalised cross-correlation over all shifts of equally sized views, via padded FFTs.

    Zero-mean over the part the two views share at each shift (a smooth trend the band-pass
    leaves, such as vignetting, is no likeness); a shared part with next to no texture (a blank
    stretch of slide, band-passed RMS under half a grey level) scores 0. Each view's sums over
    the shared part are computed once, so a pair costs one inverse FFT and a few products.
    """

    def __init__(self, views: np.ndarray, min_overlap: float, exclude_zero: bool):
        _, h, w = views.shape
        self.h, self.w = h, w
        self.shape = (2 * h, 2 * w)  # padding: no wrap-around
        self.spectra = fft.rfft2(views, self.shape, workers=-1)
        ones = fft.rfft2(np.ones((h, w), np.float32), self.shape)
        squares = fft.rfft2(views * views, self.shape, workers=-1)
        count = np.maximum(np.rint(fft.irfft2(np.conj(ones) * ones, self.shape)), 1).astype(np.float32)
        self.shared = count / (h * w)
        valid = self.shared >= min_overlap
        if exclude_zero:
            valid[np.ix_([-1, 0, 1], [-1, 0, 1])] = False
        floor = count * _FLAT ** 2

        def scale(sums: np.ndarray, energy: np.ndarray, where: np.ndarray) -> np.ndarray:
            variance = energy - sums * sums / count
            return np.where(where & (variance >= floor), 1 / np.sqrt(np.maximum(variance, floor)), 0).astype(np.float32)

        # the first view's sums over the part it shares at each shift, and the second's
        sums = fft.irfft2(np.conj(self.spectra) * ones, self.shape, workers=-1)
        self.first = scale(sums, fft.irfft2(np.conj(squares) * ones, self.shape, workers=-1), valid)
        self.first_mean = (sums / count).astype(np.float32)
        self.second_sums = fft.irfft2(np.conj(ones) * self.spectra, self.shape, workers=-1)
        self.second = scale(self.second_sums, fft.irfft2(np.conj(ones) * squares, self.shape, workers=-1), True)

    def best(self, i: int, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, flat index of the best shift) of view i against each of ``others``."""
        ncc = fft.irfft2(np.conj(self.spectra[i])[None] * self.spectra[others], self.shape, workers=-1)
        ncc -= self.first_mean[i] * self.second_sums[others]
        ncc *= self.second[others]
        ncc *= self.first[i]
        flat = ncc.reshape(len(others), -1)
        at = flat.argmax(1)
        return flat[np.arange(len(others)), at], at

    def shift(self, at: int) -> tuple[int, int, float]:
        """(dx, dy, shared fraction) of a flat index from :meth:`best`."""
        dy, dx = np.unravel_index(at, self.shape)
        shared = float(self.shared[dy, dx])
        return (int(dx) - self.shape[1] if dx >= self.w else int(dx),
                int(dy) - self.shape[0] if dy >= self.h else int(dy), shared)


class _Views:
    """Band-passed views of a group of photos at one side, minus the mean of all of them when
    there are enough (the shared pattern; else the zero shift is left out)."""

    def __init__(self, photos: Sequence[FieldPhoto], side: int, rule: FieldRule):
        self.photos, self.side, self.rule = photos, side, rule
        self.common = len(photos) >= rule.common_pattern_from
        self.pattern = sum(band_pass(p.view, side) for p in photos) / len(photos) if self.common else 0

    def correlator(self, indices: Sequence[int]) -> _Correlator:
        views = np.stack([band_pass(self.photos[k].view, self.side) - self.pattern for k in indices])
        return _Correlator(views, self.rule.min_overlap, exclude_zero=not self.common)


#: Photos whose FFTs are held at once: the screening keeps ~0.4 MB per photo, the verification
#: ~6 MB (4160×3120 photos at 80 and 320 px), so memory stays bounded in a project of thousands.
SCREEN_BLOCK = 512
VERIFY_BLOCK = 16


def find_overlaps(photos: Sequence[FieldPhoto], rule: FieldRule = FieldRule(),
                  progress: Callable[[int, int], None] | None = None) -> list[FieldOverlap]:
    """Every pair of photos (of one size, and of one smear where both say) that shows a shared
    stretch of smear.

    The screening compares every such pair: its cost grows with the square of the photos of one
    smear (benchmarks/dedup_accuracy.py: BCCD's 292 photos, which record no smear, in ~8 s).
    ``progress(done, total)`` follows the photos screened.
    """
    by_size: dict[tuple[tuple[int, int], tuple[int, int]], list[FieldPhoto]] = {}
    for p in photos:
        by_size.setdefault((p.size, p.view.shape), []).append(p)
    out: list[FieldOverlap] = []
    done = 0

    def screened(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, len(photos))

    for group in by_size.values():
        out += _verify(group, _screen(group, rule, screened), rule)
    return out


def _screen(photos: Sequence[FieldPhoto], rule: FieldRule, screened: Callable[[int], None]) -> list[tuple[int, int]]:
    """Pairs (i < j) whose views at the screening side correlate enough, in blocks of photos."""
    if len(photos) < 2:
        screened(len(photos))
        return []
    views = _Views(photos, rule.screen_side, rule)
    smears = np.array([p.smear or "" for p in photos])
    candidates = []
    for first in range(0, len(photos), SCREEN_BLOCK):
        rows = np.arange(first, min(first + SCREEN_BLOCK, len(photos)))
        for second in range(first, len(photos), SCREEN_BLOCK):
            cols = np.arange(second, min(second + SCREEN_BLOCK, len(photos)))
            held = np.union1d(rows, cols)
            correlator, at = views.correlator(held), {k: n for n, k in enumerate(held.tolist())}
            for i in rows.tolist():
                later = cols[cols > i]
                if smears[i]:
                    later = later[(smears[later] == smears[i]) | (smears[later] == "")]
                if len(later):
                    scores, _ = correlator.best(at[i], np.array([at[j] for j in later.tolist()]))
                    candidates += [(i, j) for j in later[scores >= rule.screen_ncc_at_least].tolist()]
                if second + SCREEN_BLOCK >= len(photos):  # the row's last block: photo i is done
                    screened(1)
    return candidates


def _verify(photos: Sequence[FieldPhoto], candidates: list[tuple[int, int]], rule: FieldRule) -> list[FieldOverlap]:
    """The candidate pairs measured again at the verify side, a few photos' FFTs at a time."""
    if not candidates:
        return []
    views = _Views(photos, rule.verify_side, rule)
    out = []
    pending = sorted(candidates)
    while pending:
        held: list[int] = []
        batch = []
        for pair in pending:
            grown = set(held) | set(pair)
            if len(grown) > VERIFY_BLOCK and batch:
                continue
            held, batch = sorted(grown), batch + [pair]
        taken = set(batch)
        pending = [pair for pair in pending if pair not in taken]
        correlator, at = views.correlator(held), {k: n for n, k in enumerate(held)}
        scale = photos[0].size[0] / correlator.w
        for i, j in batch:
            score, best = correlator.best(at[i], np.array([at[j]]))
            if score[0] >= rule.ncc_at_least:
                dx, dy, shared = correlator.shift(int(best[0]))
                out.append(FieldOverlap(photos[i].name, photos[j].name, dx * scale, dy * scale,
                                        float(score[0]), shared))
    return out


def same_cells(overlap: FieldOverlap, boxes_a: Sequence[Box], boxes_b: Sequence[Box],
               size: tuple[int, int], rule: FieldRule = FieldRule()) -> list[tuple[int, int, float]]:
    """(index in a, index in b, IoU) of the cells both photos show at one place.

    Boxes are compared within the part the two photos share (``size``: the photos' full size),
    so a cell that one photo's border cuts to a strip matches the same strip of the whole cell.
    """
    w, h = size
    dx, dy = overlap.dx, overlap.dy
    shared = (max(0.0, dx), max(0.0, dy), min(w, w + dx), min(h, h + dy))  # in b's pixels
    moved = [_clip((b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy), shared) for b in boxes_a]
    kept = [_clip((b.x1, b.y1, b.x2, b.y2), shared) for b in boxes_b]
    out = []
    for i, first in enumerate(moved):
        for j, second in enumerate(kept):
            if first is not None and second is not None:
                iou = _iou(first, second)
                if iou >= rule.box_iou_at_least:
                    out.append((i, j, iou))
    return out


Rect = tuple[float, float, float, float]


def _clip(rect: Rect, within: Rect) -> Rect | None:
    x1, y1 = max(rect[0], within[0]), max(rect[1], within[1])
    x2, y2 = min(rect[2], within[2]), min(rect[3], within[3])
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _iou(a: Rect, b: Rect) -> float:
    meet = _clip(a, b)
    if meet is None:
        return 0.0
    inter = (meet[2] - meet[0]) * (meet[3] - meet[1])
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def overlapping_cells(photos: Sequence[FieldPhoto], boxes: Mapping[str, Sequence[Box]],
                      rule: FieldRule = FieldRule(),
                      progress: Callable[[int, int], None] | None = None) -> list[tuple[str, int, str, int, dict]]:
    """(photo a, cell index, photo b, cell index, evidence) for every cell two overlapping
    fields both show."""
    sizes = {p.name: p.size for p in photos}
    out = []
    for overlap in find_overlaps(photos, rule, progress=progress):
        for i, j, iou in same_cells(overlap, boxes.get(overlap.a, ()), boxes.get(overlap.b, ()),
                                    sizes[overlap.a], rule):
            out.append((overlap.a, i, overlap.b, j, {**overlap.evidence(), "box_iou": round(iou, 3)}))
    return out
