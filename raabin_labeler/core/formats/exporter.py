"""Writing one author's cells (two for Raabin JSON) in other tools' formats.

Every annotation file is read before anything is written, so a broken file stops the export
with a message naming it rather than leaving half an export behind. Rejected cells and cells
marked as the duplicate of another are left out of every format.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ...errors import UserError
from ..annotation import ImageAnnotation
from ..project import CONSENSUS, Project
from . import coco, crops, masks, raabin, voc, yolo
from ..store import atomic_write_text
from .common import ExportItem, ProgressFn, no_progress
from .importer import check_authors

WRITERS: dict[str, ModuleType] = {"coco": coco, "voc": voc, "yolo": yolo, "raabin": raabin, "crops": crops,
                                 "masks": masks}
#: In an export folder: every file an export wrote there, so the next one may replace them
#: (exported twice) but never a file of the user's that merely has the same name.
MANIFEST = ".raabin-labeler-export.json"
SHOWN = 3  # files named in the refusal


@dataclass
class ExportReport:
    photos: int
    cells: dict[str, int]  # exported cells per author
    rejected: int
    duplicates: int
    written: str
    unknown_labels: dict[str, int] = field(default_factory=dict)  # label not in the taxonomy → cells

    def lines(self) -> list[str]:
        counts = " and ".join(f"{n} cell(s) of {author}" for author, n in self.cells.items())
        out = [f"exported {counts} on {self.photos} photo(s): {self.written}"]
        if self.rejected or self.duplicates:
            out.append(f"left out {self.rejected} rejected cell(s) and {self.duplicates} marked as duplicates")
        if self.unknown_labels:  # a hand-edited file, or a taxonomy changed since: exported by that name
            named = ", ".join(f"{label!r} ({n})" for label, n in sorted(self.unknown_labels.items()))
            out.append(f"warning: labels not in the project's taxonomy, exported under that name: {named}")
        return out


def _as_exported(project: Project, author: str, annotation: ImageAnnotation | None) -> ImageAnnotation | None:
    """The consensus with the experts' duplicate marks and without sent-back cells; others as saved."""
    if annotation is None or author != CONSENSUS:
        return annotation
    from ..consensus import for_export  # consensus builds on agreement: loaded only when exported
    return for_export(project, annotation)


def _claim_out_folder(out: Path, targets: list[Path], overwrite: bool) -> None:
    """Refuse to replace files no export wrote (unless ``overwrite``); then record the targets.

    Why: an export into the folder the photos' original VOC XML, Raabin JSON or COCO file came
    from replaced those originals without a word (found by QA). The record is written before
    the files, so the files of an interrupted export are known as ours too.
    """
    manifest = out / MANIFEST
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
        ours = {name for name in listed if isinstance(name, str)}
    except (OSError, ValueError, AttributeError):
        ours = set()
    planned = [t.relative_to(out).as_posix() for t in targets]
    foreign = [name for name in planned if name not in ours and (out / name).exists()]
    if foreign and not overwrite:
        more = f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else ""
        raise UserError(f"{out}: the export would replace {len(foreign)} file(s) that no export wrote "
                        f"({', '.join(foreign[:SHOWN])}{more}); nothing was written. Choose another --out "
                        f"folder, or add --overwrite to replace them")
    atomic_write_text(manifest, json.dumps({"files": sorted(ours.union(planned))}, ensure_ascii=False) + "\n",
                      keep_backup=False)


def export_annotations(project: Project, fmt: str, authors: list[str], out: Path,
                       progress: ProgressFn = no_progress, *, overwrite: bool = False) -> ExportReport:
    """Export ``authors``' annotations (Raabin JSON takes two: Label1, Label2) to folder ``out``.

    Files of an earlier export there are replaced; any other file of the same name stops the
    export before anything is written, unless ``overwrite``."""
    writer = WRITERS.get(fmt)
    if writer is None:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(WRITERS)}")
    check_authors(authors, writer.SLOTS, fmt)
    images = project.images()
    items: list[ExportItem] = []
    for i, image in enumerate(images):
        progress("reading", i, len(images), image)
        annotations = tuple(_as_exported(project, author, project.load(author, image)) for author in authors)
        if any(a is not None for a in annotations):
            items.append(ExportItem(image, annotations))
    progress("reading", len(images), len(images), "")
    if not items:
        known = ", ".join(project.authors()) or "none yet"
        raise UserError(f"{' and '.join(authors)}: no annotations in {project.root} (authors with files: {known})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    cells = dict.fromkeys(authors, 0)
    rejected = duplicates = 0
    unknown: dict[str, int] = {}
    for item in items:
        for annotation in filter(None, item.annotations):
            rejected += sum(c.rejected for c in annotation.cells)
            duplicates += sum(c.duplicate_of is not None and not c.rejected for c in annotation.cells)
        for slot, author in enumerate(authors):
            exported = item.cells(slot)
            cells[author] += len(exported)
            for cell in exported:
                if cell.label is not None and cell.label not in project.taxonomy:
                    unknown[cell.label] = unknown.get(cell.label, 0) + 1
    done = 0

    def advance(image: str) -> None:
        nonlocal done
        done += 1
        progress("writing", done, len(items), image)

    progress("writing", 0, len(items), "")
    try:
        _claim_out_folder(out, writer.targets(project, items, out), overwrite)
        written = writer.write(project, items, out, advance)
    except OSError as exc:  # disk full, read-only share: one line, not a traceback
        raise UserError(f"{exc.filename or out}: cannot write the export: {exc.strerror or exc}") from None
    return ExportReport(len(items), cells, rejected, duplicates, written, unknown)
