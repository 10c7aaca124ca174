"""Pure geometry for editing boxes: hit-testing, handles, moves and resizes inside the photo.

No window here (labelme keeps these apart too), so every rule is tested directly.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from .annotation import Box, Cell

#: The eight resize handles, named by compass point; "move" is the box's inside.
HANDLES = ("nw", "n", "ne", "e", "se", "s", "sw", "w")
MIN_SIZE = 4  # px: a box never collapses while being resized


def handle_points(box: Box) -> dict[str, tuple[float, float]]:
    xm, ym = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    return {"nw": (box.x1, box.y1), "n": (xm, box.y1), "ne": (box.x2, box.y1), "e": (box.x2, ym),
            "se": (box.x2, box.y2), "s": (xm, box.y2), "sw": (box.x1, box.y2), "w": (box.x1, ym)}


def handle_at(box: Box, x: float, y: float, tolerance: float) -> str | None:
    """The handle within ``tolerance`` (image px) of the point, nearest first."""
    best, best_d = None, tolerance
    for name, (hx, hy) in handle_points(box).items():
        d = max(abs(hx - x), abs(hy - y))
        if d <= best_d:
            best, best_d = name, d
    return best


def cell_at(cells: Iterable[Cell], x: float, y: float) -> Cell | None:
    """The cell under the point; the smallest box wins so small and nested cells stay reachable."""
    hits = [c for c in cells if c.box.x1 <= x <= c.box.x2 and c.box.y1 <= y <= c.box.y2]
    return min(hits, key=lambda c: c.box.area) if hits else None


def moved(box: Box, dx: int, dy: int, width: int, height: int) -> Box:
    """The box moved by (dx, dy), stopped at the photo's edges without changing size."""
    dx = max(-box.x1, min(dx, width - box.x2))
    dy = max(-box.y1, min(dy, height - box.y2))
    return Box(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)


def resized(box: Box, handle: str, x: float, y: float, width: int, height: int) -> Box:
    """The box with ``handle`` dragged to (x, y); sides never cross nor leave the photo."""
    x1, y1, x2, y2 = box.x1, box.y1, box.x2, box.y2
    xi, yi = round(min(max(x, 0), width)), round(min(max(y, 0), height))
    if "w" in handle:
        x1 = min(xi, x2 - MIN_SIZE)
    if "e" in handle:
        x2 = max(xi, x1 + MIN_SIZE)
    if handle.startswith("n"):
        y1 = min(yi, y2 - MIN_SIZE)
    if handle.startswith("s"):
        y2 = max(yi, y1 + MIN_SIZE)
    return Box(max(0, x1), max(0, y1), min(width, x2), min(height, y2))


def box_from_drag(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box | None:
    """The box a drag outlines, inside the photo; None for a drag too small to be a box."""
    ax, bx = sorted((min(max(x0, 0), width), min(max(x1, 0), width)))
    ay, by = sorted((min(max(y0, 0), height), min(max(y1, 0), height)))
    box = (round(ax), round(ay), round(bx), round(by))
    if box[2] - box[0] < MIN_SIZE or box[3] - box[1] < MIN_SIZE:
        return None
    return Box(*box)


def placed_box(cx: float, cy: float, size: int, width: int, height: int) -> Box:
    """A default-size box centred on a click (the Raabin 575 px workflow), kept in the photo."""
    size = max(MIN_SIZE, min(size, width, height))
    return Box.around(cx, cy, size).shifted_inside(width, height)


def reading_order(cells: Sequence[Cell], row_height: float | None = None) -> list[Cell]:
    """Cells top to bottom in rows, left to right within a row (Tab order).

    A row starts at its topmost cell and takes every cell whose centre lies less than half
    ``row_height`` (default: the median cell height) below that one, so cells that are roughly
    level are visited left to right whatever a pixel's difference in y.
    """
    if not cells:
        return []
    if row_height is None:
        heights = sorted(c.box.height for c in cells)
        row_height = max(1.0, heights[len(heights) // 2])
    rows: list[list[Cell]] = []
    row_top = None
    for cell in sorted(cells, key=lambda c: (c.box.center[1], c.box.center[0], c.id)):
        if row_top is None or cell.box.center[1] - row_top > row_height / 2:
            rows.append([])
            row_top = cell.box.center[1]
        rows[-1].append(cell)
    return [cell for row in rows for cell in sorted(row, key=lambda c: (c.box.center[0], c.id))]
