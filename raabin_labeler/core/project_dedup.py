"""Duplicate cells across a project's photos (issue 5): find them, mark them, never delete.

One author's cells are cut out as square crops and searched with :mod:`.dedup` (robust mode:
also the cells two overlapping photos show at one place, :mod:`.fields`); every dropped
cell gets ``duplicate_of: "<image>#<cell id>"`` naming the sharpest copy, which is kept. The
review screen's decisions live on the cells too (``duplicate_decision``: "confirmed" or
"not_duplicate") and a later run respects them. Exports leave dropped cells out.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from . import dedup, fields
from .annotation import Box, Cell, ImageAnnotation
from .imageio import crop_square, open_image
from .jobs import Runner
from .project import Project
from .store import StoreError
from .taxonomy import Taxonomy

DECISION = "duplicate_decision"
EVIDENCE = "duplicate_evidence"
CONFIRMED, NOT_DUPLICATE = "confirmed", "not_duplicate"


def cell_ref(image: str, cell_id: str) -> str:
    return f"{image}#{cell_id}"


def split_ref(ref: str) -> tuple[str, str]:
    image, _, cell_id = ref.rpartition("#")
    return image, cell_id


@dataclass
class ProjectDuplicates:
    groups: list[dedup.DuplicateGroup]  # names are cell refs "<image>#<cell id>"
    redundant_photos: list[str]
    cells: int
    unreadable: list[StoreError] = field(default_factory=list)  # files left out of the search


def _cells_of(annotation: ImageAnnotation, taxonomy: Taxonomy) -> list[Cell]:
    """The white cells searched: rejected proposals and cells of extra labels (an import's RBC,
    Platelets) left out. Red cells look alike and chained into groups (QA: 555 of BCCD's RBC boxes
    marked as duplicates at NCC 0.98, so exports dropped them); issue 5 is about white cells."""
    return [c for c in annotation.cells if not c.rejected
            and not (c.label is not None and c.label in taxonomy and taxonomy.get(c.label).extra)]


def find_project_duplicates(project: Project, author: str, *, mode: dedup.Mode = "robust",
                            runner: Runner | None = None,
                            progress: Callable[[int, int], None] | None = None,
                            fields_progress: Callable[[int, int], None] | None = None) -> ProjectDuplicates:
    """Search every cell of ``author`` for copies of one physical cell in other photos.

    ``progress`` follows the crops hashed, ``fields_progress`` the photos compared (robust mode).
    """
    names: list[str] = []
    paths: list[str] = []
    photo_cells: dict[str, list[str]] = {}
    views: list[fields.FieldPhoto] = []
    boxes: dict[str, list[Box]] = {}
    first_row: dict[str, int] = {}
    cut: set[int] = set()
    unreadable: list[StoreError] = []
    with tempfile.TemporaryDirectory(prefix="raabin-dedup-") as tmp:
        for image in project.images():
            try:
                annotation = project.load(author, image)
            except StoreError as exc:
                unreadable.append(exc)  # left alone, and named in the result
                continue
            cells = _cells_of(annotation, project.taxonomy) if annotation else []
            if not cells:
                continue
            photo = open_image(project.image_path(image), project.max_pixels)
            photo_cells[image] = [c.id for c in cells]
            first_row[image] = len(paths)
            boxes[image] = [c.box for c in cells]
            if mode == "robust":
                views.append(fields.field_photo(image, photo, smear=annotation.acquisition.smear))
            width, height = photo.size
            for cell in cells:
                if cell.box.x1 <= 0 or cell.box.y1 <= 0 or cell.box.x2 >= width or cell.box.y2 >= height:
                    cut.add(len(paths))
                path = Path(tmp) / f"{len(paths):06d}.jpg"
                Image.fromarray(crop_square(photo, cell.box)).save(path, quality=95)
                names.append(cell_ref(image, cell.id))
                paths.append(str(path))
        linked = [(first_row[a] + i, first_row[b] + j, evidence)
                  for a, i, b, j, evidence in fields.overlapping_cells(views, boxes, progress=fields_progress)]
        groups = dedup.find_duplicates(paths, names, mode=mode, runner=runner, progress=progress,
                                       linked=linked, cut=cut) if paths else []
    dropped = {split_ref(d)[1]: split_ref(g.keep)[1] for g in groups for d in g.drop}
    return ProjectDuplicates(groups, dedup.redundant_photos(photo_cells, dropped), len(paths), unreadable)


def mark_duplicates(project: Project, author: str, found: ProjectDuplicates) -> int:
    """Write ``duplicate_of`` into the author's files; returns how many cells changed.

    Marks from an earlier run that the search no longer supports are cleared, except where a
    person decided in the review screen: their decision stands.
    """
    target: dict[str, str] = {}
    evidence: dict[str, dict] = {}
    for group in found.groups:
        for ref in group.drop:
            target[ref] = group.keep
            evidence[ref] = group.evidence.get("distances", {}).get(ref, {})
    changed = 0
    for image in project.images():
        try:
            annotation = project.load(author, image)
        except StoreError:
            continue
        if annotation is None:
            continue
        cells = []
        for cell in annotation.cells:
            ref = cell_ref(image, cell.id)
            decision = cell.extra.get(DECISION)
            if decision == CONFIRMED:
                new, extra = cell.duplicate_of, cell.extra
            elif decision == NOT_DUPLICATE:
                new, extra = None, cell.extra
            else:
                new = target.get(ref)
                extra = {k: v for k, v in cell.extra.items() if k != EVIDENCE}
                if new is not None:
                    extra[EVIDENCE] = evidence[ref]
            if new != cell.duplicate_of or extra != cell.extra:
                cell = replace(cell, duplicate_of=new, extra=extra)
                changed += 1
            cells.append(cell)
        if cells != list(annotation.cells):
            project.save(annotation.with_cells(cells))
    return changed


def marked_groups(project: Project, author: str) -> list[tuple[str, list[str]]]:
    """The groups as marked in the files: (kept cell ref, its duplicates' refs), for review."""
    return groups_in((image, annotation.cells) for image, annotation, _ in project.iter_annotations(author)
                     if annotation)


def groups_in(photos: Iterable[tuple[str, Iterable[Cell]]]) -> list[tuple[str, list[str]]]:
    """(kept cell ref, its duplicates' refs) of the marks on these photos' cells, by kept ref."""
    groups: dict[str, list[str]] = {}
    for image, cells in photos:
        for cell in cells:
            if cell.duplicate_of:
                groups.setdefault(cell.duplicate_of, []).append(cell_ref(image, cell.id))
    return sorted(groups.items())
