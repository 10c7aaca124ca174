"""The Easy-GT panel's controller: one cell's nucleus threshold, whole-cell outline and mask.

Issue 6, steps 5-7. The expert moves a threshold slider (or the −20…+20 buttons of Easy-GT)
over the live overlay, outlines the whole cell with a pen (freehand, then editable vertices)
or takes the automatic outline, and saves: the mask PNG is written (core.masks) and the cell,
now pointing at it with the threshold and outline, is committed to the labeling controller as
one undoable edit. Cytoplasm is the outlined cell minus the nucleus; basophils get a
whole-cell mask only. Nothing here imports Tk; coordinates are crop pixels (the cell's box
frame, the frame of the saved PNG), which the panel scales to its 575×575 view.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from ..core.annotation import Box, Cell
from ..core.imageio import crop_box
from ..core.masks import (ADJUSTED, AUTO, mark_failed, mask_status, save_cell_mask, saved_channel, saved_outline,
                          saved_threshold, whole_cell_only)
from ..core.nucleus import FITTED, SLIDER_METHODS, NucleusMethod, NucleusSession, compose_mask
from ..errors import UserError
from .labeling import LabelingController

#: The threshold buttons of the Easy-GT program (issue 6, step 5).
STEPS = (-20, -10, -5, -1, 1, 5, 10, 20)
NUCLEUS_TINT = (0, 255, 0)
TINT_OPACITY = 0.4

Point = tuple[float, float]


def prepare_session(photo: Image.Image | np.ndarray, box: Box, method: NucleusMethod = FITTED) -> NucleusSession:
    """The cell's full-resolution crop, ready for the slider (Otsu once). Safe off the Tk thread."""
    return NucleusSession(crop_box(photo, box), method)


def method_for(cell: Cell) -> NucleusMethod:
    """The default method, unless the cell's saved threshold is a level of another channel (a
    cell adjusted under the earlier default): then that method, so the expert's mask comes back."""
    return SLIDER_METHODS.get(saved_channel(cell) or FITTED.channel, FITTED)


# -- polygon geometry (pure; the canvas hit-tests through these) ---------------------------------
def vertex_at(points: Sequence[Point], x: float, y: float, radius: float) -> int | None:
    """The index of the vertex nearest (x, y) within ``radius``, or None."""
    best, best_d = None, radius
    for i, (px, py) in enumerate(points):
        d = math.hypot(px - x, py - y)
        if d <= best_d:
            best, best_d = i, d
    return best


def edge_at(points: Sequence[Point], x: float, y: float, radius: float) -> int | None:
    """The index i of the closed polygon's edge (i, i+1) nearest (x, y) within ``radius``."""
    best, best_d = None, radius
    n = len(points)
    for i in range(n):
        (ax, ay), (bx, by) = points[i], points[(i + 1) % n]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((x - ax) * dx + (y - ay) * dy) / length2))
        d = math.hypot(ax + t * dx - x, ay + t * dy - y)
        if d <= best_d:
            best, best_d = i, d
    return best


def simplify(points: Sequence[Point], tolerance: float) -> list[Point]:
    """A closed polygon with fewer vertices (Douglas-Peucker), so a pen stroke has few handles."""
    if len(points) < 3:
        return list(points)
    curve = np.asarray(points, dtype=np.float32).reshape(-1, 1, 2)
    out = cv2.approxPolyDP(curve, tolerance, closed=True).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in out] if len(out) >= 3 else list(points)


def outline_of(mask: np.ndarray, tolerance: float) -> list[Point] | None:
    """The largest outer outline of a bool mask as a polygon (vertices on pixel centres)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea).reshape(-1, 2)
    points = [(float(x), float(y)) for x, y in largest]
    return simplify(points, tolerance) if len(points) >= 3 else None


def fill_polygon(points: Sequence[Point], size: tuple[int, int]) -> np.ndarray:
    """The polygon as a bool mask of (width, height) = ``size`` (vertices are pixel centres)."""
    canvas = np.zeros((size[1], size[0]), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(np.asarray(points, dtype=np.float64)).astype(np.int32)], 1)
    return canvas.view(bool)


# -- the controller ------------------------------------------------------------------------------
class NucleusPanelController:
    """The panel's state for one cell of the current photo. Call from the Tk thread only.

    ``session`` comes from :func:`prepare_session` on the cell's box (a worker may make it).
    The slider starts at the cell's saved threshold, else the automatic one; the outline at
    the saved polygon, else the automatic outline.
    """

    def __init__(self, labeling: LabelingController, cell_id: str, session: NucleusSession):
        found = labeling.find(cell_id)
        if found is None or labeling.image is None:
            raise UserError(f"cell {cell_id} is not on the current photo")
        self.labeling = labeling
        self.cell_id = cell_id
        self.image = labeling.image
        self.session = session
        self.crop_size = session.crop_size  # (width, height) of the box
        self.box = found[0].box  # the crop the session was prepared on
        cell = found[0]
        if session.crop_size != (cell.box.width, cell.box.height):
            raise ValueError(f"the session's crop {session.crop_size} is not cell {cell_id}'s box")
        self.threshold = saved_threshold(cell)
        if self.threshold is None:
            self.threshold = session.auto_threshold
        self.outline = saved_outline(cell)
        self.outline_by_hand = self.outline is not None and self.outline != self._auto_outline()
        if self.outline is None:
            self.outline = self._auto_outline()
        self._stroke: list[Point] | None = None
        self._record = _mask_record(cell)  # the cell's mask record the panel state stands for
        #: Slider or outline touched since the panel opened or last saved (Next saves only then
        #: over a cell marked failed).
        self.changed = False
        self._cell_575: np.ndarray | None = None
        self._tint = cv2.addWeighted(session.rgb, 1 - TINT_OPACITY, np.full_like(session.rgb, NUCLEUS_TINT),
                                     TINT_OPACITY, 0)

    def follow_cell(self) -> bool:
        """Take in the cell's mask record if an undo or redo changed it behind the panel, so the
        slider and outline show what is on disk again; True if they changed. An adjustment not
        saved yet stays: it is the expert's newer word (and the panel says it is unsaved)."""
        cell = self.cell
        record = _mask_record(cell)
        if record == self._record or self.changed:
            return False
        self._record = record
        threshold = saved_threshold(cell)
        self.threshold = self.session.auto_threshold if threshold is None else threshold
        outline, auto = saved_outline(cell), self._auto_outline()
        self._set_outline(outline or auto, by_hand=outline is not None and outline != auto)
        self.changed = False
        return True

    def take_adjustment(self, old: "NucleusPanelController") -> None:
        """The expert's adjustment on the cell's previous box (saved or not: a moved box drops
        the saved mask record), carried into this crop: the threshold, and a hand-drawn outline
        shifted into this box's frame (the same photo pixels). Left unsaved, and said so."""
        if not (old.changed or old.status() == ADJUSTED):
            return
        if old.session.method is self.session.method:
            self.set_threshold(old.threshold)
        if old.outline_by_hand and old.outline:
            dx, dy = old.box.x1 - self.box.x1, old.box.y1 - self.box.y1
            self._set_outline([self._clamp(x + dx, y + dy) for x, y in old.outline], by_hand=True)

    # -- what the panel reads ----------------------------------------------------------
    @property
    def cell(self) -> Cell:
        found = self.labeling.find(self.cell_id)
        if found is None:
            raise UserError(f"cell {self.cell_id} was deleted meanwhile")
        return found[0]

    @property
    def whole_cell_only(self) -> bool:
        return whole_cell_only(self.cell)

    @property
    def saved_status(self) -> str | None:
        return mask_status(self.cell)

    def status(self) -> str:
        """What a save now would record: "auto" unless the slider or the outline was changed."""
        moved = not self.whole_cell_only and self.threshold != self.session.auto_threshold
        return ADJUSTED if moved or self.outline_by_hand else AUTO

    @property
    def vertex_tolerance(self) -> float:
        """Simplification tolerance in crop pixels: 0.5 % of the box side, at least one pixel."""
        return max(1.0, 0.005 * max(self.crop_size))

    # -- the threshold -----------------------------------------------------------------
    def set_threshold(self, value: float) -> int:
        """Higher threshold = smaller nucleus; clipped to 0-255."""
        threshold = int(min(255, max(0, round(value))))
        self.changed |= threshold != self.threshold
        self.threshold = threshold
        return threshold

    def step(self, delta: int) -> int:
        return self.set_threshold(self.threshold + delta)

    def overlay(self) -> np.ndarray:
        """The 575×575 view: the crop with the nucleus (inside the outline) tinted.

        A comparison, the clean-up, an AND and a masked copy: the ≤ 16 ms of issue 6.
        """
        out = self.session.rgb.copy()
        if self.whole_cell_only:
            return out
        nucleus = self.session.mask_for(self.threshold).view(np.uint8)
        if self._cell_575 is None:
            sx, sy = self._to_view_scale()
            points = [(x * sx, y * sy) for x, y in self.outline] if self.outline else None
            side = self.session.rgb.shape[1], self.session.rgb.shape[0]
            self._cell_575 = fill_polygon(points, side).view(np.uint8) if points else None
        if self._cell_575 is not None:
            nucleus = cv2.bitwise_and(nucleus, self._cell_575)
        cv2.copyTo(self._tint, nucleus, out)
        return out

    def _to_view_scale(self) -> tuple[float, float]:
        h, w = self.session.rgb.shape[:2]
        return w / self.crop_size[0], h / self.crop_size[1]

    def mask(self) -> np.ndarray:
        """The FORMAT.md mask at the box's size: what Save writes.

        The nucleus is kept inside the outline (the outline is the expert's word on where the
        cell is: a neighbour's nucleus outside it is not this cell's); cytoplasm = cell − nucleus.
        """
        cell = fill_polygon(self.outline, self.crop_size) if self.outline else None
        if self.whole_cell_only:
            return compose_mask(cell if cell is not None else np.zeros(self.crop_size[::-1], bool), None)
        nucleus = self.session.crop_mask(self.threshold)
        if cell is None:
            return compose_mask(nucleus, nucleus)
        return compose_mask(cell, nucleus & cell)

    # -- the outline -------------------------------------------------------------------
    def _auto_outline(self) -> list[Point] | None:
        nucleus = None if self.whole_cell_only else self.session.mask_for(self.threshold)
        return outline_of(self.session.cell_mask(nucleus), self.vertex_tolerance)

    def use_auto_outline(self) -> None:
        """The automatic outline for the current threshold (issue 6, step 6: "accept")."""
        self._set_outline(self._auto_outline(), by_hand=False)

    def _set_outline(self, points: list[Point] | None, *, by_hand: bool) -> None:
        self.changed |= points != self.outline
        self.outline = points
        self.outline_by_hand = by_hand
        self._cell_575 = None

    def _clamp(self, x: float, y: float) -> Point:
        """A point on the crop's nearest pixel centre: the mask's resolution, and what is saved."""
        return (float(min(self.crop_size[0] - 1, max(0, round(x)))),
                float(min(self.crop_size[1] - 1, max(0, round(y)))))

    def begin_stroke(self, x: float, y: float) -> None:
        """Pen down: a freehand outline starts (the old one stays until the stroke is done)."""
        self._stroke = [self._clamp(x, y)]

    def extend_stroke(self, x: float, y: float) -> list[Point]:
        """Pen moved; returns the stroke so far, for the panel to draw."""
        if self._stroke is None:
            self.begin_stroke(x, y)
        point = self._clamp(x, y)
        if point != self._stroke[-1]:
            self._stroke.append(point)
        return self._stroke

    def end_stroke(self) -> bool:
        """Pen up: the stroke, closed and simplified, becomes the outline if it encloses area."""
        stroke, self._stroke = self._stroke, None
        if not stroke or len(stroke) < 3:
            return False
        polygon = simplify(stroke, self.vertex_tolerance)
        area = abs(cv2.contourArea(np.asarray(polygon, dtype=np.float32)))
        if len(polygon) < 3 or area < 4 * self.vertex_tolerance ** 2:
            return False  # a click or a scribble along a line: no cell
        self._set_outline(polygon, by_hand=True)
        return True

    def move_vertex(self, index: int, x: float, y: float) -> None:
        points = list(self.outline or [])
        points[index] = self._clamp(x, y)
        self._set_outline(points, by_hand=True)

    def insert_vertex(self, edge: int, x: float, y: float) -> int:
        """A new vertex on edge (edge, edge+1); returns its index."""
        points = list(self.outline or [])
        points.insert(edge + 1, self._clamp(x, y))
        self._set_outline(points, by_hand=True)
        return edge + 1

    def delete_vertex(self, index: int) -> bool:
        """Remove a vertex; a polygon keeps at least three."""
        if not self.outline or len(self.outline) <= 3:
            return False
        self._set_outline([p for i, p in enumerate(self.outline) if i != index], by_hand=True)
        return True

    # -- saving ------------------------------------------------------------------------
    def _check_current(self) -> Cell:
        if self.labeling.image != self.image:
            raise UserError(f"the photo changed to {self.labeling.image}; reopen the panel on the cell")
        if not self.labeling.editable():
            raise UserError(f"{self.image}: the annotation file cannot be edited")
        cell = self.cell
        if cell.box != self.box:  # the mask would be of the old crop: misaligned, or the wrong size
            raise UserError(f"cell {self.cell_id}'s box was moved or resized; reopen the panel to redo its mask")
        return cell

    def save(self) -> Cell:
        """Write the mask PNG and commit the cell pointing at it (undoable); returns that cell."""
        cell = self._check_current()
        edited = save_cell_mask(
            self.labeling.project, self.labeling.expert, self.image, cell, self.mask(),
            threshold=None if self.whole_cell_only else self.threshold,
            outline=self.outline, status=self.status(), channel=self.session.method.channel)
        self._record = _mask_record(edited)
        self.labeling.replace_cell(edited)
        self.changed = False
        return edited

    def mark_failed(self) -> Cell:
        """"Failed / unusable": recorded on the cell (undoable), no mask."""
        edited = mark_failed(self._check_current())
        self._record = _mask_record(edited)
        self.labeling.replace_cell(edited)
        self.changed = False
        return edited


def _mask_record(cell: Cell) -> tuple:
    """What the cell records of its mask: the PNG and the keys that reopen the panel's state."""
    return cell.nucleus_mask, mask_status(cell), saved_threshold(cell), saved_channel(cell), saved_outline(cell)
