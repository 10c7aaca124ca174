"""YOLO text labels: one ``.txt`` per photo, ``class cx cy w h`` normalised to 0–1, plus classes.txt.

Class numbers index ``classes.txt``, which lists every label of the project's tree and then
``wbc`` (unlabeled cells), so two exports of projects with the same tree share numbering.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..project import Project
from ..store import atomic_write_text
from .common import ExportItem, category_names, category_of, output_paths

SLOTS = 1
CLASSES_FILE = "classes.txt"


def _label_files(items: list[ExportItem], out: Path) -> dict[str, Path]:
    return output_paths(out, (item.image for item in items), ".txt", reserved=CLASSES_FILE)


def targets(project: Project, items: list[ExportItem], out: Path) -> list[Path]:
    """The files ``write`` makes, so an export can check first that it replaces none of the user's."""
    return [*_label_files(items, out).values(), out / CLASSES_FILE]


def write(project: Project, items: list[ExportItem], out: Path, advance: Callable[[str], None]) -> str:
    names = category_names(project.taxonomy)
    index = {name: i for i, name in enumerate(names)}
    paths = _label_files(items, out)
    for item in items:
        ref = item.annotations[0].image
        lines = []
        for cell in item.cells():
            name = category_of(cell)
            if name not in index:  # a label the tree no longer has: append, never misnumber
                index[name] = len(names)
                names.append(name)
            cx, cy = cell.box.center
            lines.append(f"{index[name]} {cx / ref.width:.6f} {cy / ref.height:.6f} "
                         f"{cell.box.width / ref.width:.6f} {cell.box.height / ref.height:.6f}")
        atomic_write_text(paths[item.image], "".join(f"{line}\n" for line in lines),
                          keep_backup=False)
        advance(item.image)
    atomic_write_text(out / CLASSES_FILE, "".join(f"{name}\n" for name in names), keep_backup=False)
    return f"{len(items)} YOLO label file(s) and {CLASSES_FILE} under {out}"
