"""COCO detection JSON: one file with ``images``, ``annotations`` and ``categories``.

``bbox`` is ``[x, y, width, height]`` with x, y the top-left corner, 0-based: the project's
``[x1, y1, x2, y2]`` is ``[x, y, x + width, y + height]``. Exports add ``cell_id`` to each
annotation (COCO readers ignore unknown keys) so a COCO round trip keeps cell ids.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ...errors import FileProblem
from ..project import Project
from ..store import atomic_write_text, dumps, read_json
from .common import ExportItem, ForeignCell, ForeignImage, category_names, category_of, number

SUFFIX = ".json"
SLOTS = 1
FILE_NAME = "annotations.json"


def _list(data: dict, key: str, path: Path) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise FileProblem(path, "is not a COCO file: expected a list", key)
    return value


def read(path: Path, root: Path) -> list[ForeignImage]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise FileProblem(path, "is not a COCO file: expected a JSON object with images, annotations, categories")
    categories: dict[Any, str] = {}
    for i, cat in enumerate(_list(data, "categories", path)):
        if not isinstance(cat, dict) or not isinstance(cat.get("name"), str):
            raise FileProblem(path, "each category needs a 'name'", f"categories[{i}]")
        categories[cat.get("id")] = cat["name"]
    images: dict[Any, ForeignImage] = {}
    for i, entry in enumerate(_list(data, "images", path)):
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            raise FileProblem(path, "each image needs a 'file_name'", f"images[{i}]")
        width, height = number(entry.get("width")), number(entry.get("height"))
        size = (int(width), int(height)) if width and height and width > 0 and height > 0 else None
        images[entry.get("id")] = ForeignImage(path, (entry["file_name"],), [], size)
    orphans: list[str] = []
    for i, ann in enumerate(_list(data, "annotations", path)):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise FileProblem(path, "expected an object", where)
        image = images.get(ann.get("image_id"))
        if image is None:
            orphans.append(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'; skipped")
            continue
        bbox = ann.get("bbox")
        values = [number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else [None]
        if None in values:
            image.notes.append(f"{where}: bbox {bbox!r} is not [x, y, width, height]; skipped")
            continue
        if ann.get("category_id") not in categories:
            image.notes.append(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'; skipped")
            continue
        x, y, w, h = values
        cell_id = ann.get("cell_id") if isinstance(ann.get("cell_id"), str) else None
        image.cells.append(ForeignCell((x, y, x + w, y + h), (categories[ann["category_id"]],), where, cell_id))
    found = list(images.values())
    if orphans and found:
        found[0].notes.extend(orphans)
    return found


def targets(project: Project, items: list[ExportItem], out: Path) -> list[Path]:
    """The files ``write`` makes, so an export can check first that it replaces none of the user's."""
    return [out / FILE_NAME]


def write(project: Project, items: list[ExportItem], out: Path, advance: Callable[[str], None]) -> str:
    ids = {name: i for i, name in enumerate(category_names(project.taxonomy), start=1)}
    images, annotations = [], []
    for image_id, item in enumerate(items, start=1):
        ref = item.annotations[0].image
        images.append({"id": image_id, "file_name": item.image, "width": ref.width, "height": ref.height})
        for cell in item.cells():
            box = cell.box
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": ids.setdefault(category_of(cell), len(ids) + 1),
                                "bbox": [box.x1, box.y1, box.width, box.height], "area": box.area,
                                "iscrowd": 0, "cell_id": cell.id})
        advance(item.image)
    categories = [{"id": i, "name": n, "supercategory": n.split(".")[0]} for n, i in ids.items()]
    author = items[0].annotations[0].author.id if items else ""
    data = {"info": {"description": f"{project.name}: cells by {author} (raabin-labeler export)",
                     "date_created": datetime.now(timezone.utc).replace(microsecond=0).isoformat()},
            "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    target = out / FILE_NAME
    atomic_write_text(target, dumps(data), keep_backup=False)
    return str(target)
