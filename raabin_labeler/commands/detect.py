"""``raabin-labeler detect PROJECT``: colour-filter WBC proposals for every photo (issue 4).

Writes only ``annotations/detector/<image>.json`` (a job never writes a file an expert owns),
skipping photos already done unless ``--redo``. Photos are decoded and searched in worker
processes on every core; the files are written here, by one process. ``--fit`` first re-fits
the colour filter on the project's own expert labels instead of the BCCD default. The expected
WBC diameter comes from ``cell_diameter_px`` in project.json when set, else from each photo.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.annotation import Box, Cell, ImageAnnotation
from ..core.detection import (DECODE_SIDE, DETECTOR_SOURCE, CellScale, ColorModel, LabeledPhoto,
                              default_model, detect_photo, fit_color_model)
from ..core.imageio import ImageError, open_reduced
from ..core.jobs import Finished, ItemDone, Job, PoolRunner, Runner
from ..core.project import DETECTOR, Project, author_for
from ..errors import UserError
from ..progress import ProgressBar

#: Labels that are not white blood cells: never nucleus examples when fitting.
NOT_WBC = ("artifact",)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("detect", help="propose WBC boxes on every photo of a project",
                            description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, metavar="PROJECT")
    parser.add_argument("--redo", action="store_true", help="also photos that have proposals already")
    parser.add_argument("--fit", action="store_true", help="re-fit the detector on this project's expert labels first")
    parser.set_defaults(run=run)


def project_scale(project: Project) -> CellScale | None:
    value = project.data.get("cell_diameter_px")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 1:
        raise UserError(f"{project.root / 'project.json'} (cell_diameter_px): expected a number of pixels above 1")
    return CellScale(float(value))


def training_photos(project: Project) -> list[LabeledPhoto]:
    """Every photo with expert or consensus boxes, decoded reduced, boxes scaled to match."""
    photos = []
    for author in project.authors():
        if author == DETECTOR:
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


def detect_one(task: tuple[str, Path, ColorModel, CellScale | None]) -> list[tuple[tuple[int, int, int, int], float]]:
    """Worker (a pool process): one photo's proposals as plain tuples."""
    _, path, model, scale = task
    try:
        return [(p.box, p.confidence) for p in detect_photo(path, model, scale) if p.kind == "wbc"]
    except ImageError as exc:  # re-raised plainly: the pool must pickle it back
        raise ValueError(str(exc)) from None


def proposals_annotation(project: Project, image: str, found) -> ImageAnnotation:
    cells = tuple(replace(Cell.new(Box(*box), source=DETECTOR_SOURCE), extra={"confidence": confidence})
                  for box, confidence in found)
    return ImageAnnotation(project.image_ref(image), author_for(DETECTOR), cells)


def detect_project(project: Project, model: ColorModel, images: list[str],
                   runner: Runner | None = None) -> tuple[int, list[str]]:
    """Proposals for ``images`` into annotations/detector/: (photos written, error lines)."""
    scale = project_scale(project)
    tasks = [(image, project.image_path(image), model, scale) for image in images]
    job = Job("detect", detect_one, tasks, runner=runner or PoolRunner(processes=True),
              describe=lambda task: task[0])
    errors: list[str] = []
    written = 0
    with ProgressBar(len(tasks), "detect") as bar:
        job.start()  # on a thread, so the bar is drawn while the pool works
        while True:
            event = job.events.get()
            if isinstance(event, ItemDone):
                image = event.outcome.item[0]
                if event.outcome.error is None:
                    try:
                        project.save(proposals_annotation(project, image, event.outcome.value))
                        written += 1
                    except UserError as exc:
                        errors.append(str(exc))
                else:
                    errors.append(f"{image}: {event.outcome.error.split(': ', 1)[-1]}")
                bar.update(written + len(errors), image)
            elif isinstance(event, Finished):
                if event.last_error and event.done < event.total:
                    errors.append(f"the job stopped early: {event.last_error}")
                break
    return written, errors


def run(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    model = default_model()
    if args.fit:
        photos = training_photos(project)
        if not photos:
            raise UserError(f"{project.root}: no expert boxes to fit on (label some cells first, or drop --fit)")
        try:
            model = fit_color_model(photos, name=project.name)
        except ValueError as exc:
            raise UserError(f"{project.root}: cannot fit the detector: {exc}") from None
        print(f"fitted the detector on {sum(len(p.boxes) for p in photos)} cells in {len(photos)} photos")
    images = [i for i in project.images() if args.redo or not project.has_annotation(DETECTOR, i)]
    written, errors = detect_project(project, model, images)
    for line in errors:
        print(f"raabin-labeler: {line}", file=sys.stderr)
    print(f"proposals written for {written} photos ({len(project.images()) - len(images)} already done)")
    if errors:
        raise UserError(f"{len(errors)} of {len(images)} photos failed (listed above)")
    return 0
