"""Bringing other tools' boxes into a project: read everything, check everything, then save.

Nothing is written until every file has been read, matched and checked, so a corrupt file or
a photo of the wrong size stops the import with the project untouched. An author who already
has a file for a photo keeps all their cells; imported cells join them unless already there.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from ...errors import FileProblem, UserError
from ..annotation import Cell, ImageAnnotation, ImageRef, new_cell_id, now_iso
from ..project import Project, author_for, check_author_id
from . import coco, labelme, raabin, voc
from .common import ForeignImage, ImageMatcher, LabelMapper, ProgressFn, merge_cells, no_progress, place_box

READERS: dict[str, ModuleType] = {"voc": voc, "labelme": labelme, "coco": coco, "raabin": raabin}
OVERRIDES: dict[str, dict[str, str]] = {"raabin": raabin.OVERRIDES}
SHOWN = 8  # how many unmatched files or skipped boxes a report names before "and N more"


@dataclass
class AuthorTally:
    photos: int = 0
    added: int = 0
    merged_photos: int = 0  # photos where the author already had a file
    kept: int = 0  # cells that were already in those files
    duplicates: int = 0
    relabeled: int = 0


@dataclass
class ImportReport:
    format: str
    files: int = 0
    photos: set[str] = field(default_factory=set)
    authors: dict[str, AuthorTally] = field(default_factory=dict)
    clipped: int = 0
    skipped: list[str] = field(default_factory=list)  # boxes not imported, "file: where: why"
    notes: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    extra_labels: dict[str, str] = field(default_factory=dict)
    unused_labels: int = 0  # labels in a column no author was named for (Raabin's Label2)

    def lines(self) -> list[str]:
        out = [f"read {self.files} {self.format} file(s); {len(self.photos)} photo(s) matched"]
        for author, t in self.authors.items():
            line = f"{author}: {t.added} cell(s) added on {t.photos} photo(s)"
            if t.merged_photos:
                line += (f"; {t.merged_photos} photo(s) already had {author}'s work: kept its {t.kept} "
                         f"cell(s), left out {t.duplicates} imported cell(s) already there")
                if t.relabeled:
                    line += f", added {t.relabeled} over an existing box with another label"
            out.append(line)
        if self.extra_labels:
            pairs = ", ".join(f"{name} → {path}" for name, path in self.extra_labels.items())
            out.append(f"labels not in the taxonomy kept as extra labels: {pairs}")
        if self.clipped:
            out.append(f"{self.clipped} box(es) went past the photo's edge and were clipped to it")
        if self.unused_labels:
            out.append(f"{self.unused_labels} label(s) of a second expert (Label2) were not imported: "
                       f"name two authors (--as A B) to keep them")
        out += _listed(f"{len(self.skipped)} box(es) not imported:", self.skipped)
        out += _listed(f"{len(self.notes)} note(s):", self.notes)
        out += _listed(f"{len(self.unmatched)} file(s) matched no photo of the project "
                       f"(by relative path, else by file name stem):", self.unmatched)
        return out


def _listed(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    more = [f"  … and {len(items) - SHOWN} more"] if len(items) > SHOWN else []
    return [title, *(f"  {item}" for item in items[:SHOWN]), *more]


def source_files(src: Path, suffix: str) -> list[Path]:
    """SRC itself, or every ``suffix`` file below it (hidden folders skipped), in name order."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise UserError(f"{src}: no such file or folder")
    found = sorted(p for p in src.rglob(f"*{suffix}")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts))
    if not found:
        raise UserError(f"{src}: no {suffix} files in this folder or below it")
    return found


def check_authors(authors: list[str], slots: int, fmt: str) -> None:
    if not authors:
        raise UserError("name the author(s) the boxes belong to")
    if len(authors) > slots:
        raise UserError(f"the {fmt} format holds one author's labels; name one author, not {len(authors)}"
                        if slots == 1 else f"the {fmt} format holds at most {slots} authors' labels")
    if len(set(authors)) != len(authors):
        raise UserError(f"the same author is named twice: {' '.join(authors)}")
    for author in authors:
        check_author_id(author)


def import_annotations(project: Project, fmt: str, src: Path, authors: list[str],
                       progress: ProgressFn = no_progress) -> ImportReport:
    """Import ``src`` (a file or a folder) as ``authors`` (one per label slot of the format)."""
    reader = READERS.get(fmt)
    if reader is None:
        raise UserError(f"unknown import format {fmt!r}; use one of {', '.join(READERS)}")
    check_authors(authors, reader.SLOTS, fmt)
    src = Path(src)
    files = source_files(src, reader.SUFFIX)
    images = project.images()
    if not images:
        raise UserError(f"{project.images_dir}: the project has no photos to import boxes onto")
    matcher = ImageMatcher(images)
    batch = _Batch(project, fmt, authors, ImportReport(fmt, len(files), authors={a: AuthorTally() for a in authors}))
    root = src if src.is_dir() else src.parent
    for i, path in enumerate(files):
        progress("reading", i, len(files), path.name)
        for foreign in reader.read(path, src):
            shown = path.relative_to(root).as_posix()
            match = matcher.match(foreign.names)
            if match.image is None:
                batch.report.unmatched.append(shown + (f" ({match.problem})" if match.problem else ""))
                continue
            batch.add(foreign, match.image, shown)
    progress("reading", len(files), len(files), "")
    if not batch.report.photos:
        raise UserError(f"none of the {len(files)} {fmt} file(s) in {src} matches a photo of the project "
                        f"(matched by relative path, else by file name stem; e.g. {files[0].name})")
    return batch.save(progress)


class _Batch:
    """The annotations an import will save, built up file by file; nothing is written before ``save``."""

    def __init__(self, project: Project, fmt: str, authors: list[str], report: ImportReport):
        self.project, self.fmt, self.authors, self.report = project, fmt, authors, report
        self.mapper = LabelMapper(project.taxonomy, OVERRIDES.get(fmt))
        self.pending: dict[tuple[str, str], ImageAnnotation] = {}

    def _start(self, image: str) -> ImageRef:
        """Each author's annotation of the photo (what they have, else empty); the photo's size."""
        existing = {a: self.project.load(a, image) for a in self.authors}
        found = [e for e in existing.values() if e is not None]
        ref = found[0].image if found else self.project.image_ref(image)
        for author, annotation in existing.items():
            tally = self.report.authors[author]
            tally.photos += 1
            if annotation is not None:
                tally.merged_photos += 1
                tally.kept += len(annotation.cells)
            self.pending[(author, image)] = annotation or ImageAnnotation.empty(ref, author_for(author))
        return ref

    def add(self, foreign: ForeignImage, image: str, shown: str) -> None:
        first = self.pending.get((self.authors[0], image))
        ref = first.image if first is not None else self._start(image)
        _check_size(foreign, image, ref)
        self.report.photos.add(image)
        self.report.notes += [f"{shown}: {note}" for note in foreign.notes]
        incoming: list[list[Cell]] = [[] for _ in self.authors]
        stamp = now_iso()
        for foreign_cell in foreign.cells:
            placed = place_box(foreign_cell.box, ref.width, ref.height)
            if placed.box is None:
                self.report.skipped.append(f"{shown}: {foreign_cell.where}: {placed.problem}")
                continue
            extra = dict(foreign_cell.extra)
            if placed.clipped:
                self.report.clipped += 1
                extra["source_box"] = [round(v) for v in foreign_cell.box]
            self.report.unused_labels += sum(bool(label) for label in foreign_cell.labels[len(self.authors):])
            cell_id = foreign_cell.cell_id or new_cell_id()  # one id for every author's record of it
            for slot, cells in enumerate(incoming):
                label = self.mapper.path(foreign_cell.labels[slot])
                cells.append(Cell(cell_id, placed.box, label, f"import:{self.fmt}", created=stamp,
                                  modified=stamp, extra=dict(extra)))
        for author, cells in zip(self.authors, incoming):
            merged = merge_cells(self.pending[(author, image)], cells)
            annotation = merged.annotation
            if foreign.extra:
                annotation = replace(annotation, extra={**annotation.extra, **foreign.extra})
            self.pending[(author, image)] = annotation
            tally = self.report.authors[author]
            tally.added += merged.added
            tally.duplicates += merged.duplicates
            tally.relabeled += merged.relabeled

    def save(self, progress: ProgressFn) -> ImportReport:
        if self.mapper.added:
            self.project.set_taxonomy(self.mapper.taxonomy)
            self.report.extra_labels = dict(self.mapper.added)
        for j, ((_, image), annotation) in enumerate(self.pending.items()):
            progress("saving", j, len(self.pending), image)
            self.project.save(annotation)
        progress("saving", len(self.pending), len(self.pending), "")
        return self.report


def _check_size(foreign: ForeignImage, image: str, ref: ImageRef) -> None:
    if foreign.size is None or foreign.size == (ref.width, ref.height):
        return
    w, h = foreign.size
    hint = (" (the other tool may have ignored the photo's EXIF orientation)"
            if (h, w) == (ref.width, ref.height) else "")
    raise FileProblem(foreign.source, f"is for a {w}×{h} photo, but {image} is {ref.width}×{ref.height} as "
                                      f"displayed; its boxes would land in the wrong place{hint}")
