"""Writing the sample project: photos, ground truth with nucleus masks, two experts' labels.

Everything derives from the seed, and nothing depends on the clock or the output folder, so
the same seed gives byte-identical files (the committed ``sample_data/`` can be checked).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..core.annotation import Acquisition, Author, Cell, ImageAnnotation, ImageRef, Status
from ..core.imageio import file_sha256
from ..core.project import Project
from ..core.store import backup_path
from ..errors import UserError
from . import render
from .camera import camera, photograph
from .experts import EXPERTS, expert_annotations
from .scene import MICROSCOPE, Field, Region, SampleConfig, plan_sample, visible_part

TRUTH = "truth"
TRUTH_AUTHOR = Author("import", TRUTH, {"note": "synthetic ground truth: exact boxes, classes and nuclei"})
TRUTH_STAMP = "2025-03-10T08:00:00Z"
#: Photos expert-b has not finished, and how many at the end they have not opened at all.
UNFINISHED_B, UNOPENED_B = 2, 1

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SampleSummary:
    photos: int
    truth_cells: int
    physical_cells: int
    bytes: int


def draw_region(region: Region, config: SampleConfig) -> tuple[np.ndarray, dict[str, render.CellSprite]]:
    """The region's optical density and each truth cell's sprite (by physical id)."""
    rng = np.random.default_rng([config.seed, 1, region.seed])
    od = render.background(rng, region.height, region.width)
    for x, y, r in region.red_cells:
        render.paint(od, render.Sprite(render.red_cell(rng, r), x, y))
    for x, y, r in region.platelets:
        render.paint(od, render.Sprite(render.platelet(rng, r), x, y))
    for x, y in region.specks:
        render.paint(od, render.Sprite(render.dust(rng), x, y))
    sprites = {c.physical: render.white_cell(c.label, c.diameter, c.seed, c.cx, c.cy) for c in region.cells}
    for sprite in sprites.values():
        render.paint(od, sprite)
    return od, sprites


def _write_photo(project: Project, config: SampleConfig, region: Region, f: Field, index: int, od: np.ndarray,
                 sprites: dict[str, render.CellSprite], left: int) -> int:
    """One photo, its truth (with masks) and both experts' files; returns the truth cell count."""
    cam = camera(f.camera)
    pixels = photograph(od[f.y:f.y + f.height, f.x:f.x + f.width], cam, np.random.default_rng([config.seed, 2, index]))
    path = project.image_path(f.image)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=config.quality, optimize=True)

    cells = []
    for planned in region.cells:
        seen = visible_part(planned, sprites[planned.physical], f)
        if seen is None:
            continue
        cell_id = f"t-{index + 1:02d}-{len(cells) + 1}"
        mask_rel = f"masks/{TRUTH}/{f.image}/{cell_id}.png"
        mask_path = project.mask_path(mask_rel)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(seen.mask).save(mask_path)
        cells.append(Cell(cell_id, seen.box, planned.label, "synthetic", mask_rel,
                          created=TRUTH_STAMP, modified=TRUTH_STAMP,
                          extra={"physical_cell": planned.physical, "visible_fraction": seen.visible}))
    image = ImageRef(f.image, f.width, f.height, file_sha256(path))
    acquisition = Acquisition(region.smear, "Giemsa", MICROSCOPE, 100, cam.name, region.diagnosis)
    # Where the photo lies in its region, so dedup can be scored: same region, shifted boxes.
    where = {"region": region.name, "x": f.x, "y": f.y}
    truth = ImageAnnotation(image, TRUTH_AUTHOR, tuple(cells), acquisition, Status(True, 0),
                            {"synthetic_field": where})
    project.save(truth)

    finished = {"expert-a": True, "expert-b": left > UNFINISHED_B}
    for annotation in expert_annotations(truth, np.random.default_rng([config.seed, 3, index]), index * 12.0,
                                         finished):
        if annotation.author.id == "expert-b" and left <= UNOPENED_B:
            continue
        project.save(annotation)
    return len(cells)


def _check_empty(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: not an empty folder; the sample is written into a new or empty one")


def generate_sample(out: Path, config: SampleConfig = SampleConfig(),
                    progress: Progress | None = None) -> SampleSummary:
    """Make the sample project in ``out`` (new or empty); returns what was written."""
    out = Path(out)
    _check_empty(out)
    plan = plan_sample(config)
    project = Project.create(out, name="Synthetic smears (sample)", experts=list(EXPERTS))
    project.data["default_box_size"] = round(13 * config.px_per_um)  # a mid-sized white cell
    project.data["cell_diameter_px"] = round(12.5 * config.px_per_um)  # the detector's size scale
    project.data["sample"] = {"made_by": "raabin-labeler sample", "seed": config.seed, "photos": config.photos}
    project.save_settings()
    backup_path(out / "project.json").unlink()  # a fresh project needs no backup of itself

    fields = plan.fields()
    truth_cells = 0
    index = 0
    for region in plan.regions:
        od, sprites = draw_region(region, config)
        for f in region.fields:
            truth_cells += _write_photo(project, config, region, f, index, od, sprites, len(fields) - index)
            index += 1
            if progress:
                progress(index, len(fields), f.image)

    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    physical = sum(len(region.cells) for region in plan.regions)
    return SampleSummary(len(fields), truth_cells, physical, size)
