"""The Raabin-WBC dataset's own JSON (FORMAT.md): ``Cell_N`` entries with two experts' labels.

Each ``Cell_N`` has ``Label1`` (first expert), ``Label2`` (second expert) and ``x1 y1 x2 y2``
(integers, sometimes written as text). Both experts' records of one ``Cell_N`` get the same
cell id, so agreement pairs them by id. Keys that are not cells (image information) are kept in
the annotation's ``raabin_extra`` and written back on export; unknown keys inside a cell stay
in the cell's ``raabin`` extra with its original ``Cell_N`` key.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from ...errors import FileProblem
from ..annotation import Cell
from ..project import Project
from ..store import atomic_write_text, dumps, read_json
from ..taxonomy import Taxonomy
from .common import ExportItem, ForeignCell, ForeignImage, number, output_paths

SUFFIX = ".json"
SLOTS = 2
IMAGE_EXTRA = "raabin_extra"
CELL_EXTRA = "raabin"
_CELL_KEY = re.compile(r"Cell_(\d+)")
_COORDS = ("x1", "y1", "x2", "y2")
_LABELS = ("Label1", "Label2")
#: Raabin's label strings where their plain reading differs from the taxonomy's: its
#: "Neutrophil" is the mature (segmented) neutrophil, not "a neutrophil of unsure sub-type".
RAABIN_NAMES = {
    "neutrophil.mature": "Neutrophil", "neutrophil.band": "Band", "neutrophil.meta": "Meta",
    "lymphocyte.small": "Small Lymph", "lymphocyte.large": "Large Lymph",
    "monocyte": "Monocyte", "eosinophil": "Eosinophil", "basophil": "Basophil",
    "burst": "Burst", "artifact": "Artifact", "not_recognized": "Not recognized",
    # a class sure, its sub-type not: "Neutrophil" alone would come back as a mature one
    "neutrophil": "Neutrophil (sub-type unsure)", "lymphocyte": "Lymphocyte (sub-type unsure)",
}
OVERRIDES = {name: path for path, name in RAABIN_NAMES.items()}
PAIR_IOU = 0.5


def _label(value: Any) -> str | None:
    """A missing, empty or null label means "not labeled"; numbers are read as text."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read(path: Path, root: Path) -> list[ForeignImage]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise FileProblem(path, "is not a Raabin-WBC file: expected a JSON object of Cell_N entries")
    relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
    image = ForeignImage(path, (relative,), [])
    for key, value in data.items():
        if not _CELL_KEY.fullmatch(key):
            image.extra.setdefault(IMAGE_EXTRA, {})[key] = value
            continue
        if not isinstance(value, dict):
            raise FileProblem(path, f"expected an object with Label1, Label2, x1, y1, x2, y2, got {value!r}", key)
        coords = [number(value.get(k)) for k in _COORDS]
        if None in coords:
            bad = _COORDS[coords.index(None)]
            image.notes.append(f"{key}: {bad} is {value.get(bad)!r}, not a number; skipped")
            continue
        others = {k: v for k, v in value.items() if k not in _COORDS + _LABELS}
        extra = {CELL_EXTRA: {"key": key, **({"extra": others} if others else {})}}
        image.cells.append(ForeignCell(tuple(coords), tuple(_label(value.get(k)) for k in _LABELS),
                                       key, extra=extra))
    if not image.cells and not image.notes:
        raise FileProblem(path, "has no Cell_N entries: is this a Raabin-WBC file?")
    return [image]


def raabin_name(taxonomy: Taxonomy, path: str | None) -> str | None:
    if path is None:
        return None
    if path in RAABIN_NAMES:
        return RAABIN_NAMES[path]
    return taxonomy.get(path).matrix_name if path in taxonomy else path


def _coords(cell: Cell, width: int, height: int) -> list[int]:
    """The box as the source file had it, if the import only clipped it to the photo."""
    source = cell.extra.get("source_box")
    if isinstance(source, list) and len(source) == 4 and all(isinstance(v, int) for v in source):
        x1, y1, x2, y2 = source
        if [max(0, x1), max(0, y1), min(width, x2), min(height, y2)] == cell.box.as_list():
            return source
    return cell.box.as_list()


def _pair_cells(item: ExportItem) -> list[list[Cell | None]]:
    """One row per cell, one column per author: matched by id, else by the best box overlap.

    A Raabin ``Cell_N`` carries one box and both experts' labels, so cells each expert drew
    on their own are paired when their boxes overlap (IoU ≥ 0.5, the usual detection match;
    the first author's box is written). Unpaired cells get a row with the other label empty.
    """
    slots = len(item.annotations)
    by_id: dict[str, list[Cell | None]] = {}
    for slot in range(slots):
        for cell in item.cells(slot):
            by_id.setdefault(cell.id, [None] * slots)[slot] = cell
    rows = list(by_id.values())
    if slots == 2:
        lone = [[r for r in rows if r[s] is not None and r[1 - s] is None] for s in (0, 1)]
        pairs = sorted(((a[0].box.iou(b[1].box), i, j) for i, a in enumerate(lone[0])
                        for j, b in enumerate(lone[1])), reverse=True)
        used_a: set[int] = set()
        used_b: set[int] = set()
        for iou, i, j in pairs:
            if iou >= PAIR_IOU and i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                lone[0][i][1] = lone[1][j][1]
        absorbed = {id(lone[1][j]) for j in used_b}
        rows = [r for r in rows if id(r) not in absorbed]
    return rows


def image_json(taxonomy: Taxonomy, item: ExportItem) -> dict[str, Any]:
    """One photo's Raabin JSON: the image keys it came with, then a ``Cell_N`` per cell."""
    first = next(a for a in item.annotations if a is not None)
    out: dict[str, Any] = dict(first.extra.get(IMAGE_EXTRA) or {})
    rows = _pair_cells(item)
    records = [[c for c in cells if c is not None][0] for cells in rows]
    keys = [r.extra.get(CELL_EXTRA, {}).get("key") for r in records]
    taken = {k for k in keys if isinstance(k, str) and _CELL_KEY.fullmatch(k) and keys.count(k) == 1}
    next_index = 0
    for cells, record, key in zip(rows, records, keys):
        if key not in taken:
            while f"Cell_{next_index}" in taken:
                next_index += 1
            key = f"Cell_{next_index}"
            taken.add(key)
        entry: dict[str, Any] = {}
        for slot, cell in enumerate(cells):
            entry[_LABELS[slot]] = raabin_name(taxonomy, cell.label) if cell else None
        entry.update(zip(_COORDS, _coords(record, first.image.width, first.image.height)))
        entry.update(record.extra.get(CELL_EXTRA, {}).get("extra") or {})
        out[key] = entry
    return out


def targets(project: Project, items: list[ExportItem], out: Path) -> list[Path]:
    """The files ``write`` makes, so an export can check first that it replaces none of the user's."""
    return list(output_paths(out, (item.image for item in items), SUFFIX).values())


def write(project: Project, items: list[ExportItem], out: Path, advance: Callable[[str], None]) -> str:
    paths = output_paths(out, (item.image for item in items), SUFFIX)
    for item in items:
        target = paths[item.image]
        atomic_write_text(target, dumps(image_json(project.taxonomy, item)), keep_backup=False)
        advance(item.image)
    return f"{len(items)} Raabin JSON file(s) under {out}"
