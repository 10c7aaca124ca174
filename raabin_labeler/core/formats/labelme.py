"""labelme JSON, one file per photo: ``shapes`` with a label, points and a shape type.

labelme's points are continuous 0-based coordinates, the project's own frame. Rectangles and
polygons become their bounding box, a circle (centre, point on the rim) its enclosing square;
points and lines carry no box and are reported, not guessed at.
"""
from __future__ import annotations

import math
from pathlib import Path

from ...errors import FileProblem
from ..store import read_json
from .common import ForeignCell, ForeignImage, number

SUFFIX = ".json"
SLOTS = 1
_BOXLESS = ("point", "line", "linestrip", "points")


def _points(raw: object) -> list[tuple[float, float]] | None:
    if not isinstance(raw, list):
        return None
    out = []
    for point in raw:
        if not isinstance(point, list) or len(point) != 2:
            return None
        x, y = number(point[0]), number(point[1])
        if x is None or y is None:
            return None
        out.append((x, y))
    return out


def _bounds(kind: str, points: list[tuple[float, float]]) -> tuple[float, float, float, float] | None:
    if kind == "circle":
        if len(points) != 2:
            return None
        (cx, cy), (px, py) = points
        r = math.hypot(px - cx, py - cy)
        return cx - r, cy - r, cx + r, cy + r
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def read(path: Path, root: Path) -> list[ForeignImage]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise FileProblem(path, "is not a labelme file: expected an object with a 'shapes' list")
    width, height = number(data.get("imageWidth")), number(data.get("imageHeight"))
    size = (int(width), int(height)) if width and height and width > 0 and height > 0 else None
    relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
    image_path = data.get("imagePath") if isinstance(data.get("imagePath"), str) else ""
    image = ForeignImage(path, (relative, image_path), [], size)
    for index, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict):
            raise FileProblem(path, "expected an object", f"shapes[{index}]")
        label = shape.get("label") if isinstance(shape.get("label"), str) else None
        where = f"shapes[{index}] ({label or 'no label'})"
        kind = shape.get("shape_type") or "polygon"  # labelme's default when the key is absent
        if kind in _BOXLESS:
            image.notes.append(f"{where}: a {kind} has no box; skipped")
            continue
        points = _points(shape.get("points"))
        bounds = _bounds(kind, points) if points is not None else None
        if bounds is None:
            image.notes.append(f"{where}: points {shape.get('points')!r} do not make a {kind}; skipped")
            continue
        image.cells.append(ForeignCell(bounds, (label,), where))
    return [image]
