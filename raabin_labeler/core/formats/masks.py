"""Every cell's mask PNG, copied out with a CSV listing each cell and whether it has a mask.

``DIR/<photo path without suffix>/<cell-id>.png`` (the photo's folders are kept, so two photos
with the same name in different smears do not collide) and ``DIR/masks.csv``: photo, cell id,
label, box, mask status (auto, adjusted, failed, or none) and the expert's threshold. Every
mask is checked (a PNG of the box's size with 0/128/255 only) before anything is written, so a
broken mask stops the export with its file named instead of leaving half an export.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath
from typing import Callable

from ...errors import UserError
from ..masks import MaskError, load_cell_mask, mask_status, saved_threshold
from ..store import atomic_write_bytes
from ..project import Project
from ..store import atomic_write_text
from .common import ExportItem, category_of, plain_name

SLOTS = 1
LIST_FILE = "masks.csv"
NO_MASK = "none"
COLUMNS = ("photo", "cell_id", "label", "x1", "y1", "x2", "y2", "mask_status", "threshold", "mask")


def _mask_name(image: str, cell_id: str) -> str:
    return (PurePosixPath(image).with_suffix("") / f"{plain_name(cell_id)}.png").as_posix()


def targets(project: Project, items: list[ExportItem], out: Path) -> list[Path]:
    """The files ``write`` may make (every cell that records a mask), so an export can check
    first that it replaces none of the user's."""
    return [*(out / _mask_name(item.image, cell.id) for item in items for cell in item.cells()
              if cell.nucleus_mask), out / LIST_FILE]


def write(project: Project, items: list[ExportItem], out: Path, advance: Callable[[str], None]) -> str:
    planned: list[tuple[dict[str, object], Path | None]] = []
    for item in items:
        for cell in item.cells():
            try:
                has_mask = load_cell_mask(project, cell) is not None  # validates the PNG
            except MaskError as exc:
                raise UserError(f"{exc} (cell {cell.id} of {item.image}); nothing was exported") from None
            rel = _mask_name(item.image, cell.id) if has_mask else ""
            threshold = saved_threshold(cell)
            row = {"photo": item.image, "cell_id": cell.id, "label": category_of(cell),
                   **dict(zip(COLUMNS[3:7], cell.box.as_list())),
                   "mask_status": mask_status(cell) or (NO_MASK if not has_mask else ""),
                   "threshold": "" if threshold is None else threshold, "mask": rel}
            planned.append((row, project.mask_path(cell.nucleus_mask) if has_mask else None))
    written = 0
    done_photos: set[str] = set()
    for row, source in planned:
        if source is not None:
            atomic_write_bytes(out / str(row["mask"]), source.read_bytes())
            written += 1
        if row["photo"] not in done_photos:
            done_photos.add(str(row["photo"]))
            advance(str(row["photo"]))
    for item in items:
        if item.image not in done_photos:
            advance(item.image)
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row for row, _ in planned)
    atomic_write_text(out / LIST_FILE, text.getvalue(), keep_backup=False)
    missing = len(planned) - written
    return (f"{written} mask(s) under {out}; {missing} cell(s) without a mask; "
            f"all {len(planned)} listed in {out / LIST_FILE}")
