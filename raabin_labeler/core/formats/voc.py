"""Pascal VOC XML, one file per photo, as labelImg reads and writes it.

VOC pixel indices start at 1 and ``xmax``/``ymax`` name the last pixel inside the box (the VOC
devkit's convention; labelImg clamps ``xmin`` and ``ymin`` to at least 1 for that reason). A
project box is 0-based with exclusive ends, so ``x1 = xmin - 1`` and ``x2 = xmax``; exporting
writes ``xmin = x1 + 1``, ``xmax = x2``, so a VOC → project → VOC trip is exact and BCCD's
``xmin = 1`` boxes start at the photo's edge.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

from ...errors import FileProblem
from ..project import Project
from ..store import atomic_write_bytes
from .common import ExportItem, ForeignCell, ForeignImage, category_of, number, output_paths

SUFFIX = ".xml"
SLOTS = 1
_COORDS = ("xmin", "ymin", "xmax", "ymax")


def read(path: Path, root: Path) -> list[ForeignImage]:
    try:
        top = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]  # expat's text, without its own "line N, column M"
        raise FileProblem(path, f"is not valid XML: {reason}", f"line {line}, column {column}") from None
    except OSError as exc:
        raise FileProblem(path, f"cannot be read: {exc.strerror or exc}") from None
    if top.tag != "annotation":
        raise FileProblem(path, f"is not a Pascal VOC file: its top element is <{top.tag}>, not <annotation>")
    filename = (top.findtext("filename") or "").strip()
    relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
    width, height = number(top.findtext("size/width")), number(top.findtext("size/height"))
    size = (int(width), int(height)) if width and height and width > 0 and height > 0 else None
    image = ForeignImage(path, (relative, filename), [], size)
    for index, obj in enumerate(top.findall("object")):
        where = f"object {index} ({(obj.findtext('name') or '').strip() or 'no name'})"
        box = obj.find("bndbox")
        if box is None:
            image.notes.append(f"{where}: has no <bndbox>; skipped")
            continue
        values = [number(box.findtext(k)) for k in _COORDS]
        bad = [k for k, v in zip(_COORDS, values) if v is None]
        if bad:
            image.notes.append(f"{where}: <{bad[0]}> is {box.findtext(bad[0])!r}, not a number; skipped")
            continue
        xmin, ymin, xmax, ymax = values
        if xmin == xmax or ymin == ymax:
            image.notes.append(f"{where}: xmin = xmax or ymin = ymax (a point or a line drawn "
                               f"by mistake?); kept as a 1-pixel-wide box")
        # A 0 can only come from a tool that counts from 0; it means the photo's edge too.
        image.cells.append(ForeignCell((max(0.0, xmin - 1), max(0.0, ymin - 1), xmax, ymax),
                                       ((obj.findtext("name") or "").strip() or None,), where))
    return [image]


def _element(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


def targets(project: Project, items: list[ExportItem], out: Path) -> list[Path]:
    """The files ``write`` makes, so an export can check first that it replaces none of the user's."""
    return list(output_paths(out, (item.image for item in items), SUFFIX).values())


def write(project: Project, items: list[ExportItem], out: Path, advance: Callable[[str], None]) -> str:
    paths = output_paths(out, (item.image for item in items), SUFFIX)
    for item in items:
        annotation = item.annotations[0]
        photo = project.image_path(item.image)
        top = ET.Element("annotation")
        _element(top, "folder", photo.parent.name)
        _element(top, "filename", photo.name)
        _element(top, "path", str(photo.absolute()))
        _element(_element(top, "source"), "database", "raabin-labeler")
        size = _element(top, "size")
        _element(size, "width", annotation.image.width)
        _element(size, "height", annotation.image.height)
        _element(size, "depth", 3)
        _element(top, "segmented", 0)
        for cell in item.cells():
            obj = _element(top, "object")
            _element(obj, "name", category_of(cell))
            _element(obj, "pose", "Unspecified")
            touches = not (cell.box.x1 > 0 and cell.box.y1 > 0 and cell.box.x2 < annotation.image.width
                           and cell.box.y2 < annotation.image.height)
            _element(obj, "truncated", int(touches))
            _element(obj, "difficult", 0)
            box = _element(obj, "bndbox")
            for tag, value in zip(_COORDS, (cell.box.x1 + 1, cell.box.y1 + 1, cell.box.x2, cell.box.y2)):
                _element(box, tag, value)
        ET.indent(top, "\t")
        atomic_write_bytes(paths[item.image], ET.tostring(top, encoding="utf-8", xml_declaration=False))
        advance(item.image)
    return f"{len(items)} VOC XML file(s) under {out}"
