"""Detector proposals for a whole project: fitting on its labels, writing annotations/detector/.

Shared by ``raabin-labeler detect`` and the window's "Detect cells". A job never writes a
file an expert owns (issue 4): only ``annotations/detector/<image>.json``. A photo detected
again keeps the ids of its earlier proposals where the boxes still match, so the cells experts
already accepted or rejected stay linked to them.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import UserError
from .annotation import Box, Cell, ImageAnnotation
from .detection import (DECODE_SIDE, DETECTOR_SOURCE, CellScale, ColorModel, LabeledPhoto, fit_color_model,
                        detect_photo)
from .imageio import ImageError, open_reduced
from .project import DETECTOR, Project, author_for
from .store import StoreError

#: Labels that are not white blood cells: never nucleus examples when fitting.
NOT_WBC = ("artifact",)
SAME_CELL_IOU = 0.5

Task = tuple[str, Path, ColorModel, "CellScale | None"]


def project_scale(project: Project) -> CellScale | None:
    value = project.data.get("cell_diameter_px")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 1:
        raise UserError(f"{project.root / 'project.json'} (cell_diameter_px): expected a number of pixels above 1")
    return CellScale(float(value))


def training_photos(project: Project, exclude: tuple[str, ...] = ()) -> list[LabeledPhoto]:
    """Every photo with expert or consensus boxes, decoded reduced, boxes scaled to match.

    ``exclude`` names authors left out (an evaluation keeps its truth author out of the fit).
    """
    photos = []
    for author in project.authors():
        if author == DETECTOR or author in exclude:
            continue
        for image, annotation, _ in project.iter_annotations(author):
            cells = [c for c in annotation.cells if not c.rejected and (c.label or "").split(".")[0] not in NOT_WBC] \
                if annotation else []
            if not cells:
                continue
            picture, ratio = open_reduced(project.image_path(image), DECODE_SIDE, project.max_pixels)
            boxes = [tuple(round(v * ratio) for v in c.box.as_list()) for c in cells]
            photos.append(LabeledPhoto(np.asarray(picture), boxes, name=f"{author}/{image}"))
    return photos


def fit_on_project(project: Project, exclude: tuple[str, ...] = ()) -> tuple[ColorModel, int, int]:
    """The detector re-fitted on the project's own labeled cells: (model, cells, photos)."""
    photos = training_photos(project, exclude)
    if not photos:
        left_out = f" other than {', '.join(map(repr, exclude))}" if exclude else ""
        raise UserError(f"{project.root}: no labeled cells{left_out} to fit the detector on "
                        "(label some cells first, or drop --fit)")
    try:
        model = fit_color_model(photos, name=project.name)
    except ValueError as exc:
        raise UserError(f"{project.root}: cannot fit the detector: {exc}") from None
    return model, sum(len(p.boxes) for p in photos), len(photos)


def detection_tasks(project: Project, model: ColorModel, images: list[str]) -> list[Task]:
    scale = project_scale(project)
    return [(image, project.image_path(image), model, scale) for image in images]


def detect_one(task: Task) -> list[tuple[tuple[int, int, int, int], float]]:
    """Worker (runs in a pool process): one photo's proposals as plain, picklable tuples."""
    _, path, model, scale = task
    try:
        return [(p.box, p.confidence) for p in detect_photo(path, model, scale) if p.kind == "wbc"]
    except ImageError as exc:  # re-raised plainly: the pool must pickle it back
        raise ValueError(str(exc)) from None


def save_proposals(project: Project, image: str, found) -> ImageAnnotation:
    """Write one photo's proposals, reusing the ids of earlier proposals of the same cells."""
    try:
        earlier = project.load(DETECTOR, image)
    except StoreError:
        earlier = None
    old = list(earlier.cells) if earlier else []
    cells = []
    for box, confidence in found:
        box = Box(*box)
        match = max(old, key=lambda c: c.box.iou(box), default=None)
        if match is not None and match.box.iou(box) >= SAME_CELL_IOU:
            old.remove(match)
            cell = replace(match, box=box, extra={**match.extra, "confidence": confidence})
        else:
            cell = replace(Cell.new(box, source=DETECTOR_SOURCE), extra={"confidence": confidence})
        cells.append(cell)
    annotation = ImageAnnotation(project.image_ref(image), author_for(DETECTOR), tuple(cells))
    project.save(annotation, overwrite_broken=True)  # the detector's own file: always re-creatable
    return annotation
