"""What every import and export shares: foreign boxes, photo matching, label mapping, merging.

Readers turn a foreign file into ``ForeignImage`` records in this project's pixel convention
(0-based, x2 and y2 exclusive, FORMAT.md); everything after that — finding the photo, clipping,
naming labels, merging into an author's existing work — happens once, here.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Sequence

from ..annotation import Box, Cell, ImageAnnotation, new_cell_id
from ..imageio import IMAGE_SUFFIXES
from ..taxonomy import Taxonomy, normalize_name, slug  # the taxonomy's own name matching, so overrides agree

#: ``progress(stage, done, total, item)``: the CLI draws a bar per stage, the GUI a dialog.
ProgressFn = Callable[[str, int, int, str], None]
#: The category name of a cell nobody has labeled yet (a white cell of unknown class).
UNLABELED = "wbc"
#: Boxes this similar with the same label are the same cell (issue 2, item 7: merge on import).
DUPLICATE_IOU = 0.9


def no_progress(stage: str, done: int, total: int, item: str) -> None:
    """The default progress callback: report nothing."""


@dataclass
class ForeignCell:
    """One box from a foreign file, in project pixels (floats allowed until clipped)."""

    box: tuple[float, float, float, float]
    labels: tuple[str | None, ...]  # one per author slot: Raabin has two (Label1, Label2)
    where: str  # "object 3", "Cell_7": for messages that point into the file
    cell_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ForeignImage:
    """One photo's worth of boxes from a foreign file."""

    source: Path
    names: tuple[str, ...]  # ways the file refers to its photo, best first
    cells: list[ForeignCell]
    size: tuple[int, int] | None = None  # (width, height) the file claims, if it says
    extra: dict[str, Any] = field(default_factory=dict)  # kept in ImageAnnotation.extra
    notes: list[str] = field(default_factory=list)  # oddities worth telling the user


def number(value: Any) -> float | None:
    """A coordinate written as a number or as text ("123", " 45.5"); None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
        return result if math.isfinite(result) else None
    return None


def image_key(name: str) -> str:
    """A photo reference without folder noise or suffixes: ``../JPEGImages/A.jpg`` → ``jpegimages/a``.

    Matching is case-insensitive (photos copied from Windows or cameras change case) and
    ignores ``.`` and ``..`` parts, which only say where the other tool's file sat.
    """
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    if not parts:
        return ""
    last = parts[-1]
    for _ in range(2):  # "a.jpg.json" and "a.json" both mean photo "a"
        stem, dot, suffix = last.rpartition(".")
        if dot and stem and (f".{suffix.lower()}" in IMAGE_SUFFIXES or suffix.lower() in ("json", "xml", "txt")):
            last = stem
    return "/".join([*parts[:-1], last]).lower()


def full_key(name: str) -> str:
    """A photo reference with its image suffix kept: ``a.jpg.xml`` → ``a.jpg``; "" if it has none.

    Why: ``a.jpg`` and ``a.png`` side by side share the stem key ``a``, so a file that names
    one of them exactly was reported as "could be any of" both and not imported (found by QA).
    """
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    if not parts:
        return ""
    stem, dot, suffix = parts[-1].rpartition(".")
    if dot and stem and suffix.lower() in ("json", "xml", "txt"):
        parts[-1] = stem
    if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return ""
    return "/".join(parts).lower()


@dataclass(frozen=True)
class Match:
    image: str | None
    problem: str | None = None  # why nothing was matched, when it was not plain absence


class ImageMatcher:
    """Finds the project photo a foreign file means: by relative path, else by file stem."""

    def __init__(self, images: Sequence[str]):
        self.by_path: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        self.folders: set[str] = set()  # the names of the project's photo folders
        self.exact_path: dict[str, list[str]] = {}  # full_key: the image suffix kept
        self.exact_name: dict[str, list[str]] = {}
        for image in images:
            exact = full_key(image)
            self.exact_path.setdefault(exact, []).append(image)
            self.exact_name.setdefault(exact.rsplit("/", 1)[-1], []).append(image)
            key = image_key(image)
            self.by_path.setdefault(key, []).append(image)
            self.by_stem.setdefault(key.rsplit("/", 1)[-1], []).append(image)
            self.folders.update(key.split("/")[:-1])

    def match(self, names: Iterable[str]) -> Match:
        names = [n for n in names if n]
        keys = [k for k in (image_key(n) for n in names) if k]
        for key in keys:
            found = self.by_path.get(key, [])
            if len(found) == 1:
                return Match(found[0])
        for exact in filter(None, map(full_key, names)):  # named with its suffix: a.jpg beside a.png
            found = self.exact_path.get(exact, [])
            folder = exact.split("/")[-2] if "/" in exact else None
            if not found and folder not in self.folders:  # a folder of the project means a photo there
                found = self.exact_name.get(exact.rsplit("/", 1)[-1], [])
            if len(found) == 1:
                return Match(found[0])
        for key in keys:
            found = self.by_stem.get(key.rsplit("/", 1)[-1], [])
            folder = key.split("/")[-2] if "/" in key else None
            if folder in self.folders:  # the file names a folder of this project: only a photo there
                elsewhere = [i for i in found if _folder(i) != folder]
                found = [i for i in found if _folder(i) == folder]
                if not found and elsewhere:
                    return Match(None, f"no photo {key} in folder {folder}; {elsewhere[0]} has the name, "
                                       f"in another folder")
            if len(found) == 1:
                return Match(found[0])
            if found:
                best = _closest(key, found)
                if best is not None:
                    return Match(best)
                return Match(None, f"could be any of {', '.join(found[:4])}")
        return Match(None)


def _folder(image: str) -> str | None:
    """The name of the folder a photo is in (lower case, as image keys are), None at the top."""
    parts = image_key(image).split("/")
    return parts[-2] if len(parts) > 1 else None


def _closest(key: str, images: list[str]) -> str | None:
    """The one photo whose folders agree longest with ``key`` from the end, if exactly one."""
    wanted = key.split("/")

    def shared(image: str) -> int:
        have = image_key(image).split("/")
        n = 0
        while n < min(len(have), len(wanted)) and have[-1 - n] == wanted[-1 - n]:
            n += 1
        return n

    scores = sorted(((shared(i), i) for i in images), reverse=True)
    if scores[0][0] > 1 and (len(scores) == 1 or scores[1][0] < scores[0][0]):
        return scores[0][1]
    return None


class LabelMapper:
    """Foreign label names → taxonomy paths; names the tree lacks become extra labels.

    ``overrides`` fix names whose plain reading is wrong for a source (Raabin's "Neutrophil"
    is the mature neutrophil, not the parent class). None means "a white cell, no class".
    """

    def __init__(self, taxonomy: Taxonomy, overrides: dict[str, str] | None = None):
        self.taxonomy = taxonomy
        self.overrides = {normalize_name(k): v for k, v in (overrides or {}).items()}
        self.added: dict[str, str] = {}  # foreign name → new extra label path
        self._cache: dict[str, str | None] = {}

    def path(self, name: str | None) -> str | None:
        if name is None or not name.strip():
            return None
        if name not in self._cache:
            self._cache[name] = self._resolve(name)
        return self._cache[name]

    def _resolve(self, name: str) -> str | None:
        target = self.overrides.get(normalize_name(name))
        if target is not None and target in self.taxonomy:
            return target
        try:
            return self.taxonomy.resolve(name)
        except KeyError:
            self.taxonomy, path = self.taxonomy.with_extra(name)
            self.added[name.strip()] = path
            return path


@dataclass
class Placed:
    """A foreign cell turned into a project box, or the reason it could not be."""

    box: Box | None
    clipped: bool = False
    problem: str | None = None


def place_box(coords: tuple[float, float, float, float], width: int, height: int) -> Placed:
    """Round to pixels and clip to the photo; a box with no area left is a problem, not a cell."""
    x1, y1, x2, y2 = (round(v) for v in coords)
    if x2 <= x1 or y2 <= y1:
        return Placed(None, problem=f"box [{x1}, {y1}, {x2}, {y2}] has no area (x2 must exceed x1, y2 y1)")
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return Placed(None, problem=f"box [{x1}, {y1}, {x2}, {y2}] lies outside the {width}×{height} photo")
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    return Placed(Box(cx1, cy1, cx2, cy2), clipped)


@dataclass
class MergeResult:
    annotation: ImageAnnotation
    added: int
    duplicates: int  # imported cells already present (IoU > 0.9, same label): not added
    relabeled: int  # imported cells over an existing box with another label: added beside it


def merge_cells(existing: ImageAnnotation, incoming: Sequence[Cell]) -> MergeResult:
    """Keep every existing cell; add the imported ones that are not already there.

    An id already in use gets a fresh one, so a merge never overwrites a cell by accident.
    Imported cells are compared with the cells that existed before, not with each other: two
    boxes in one foreign file stay two cells.
    """
    before = existing.cells
    ids = {c.id for c in before}
    added: list[Cell] = []
    duplicates = relabeled = 0
    for cell in incoming:
        overlapping = [old for old in before if old.box.iou(cell.box) > DUPLICATE_IOU]
        if any(old.label == cell.label for old in overlapping):
            duplicates += 1
            continue
        relabeled += bool(overlapping)
        if cell.id in ids:
            cell = replace(cell, id=new_cell_id())
        ids.add(cell.id)
        added.append(cell)
    return MergeResult(existing.with_cells([*before, *added]), len(added), duplicates, relabeled)


def category_names(taxonomy: Taxonomy) -> list[str]:
    """Stable export categories: every label path of the project's tree, then ``wbc``."""
    return [*taxonomy.labels, UNLABELED]


def category_of(cell: Cell) -> str:
    return cell.label or UNLABELED


def exported(cell: Cell) -> bool:
    """Exports leave out cells an expert rejected and cells marked as another's duplicate."""
    return not cell.rejected and cell.duplicate_of is None


_PLAIN = re.compile(r"(?!\.\.?$)[\w.-]{1,100}")  # a label path (neutrophil.band), a cell id


def plain_name(text: str) -> str:
    """``text`` as one file-name part: a label or cell id as it is, anything else (a hand-edited
    ``../x``) slugged, so no export file lands outside the export folder."""
    return text if _PLAIN.fullmatch(text) else slug(text)


#: File names are at most 255 bytes; a crop's name adds its cell id and suffix to this part.
FLAT_NAME_BYTES = 200


def flat_name(image: str) -> str:
    """A photo path as one file-name part: ``smear07/IMG_1.jpg`` → ``smear07__IMG_1``.

    A long one keeps its end (the file name) and is cut at the front: a crop of a photo in a
    deep folder, or with a long name, could not be written and stopped the export (QA).
    """
    flat = PurePosixPath(image).with_suffix("").as_posix().replace("/", "__")
    data = flat.encode("utf-8")
    return flat if len(data) <= FLAT_NAME_BYTES else data[-FLAT_NAME_BYTES:].decode("utf-8", "ignore")


def output_paths(out: Path, images: Iterable[str], suffix: str, reserved: str | None = None) -> dict[str, Path]:
    """Where each photo's export file goes: the photo's relative path with a new suffix (``a.xml``
    for ``a.jpg``), but ``a.jpg.xml`` and ``a.png.xml``
    where two photos of one folder share a stem (compared case-blind, as some disks are), and
    ``classes.jpg.txt`` where the plain name is the export's own ``reserved`` file.

    Why: both photos' files were ``a.xml``, so the second silently replaced the first and a
    photo's cells were missing from the export (found by QA). Import reads either name.
    """
    images = list(images)
    taken: dict[str, int] = {} if reserved is None else {reserved.lower(): 1}
    plain = {image: PurePosixPath(image).with_suffix(suffix).as_posix() for image in images}
    for name in plain.values():
        taken[name.lower()] = taken.get(name.lower(), 0) + 1
    return {image: out / (f"{image}{suffix}" if taken[name.lower()] > 1 else name) for image, name in plain.items()}


@dataclass(frozen=True)
class ExportItem:
    """One photo to export: each requested author's annotation of it (None where they have none)."""

    image: str
    annotations: tuple[ImageAnnotation | None, ...]

    def cells(self, slot: int = 0) -> list[Cell]:
        annotation = self.annotations[slot]
        return [c for c in annotation.cells if exported(c)] if annotation else []
