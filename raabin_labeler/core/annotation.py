"""The domain objects of one image's annotation by one author (FORMAT.md).

Validation happens here, at the edge: a ``Box`` with x2 ≤ x1 cannot exist, a ``Cell`` outside
its image is refused, and every parse error names the field at fault. Unknown keys are kept in
``extra`` and written back unchanged, so files from newer tools or other scripts survive.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .paths import safe_relative

FORMAT_VERSION = "raabin-labeler/1"
AUTHOR_KINDS = ("expert", "detector", "consensus", "import")
MAX_COORD = 1 << 20  # no phone or slide scanner photo is a million pixels wide


class AnnotationError(ValueError):
    """A value that breaks the format; ``field`` says where (``cells[3].box``)."""

    def __init__(self, field_name: str, problem: str):
        self.field = field_name
        self.problem = problem
        super().__init__(f"{field_name}: {problem}")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def new_cell_id() -> str:
    return "c-" + uuid.uuid4().hex[:10]


def _int(value: Any, where: str) -> int:
    """An integer coordinate; accepts ints, integral floats and digit strings (Raabin JSON)."""
    if isinstance(value, bool):
        raise AnnotationError(where, f"expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
            raise AnnotationError(where, f"expected a number, got {value!r}")
        value = float(text)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AnnotationError(where, f"expected a finite number, got {value!r}")
        value = round(value)
    if not isinstance(value, int):
        raise AnnotationError(where, f"expected a number, got {type(value).__name__}")
    if abs(value) > MAX_COORD:
        raise AnnotationError(where, f"{value} is out of range")
    return value


def _opt_str(data: dict, key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise AnnotationError(f"{where}.{key}", f"expected text, got {type(value).__name__}")


def _dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise AnnotationError(where, f"expected an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Box:
    """``[x1, y1, x2, y2]`` in displayed-image pixels; x2 and y2 exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int

    def __post_init__(self) -> None:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise AnnotationError("box", f"{self.as_list()} is empty: x2 must exceed x1 and y2 y1")

    @classmethod
    def parse(cls, value: Any, where: str = "box") -> "Box":
        if type(value) is list and len(value) == 4:
            x1, y1, x2, y2 = value
            if type(x1) is int and type(y1) is int and type(x2) is int and type(y2) is int \
                    and -MAX_COORD <= x1 < x2 <= MAX_COORD and -MAX_COORD <= y1 < y2 <= MAX_COORD:
                return cls(x1, y1, x2, y2)  # the common case, taken fast: 80,000 cells load at once
        if not isinstance(value, (list, tuple)) or len(value) != 4:
            raise AnnotationError(where, "expected [x1, y1, x2, y2]")
        coords = [_int(v, f"{where}[{i}]") for i, v in enumerate(value)]
        try:
            return cls(*coords)
        except AnnotationError as exc:
            raise AnnotationError(where, exc.problem) from None

    @classmethod
    def around(cls, cx: float, cy: float, size: int) -> "Box":
        x1, y1 = round(cx - size / 2), round(cy - size / 2)
        return cls(x1, y1, x1 + size, y1 + size)

    def as_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def inside(self, width: int, height: int) -> bool:
        return self.x1 >= 0 and self.y1 >= 0 and self.x2 <= width and self.y2 <= height

    def clipped(self, width: int, height: int) -> "Box":
        """This box cut to the image; raises AnnotationError when nothing is left."""
        return Box(max(0, self.x1), max(0, self.y1), min(width, self.x2), min(height, self.y2))

    def shifted_inside(self, width: int, height: int) -> "Box":
        """This box moved (not resized) so that it lies in the image, where it fits."""
        dx = -self.x1 if self.x1 < 0 else min(0, width - self.x2)
        dy = -self.y1 if self.y1 < 0 else min(0, height - self.y2)
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy).clipped(width, height)

    def intersection(self, other: "Box") -> int:
        """The area both boxes cover, in px²."""
        ix = max(0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0, min(self.y2, other.y2) - max(self.y1, other.y1))
        return ix * iy

    def iou(self, other: "Box") -> float:
        inter = self.intersection(other)
        return inter / (self.area + other.area - inter) if inter else 0.0

    def contains(self, x: float, y: float) -> bool:
        return self.x1 <= x < self.x2 and self.y1 <= y < self.y2


@dataclass(frozen=True)
class Cell:
    """One box on an image, with any label (or none yet)."""

    id: str
    box: Box
    label: str | None = None
    source: str | None = None
    nucleus_mask: str | None = None
    duplicate_of: str | None = None
    rejected: bool = False
    created: str | None = None
    modified: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KNOWN = frozenset(("id", "box", "label", "source", "nucleus_mask", "duplicate_of", "rejected",
                       "created", "modified"))
    _TEXT = ("label", "source", "duplicate_of", "created", "modified")

    @classmethod
    def new(cls, box: Box, label: str | None = None, source: str | None = None) -> "Cell":
        stamp = now_iso()
        return cls(new_cell_id(), box, label, source, created=stamp, modified=stamp)

    @classmethod
    def from_dict(cls, data: Any, where: str = "cell") -> "Cell":
        data = _dict(data, where)
        get = data.get  # 80,000 cells load when the agreement view opens: kept lean
        cell_id = get("id")
        if type(cell_id) is not str or not cell_id.strip():
            raise AnnotationError(f"{where}.id", "every cell needs a non-empty id")
        label, source, duplicate_of, created, modified = texts = [get(key) for key in cls._TEXT]
        for key, value in zip(cls._TEXT, texts):
            if value is not None and type(value) is not str:
                raise AnnotationError(f"{where}.{key}", f"expected text, got {type(value).__name__}")
        mask = _opt_str(data, "nucleus_mask", where)
        if mask is not None:
            try:
                safe_relative(mask)
            except ValueError as exc:
                raise AnnotationError(f"{where}.nucleus_mask", str(exc)) from None
        rejected = get("rejected", False)
        if rejected is not False and rejected is not True:
            raise AnnotationError(f"{where}.rejected", "expected true or false")
        known = cls.KNOWN
        return cls(cell_id, Box.parse(get("box"), f"{where}.box"), label or None, source, mask, duplicate_of,
                   rejected, created, modified,
                   {} if data.keys() <= known else {k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "box": self.box.as_list(), "label": self.label,
                               "source": self.source, "nucleus_mask": self.nucleus_mask,
                               "duplicate_of": self.duplicate_of}
        if self.rejected:
            out["rejected"] = True
        out["created"] = self.created
        out["modified"] = self.modified
        out.update(self.extra)
        return out

    def edited(self, **changes: Any) -> "Cell":
        """A copy with ``changes`` and a fresh ``modified`` stamp."""
        return replace(self, modified=now_iso(), **changes)


@dataclass(frozen=True)
class ImageRef:
    path: str
    width: int
    height: int
    sha256: str | None = None
    orientation_applied: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    KNOWN = ("path", "width", "height", "sha256", "orientation_applied")

    @classmethod
    def from_dict(cls, data: Any) -> "ImageRef":
        data = _dict(data, "image")
        path = data.get("path")
        try:
            safe_relative(path)
        except ValueError as exc:
            raise AnnotationError("image.path", str(exc)) from None
        width, height = _int(data.get("width"), "image.width"), _int(data.get("height"), "image.height")
        if width <= 0 or height <= 0:
            raise AnnotationError("image", f"size {width}×{height} must be positive")
        orientation = data.get("orientation_applied", True)
        if not isinstance(orientation, bool):
            raise AnnotationError("image.orientation_applied", "expected true or false")
        return cls(path, width, height, _opt_str(data, "sha256", "image"), orientation,
                   {k: v for k, v in data.items() if k not in cls.KNOWN})

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "width": self.width, "height": self.height,
                "sha256": self.sha256, "orientation_applied": self.orientation_applied, **self.extra}


@dataclass(frozen=True)
class Author:
    kind: str
    id: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> "Author":
        data = _dict(data, "author")
        kind, author_id = data.get("kind"), data.get("id")
        if kind not in AUTHOR_KINDS:
            raise AnnotationError("author.kind", f"expected one of {', '.join(AUTHOR_KINDS)}, got {kind!r}")
        if not isinstance(author_id, str) or not author_id:
            raise AnnotationError("author.id", "expected a non-empty name")
        return cls(kind, author_id, {k: v for k, v in data.items() if k not in ("kind", "id")})

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, **self.extra}


ACQUISITION_FIELDS = ("smear", "stain", "microscope", "magnification", "camera", "diagnosis")


@dataclass(frozen=True)
class Acquisition:
    """How the photo was taken; every field optional (the expert fills them in the panel)."""

    smear: str | None = None
    stain: str | None = None
    microscope: str | None = None
    magnification: int | None = None
    camera: str | None = None
    diagnosis: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> "Acquisition":
        data = _dict(data or {}, "acquisition")
        values: dict[str, Any] = {}
        for key in ACQUISITION_FIELDS:
            value = data.get(key)
            if key == "magnification":
                values[key] = None if value in (None, "") else _int(value, "acquisition.magnification")
            elif value is None or isinstance(value, str):
                values[key] = value
            else:
                values[key] = str(value)
        return cls(**values, extra={k: v for k, v in data.items() if k not in ACQUISITION_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ACQUISITION_FIELDS if getattr(self, k) is not None}
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Status:
    done: bool = False
    seconds_spent: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> "Status":
        data = _dict(data or {}, "status")
        done = data.get("done", False)
        if not isinstance(done, bool):
            raise AnnotationError("status.done", "expected true or false")
        seconds = _int(data.get("seconds_spent", 0), "status.seconds_spent")
        return cls(done, max(0, seconds), {k: v for k, v in data.items() if k not in ("done", "seconds_spent")})

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "seconds_spent": self.seconds_spent, **self.extra}


@dataclass(frozen=True)
class ImageAnnotation:
    """One author's record of one image. Immutable: edits make new objects (cheap undo)."""

    image: ImageRef
    author: Author
    cells: tuple[Cell, ...] = ()
    acquisition: Acquisition = field(default_factory=Acquisition)
    status: Status = field(default_factory=Status)
    extra: dict[str, Any] = field(default_factory=dict)

    KNOWN = ("format", "image", "author", "acquisition", "cells", "status")

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, cell in enumerate(self.cells):
            if cell.id in seen:
                raise AnnotationError(f"cells[{i}].id", f"{cell.id!r} is used by two cells")
            seen.add(cell.id)
            if not cell.box.inside(self.image.width, self.image.height):
                raise AnnotationError(
                    f"cells[{i}].box",
                    f"{cell.box.as_list()} lies outside the {self.image.width}×{self.image.height} image")

    @classmethod
    def empty(cls, image: ImageRef, author: Author) -> "ImageAnnotation":
        return cls(image, author)

    @classmethod
    def from_dict(cls, data: Any) -> "ImageAnnotation":
        data = _dict(data, "file")
        if data.get("format") != FORMAT_VERSION:
            raise AnnotationError("format", f"expected {FORMAT_VERSION!r}, got {data.get('format')!r}")
        cells_data = data.get("cells", [])
        if not isinstance(cells_data, list):
            raise AnnotationError("cells", "expected a list")
        return cls(
            image=ImageRef.from_dict(data.get("image")), author=Author.from_dict(data.get("author")),
            cells=tuple(Cell.from_dict(c, f"cells[{i}]") for i, c in enumerate(cells_data)),
            acquisition=Acquisition.from_dict(data.get("acquisition")),
            status=Status.from_dict(data.get("status")),
            extra={k: v for k, v in data.items() if k not in cls.KNOWN})

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "image": self.image.to_dict(), "author": self.author.to_dict(),
                "acquisition": self.acquisition.to_dict(), "cells": [c.to_dict() for c in self.cells],
                "status": self.status.to_dict(), **self.extra}

    # -- edits (each returns a new annotation) -------------------------------------------
    def cell(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(cell_id)

    def with_cells(self, cells: tuple[Cell, ...] | list[Cell]) -> "ImageAnnotation":
        return replace(self, cells=tuple(cells))

    def with_cell(self, cell: Cell) -> "ImageAnnotation":
        """Replace the cell with the same id, or add it at the end."""
        cells = list(self.cells)
        for i, old in enumerate(cells):
            if old.id == cell.id:
                cells[i] = cell
                return self.with_cells(cells)
        return self.with_cells([*cells, cell])

    def without_cell(self, cell_id: str) -> "ImageAnnotation":
        return self.with_cells([c for c in self.cells if c.id != cell_id])

    def labeled_count(self) -> int:
        return sum(1 for c in self.cells if c.label and not c.rejected)
