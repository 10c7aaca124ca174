"""Two simulated experts labeling the sample blind, with a realistic pattern of disagreement.

Most boxes come from accepted detector proposals, so both experts' records share the cell id
and the box; the rest are drawn by hand, each expert with their own id and a slightly
different box (matched by IoU, FORMAT.md). Labels carry the disagreements issue 2 names,
the kind a double-labeled set such as Raabin-WBC shows: large vs small lymphocyte, band vs
mature neutrophil, burst vs artifact, some cells not recognized, and a few parent-only labels
when the sub-type was unclear.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from ..core.annotation import Box, Cell, ImageAnnotation, Status
from ..core.project import author_for

EXPERTS = ("expert-a", "expert-b")
DETECTOR_SOURCE = "detector:colorfilter-1"
ACCEPTED_PROPOSALS = 0.75  # share of cells whose box came from the detector
MISSED = 0.06  # chance an expert leaves a truth cell unboxed
EXTRA_BOX = 0.12  # chance per photo that an expert boxes something that is not a truth cell
START = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)

#: P(expert's label | true class). The rest of each row's mass is the true class.
CONFUSION: dict[str, dict[str, float]] = {
    "neutrophil.mature": {"neutrophil.band": 0.08, "neutrophil": 0.04, "not_recognized": 0.02},
    "neutrophil.band": {"neutrophil.mature": 0.25, "neutrophil.meta": 0.05, "neutrophil": 0.06},
    "neutrophil.meta": {"neutrophil.band": 0.15, "monocyte": 0.06, "not_recognized": 0.05},
    "lymphocyte.small": {"lymphocyte.large": 0.15, "lymphocyte": 0.04},
    "lymphocyte.large": {"lymphocyte.small": 0.25, "monocyte": 0.08, "lymphocyte": 0.04},
    "monocyte": {"lymphocyte.large": 0.1, "not_recognized": 0.06},
    "eosinophil": {"neutrophil": 0.03},
    "basophil": {"not_recognized": 0.08, "eosinophil": 0.04},
    "burst": {"artifact": 0.22, "not_recognized": 0.1},
    "artifact": {"burst": 0.2, "not_recognized": 0.1},
}


def _stamp(minutes: float) -> str:
    return (START + timedelta(minutes=float(minutes))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell_id(rng: np.random.Generator) -> str:
    return "c-" + "".join(f"{v:x}" for v in rng.integers(0, 16, 10))


def expert_label(true_label: str, rng: np.random.Generator) -> str:
    confusions = CONFUSION.get(true_label, {})
    roll, acc = rng.random(), 0.0
    for label, p in confusions.items():
        acc += p
        if roll < acc:
            return label
    return true_label


def _redrawn(box: Box, rng: np.random.Generator, spread: float, width: int, height: int) -> Box:
    """``box`` with each side moved by a few percent of its size, as a hand or a detector would."""
    sx, sy = box.width * spread, box.height * spread
    x1, x2 = box.x1 + rng.normal(0, sx), box.x2 + rng.normal(0, sx)
    y1, y2 = box.y1 + rng.normal(0, sy), box.y2 + rng.normal(0, sy)
    x1, y1 = max(0, round(x1)), max(0, round(y1))
    x2, y2 = min(width, round(x2)), min(height, round(y2))
    if x2 - x1 < box.width // 2 or y2 - y1 < box.height // 2:
        return box
    return Box(x1, y1, x2, y2)


def _stray_box(truth: ImageAnnotation, rng: np.random.Generator) -> Box | None:
    """A box on something else (a platelet clump, overlapping red cells) that an expert queried."""
    w, h = truth.image.width, truth.image.height
    side = int(min(w, h) * rng.uniform(0.06, 0.09))
    for _ in range(50):
        box = Box.around(rng.uniform(side, w - side), rng.uniform(side, h - side), side)
        if box.inside(w, h) and all(box.iou(c.box) == 0 for c in truth.cells):
            return box
    return None


def expert_annotations(truth: ImageAnnotation, rng: np.random.Generator, minute: float,
                       finished: dict[str, bool]) -> list[ImageAnnotation]:
    """Both experts' files for one photo; ``finished`` says who marked the photo done."""
    w, h = truth.image.width, truth.image.height
    cells: dict[str, list[Cell]] = {e: [] for e in EXPERTS}
    clock = minute
    for truth_cell in truth.cells:
        proposal = rng.random() < ACCEPTED_PROPOSALS
        shared_id, shared_box = _cell_id(rng), _redrawn(truth_cell.box, rng, 0.03, w, h)
        for expert in EXPERTS:
            clock += rng.uniform(0.2, 0.8)
            if rng.random() < MISSED:
                continue
            label = expert_label(str(truth_cell.label), rng)
            if proposal:
                cell_id, box, source = shared_id, shared_box, DETECTOR_SOURCE
            else:
                cell_id, box, source = _cell_id(rng), _redrawn(truth_cell.box, rng, 0.05, w, h), "hand"
            cells[expert].append(Cell(cell_id, box, label, source, created=_stamp(clock - 0.1),
                                      modified=_stamp(clock)))
    for expert in EXPERTS:
        if rng.random() < EXTRA_BOX and (box := _stray_box(truth, rng)) is not None:
            label = "artifact" if rng.random() < 0.5 else "not_recognized"
            cells[expert].append(Cell(_cell_id(rng), box, label, "hand", created=_stamp(clock), modified=_stamp(clock)))
    return [ImageAnnotation(truth.image, author_for(expert), tuple(cells[expert]), truth.acquisition,
                            Status(finished[expert], int(rng.integers(40, 240)) if cells[expert] else 0))
            for expert in EXPERTS]
