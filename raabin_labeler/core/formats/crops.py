"""Square crops around each cell, one folder per label, with a CSV saying where each came from.

The side is the project's ``default_box_size`` (575 px, the Raabin-WBC crops) centred on the
cell; parts beyond the photo's edge are padded black so every crop has the same size and the
cell stays centred. Crops are JPEG like the Raabin-WBC crops, at quality 95 without chroma
subsampling (granule colour survives); PNG took 20-100× longer per 575 px crop on this machine.
The provenance CSV lets anyone trace a crop back to photo, box and smear.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

from PIL import Image

from ..annotation import Cell
from ..imageio import crop_square, open_image
from ..project import Project
from ..crop_listing import remove_stale_crops
from ..store import atomic_write_text
from .common import ExportItem, category_of, flat_name, plain_name

SLOTS = 1
PROVENANCE_FILE = "crops.csv"
COLUMNS = ("crop", "photo", "x1", "y1", "x2", "y2", "label", "cell_id", "author",
           "smear", "camera", "microscope")


def _crop_name(item: ExportItem, cell: Cell) -> str:
    """``<label>/<photo>__<cell id>.jpg``; a label or id that is no plain file name (a hand-edited
    ``../x``) is made one, so no crop lands outside the export folder."""
    return f"{plain_name(category_of(cell))}/{flat_name(item.image)}__{plain_name(cell.id)}.jpg"


def targets(project: Project, items: list[ExportItem], out: Path) -> list[Path]:
    """The files ``write`` makes, so an export can check first that it replaces none of the user's."""
    return [*(out / _crop_name(item, cell) for item in items for cell in item.cells()), out / PROVENANCE_FILE]


def write(project: Project, items: list[ExportItem], out: Path, advance: Callable[[str], None]) -> str:
    rows: list[dict[str, object]] = []
    size = project.default_box_size
    for item in items:
        cells = item.cells()
        if cells:
            photo = open_image(project.image_path(item.image), project.max_pixels)
            annotation = item.annotations[0]
            acq = annotation.acquisition
            for cell in cells:
                label = category_of(cell)
                rel = _crop_name(item, cell)
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop_square(photo, cell.box, size)).save(target, quality=95, subsampling=0)
                rows.append({"crop": rel, "photo": item.image, **dict(zip(COLUMNS[2:6], cell.box.as_list())),
                             "label": label, "cell_id": cell.id, "author": annotation.author.id,
                             "smear": acq.smear or "", "camera": acq.camera or "",
                             "microscope": acq.microscope or ""})
        advance(item.image)
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    stale = remove_stale_crops(out, PROVENANCE_FILE, (str(row["crop"]) for row in rows))
    atomic_write_text(out / PROVENANCE_FILE, text.getvalue(), keep_backup=False)
    removed = f"; {stale} crop(s) of the previous export there removed (no longer so labeled)" if stale else ""
    return f"{len(rows)} crop(s) of {size}×{size} px under {out}, listed in {out / PROVENANCE_FILE}{removed}"
