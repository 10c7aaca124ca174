"""A cell's mask on disk: PNG files under masks/, and the keys that record them on the cell.

FORMAT.md ("Masks"): a PNG the size of the cell's box, 0 background, 128 cytoplasm, 255
nucleus, referenced from the cell's ``nucleus_mask``. Beside it the cell records, in keys kept
in ``Cell.extra`` (unknown to older readers, written back unchanged):

- ``mask_status``: "auto" (the automatic threshold and outline), "adjusted" (the expert moved
  the slider or drew the outline) or "failed" (the expert found the crop unusable; no mask);
- ``nucleus_threshold``: the slider value the mask was made with, so reopening the panel
  restores the expert's adjustment (issue 6: Easy-GT forgot it on Next);
- ``nucleus_channel``: what that threshold is a level of ("pixel_model", the default model's
  probability; "nuclear_magenta", the earlier default rule's channel). A threshold saved
  without it predates the key and is a "nuclear_magenta" level;
- ``cell_outline``: the whole-cell polygon, ``[[x, y], …]`` in whole crop pixels (box frame;
  vertices on pixel centres, the PNG's resolution), so its vertices can be edited again.

Writes are atomic like every other project file (temporary file, fsync, ``os.replace``).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import FileProblem
from .annotation import Cell
from .nucleus import BACKGROUND, CYTOPLASM, NUCLEUS
from .project import Project, check_author_id
from .paths import safe_relative
from .store import atomic_write_bytes

STATUS_KEY = "mask_status"
THRESHOLD_KEY = "nucleus_threshold"
CHANNEL_KEY = "nucleus_channel"
LEGACY_CHANNEL = "nuclear_magenta"  # the default rule's channel before CHANNEL_KEY was written
OUTLINE_KEY = "cell_outline"
AUTO, ADJUSTED, FAILED = "auto", "adjusted", "failed"
STATUSES = (AUTO, ADJUSTED, FAILED)
MASK_VALUES = (BACKGROUND, CYTOPLASM, NUCLEUS)


class MaskError(FileProblem):
    """A mask PNG that is missing, not a PNG, of the wrong size or with foreign values."""


def mask_rel_path(author: str, image: str, cell_id: str) -> str:
    """``masks/<author>/<image>/<cell-id>.png`` (FORMAT.md's example), relative to the project;
    a later, different mask of the cell gets ``<cell-id>-<content hash>.png`` (save_cell_mask)."""
    rel = PurePosixPath("masks", check_author_id(author), safe_relative(image).as_posix(), f"{cell_id}.png")
    return safe_relative(rel.as_posix()).as_posix()


def whole_cell_only(cell: Cell) -> bool:
    """Basophils: their granules hide the nucleus border, so the mask is the whole cell (issue 6)."""
    return bool(cell.label) and (cell.label == "basophil" or cell.label.startswith("basophil."))


def without_mask(cell: Cell) -> Cell:
    """The cell with no mask record: no PNG reference, status, threshold, channel or outline."""
    extra = {k: v for k, v in cell.extra.items() if k not in (STATUS_KEY, THRESHOLD_KEY, CHANNEL_KEY, OUTLINE_KEY)}
    return cell.edited(nucleus_mask=None, extra=extra)


def stale_masks_dropped(before: Sequence[Cell], after: Sequence[Cell]) -> list[Cell] | None:
    """``after`` with the mask records that no longer fit dropped; None if none did.

    A mask is of one box and one kind of cell: a box moved or resized since (the PNG is the old
    crop's, at the old size: exported misaligned, or refused by the masks export), or a label
    moved across the basophil line (a whole-cell-only mask for a cell that should have its
    nucleus split, or the reverse) no longer fits. The PNG stays on disk: undo brings the box
    and its mask back together.
    """
    old = {c.id: c for c in before}
    out, dropped = [], False
    for cell in after:
        was = old.get(cell.id)
        if (was is not None and (cell.nucleus_mask is not None or STATUS_KEY in cell.extra)
                and (was.box != cell.box or whole_cell_only(was) != whole_cell_only(cell))):
            cell, dropped = without_mask(cell), True
        out.append(cell)
    return out if dropped else None


def mask_status(cell: Cell) -> str | None:
    value = cell.extra.get(STATUS_KEY)
    return value if value in STATUSES else None


def saved_threshold(cell: Cell) -> int | None:
    """The expert's slider value for this cell, if one was saved (and is a sane 0-255 integer)."""
    value = cell.extra.get(THRESHOLD_KEY)
    return value if type(value) is int and 0 <= value <= 255 else None


def saved_channel(cell: Cell) -> str | None:
    """The channel the saved threshold is a level of; None when no threshold was saved."""
    if saved_threshold(cell) is None:
        return None
    value = cell.extra.get(CHANNEL_KEY)
    return value if isinstance(value, str) else LEGACY_CHANNEL


def saved_outline(cell: Cell) -> list[tuple[float, float]] | None:
    """The saved whole-cell polygon in crop pixels, if there is a usable one (≥ 3 points)."""
    value = cell.extra.get(OUTLINE_KEY)
    if not isinstance(value, list) or len(value) < 3:
        return None
    points = []
    for point in value:
        if not (isinstance(point, list) and len(point) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
            return None
        points.append((float(point[0]), float(point[1])))
    return points


def check_mask(mask: np.ndarray, cell: Cell) -> np.ndarray:
    """The mask as uint8 of the box's size with FORMAT.md values only; ValueError otherwise."""
    mask = np.asarray(mask)
    size = (cell.box.height, cell.box.width)
    if mask.shape != size:
        raise ValueError(f"mask is {mask.shape[1::-1]} px but cell {cell.id}'s box is {size[::-1]}")
    if mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8, got {mask.dtype}")
    stray = np.setdiff1d(np.unique(mask), MASK_VALUES)
    if stray.size:
        raise ValueError(f"mask holds value {int(stray[0])}; only 0, 128 and 255 are allowed")
    return mask


def save_cell_mask(project: Project, author: str, image: str, cell: Cell, mask: np.ndarray, *,
                   threshold: int | None, outline: Sequence[tuple[float, float]] | None,
                   status: str, channel: str | None = None) -> Cell:
    """Write the cell's mask PNG and return the cell pointing at it (the caller commits it).

    ``threshold`` is None for a whole-cell-only mask (basophils). Raises MaskError when the
    file cannot be written.
    """
    if status not in (AUTO, ADJUSTED):
        raise ValueError(f"a saved mask is {AUTO!r} or {ADJUSTED!r}, got {status!r}")
    mask = check_mask(mask, cell)
    buffer = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buffer, format="PNG", optimize=False, compress_level=6)
    data = buffer.getvalue()
    rel = mask_rel_path(author, image, cell.id)
    path = project.mask_path(rel)
    if path.exists() and _content(path) != data:
        # never written over: an earlier save's record (undo, redo) may point at it
        rel = mask_rel_path(author, image, f"{cell.id}-{hashlib.sha256(data).hexdigest()[:12]}")
        path = project.mask_path(rel)
    try:
        if _content(path) != data:
            atomic_write_bytes(path, data)
    except OSError as exc:
        raise MaskError(path, f"cannot be saved: {exc.strerror or exc}") from None
    extra = {k: v for k, v in cell.extra.items() if k not in (THRESHOLD_KEY, CHANNEL_KEY, OUTLINE_KEY)}
    extra[STATUS_KEY] = status
    if threshold is not None:
        extra[THRESHOLD_KEY] = int(threshold)
        if channel is not None:
            extra[CHANNEL_KEY] = channel
    if outline is not None:
        extra[OUTLINE_KEY] = [[int(round(x)), int(round(y))] for x, y in outline]
    return cell.edited(nucleus_mask=rel, extra=extra)


def _content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def mark_failed(cell: Cell) -> Cell:
    """The expert found the crop unusable: no mask, status "failed" (issue 6, step 7).

    A PNG saved earlier stays on disk (undo may point back at it) but is no longer referenced.
    """
    extra = {k: v for k, v in cell.extra.items() if k not in (THRESHOLD_KEY, CHANNEL_KEY, OUTLINE_KEY)}
    extra[STATUS_KEY] = FAILED
    return cell.edited(nucleus_mask=None, extra=extra)


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask PNG as uint8 (height, width); MaskError naming the file for every problem.

    ``size`` is the cell's box as (width, height).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise MaskError(path, f"is a {im.format or 'non-PNG'} file, not a PNG mask")
            if im.mode not in ("L", "P", "1"):
                raise MaskError(path, f"is a {im.mode} PNG; a mask is 8-bit grayscale (0, 128, 255)")
            if im.size != size:
                raise MaskError(path, f"is {im.size[0]}×{im.size[1]} px but the cell's box is "
                                      f"{size[0]}×{size[1]}; it belongs to another box (redo the mask)")
            mask = np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise MaskError(path, "file not found (the annotation refers to a mask that is not there)") from None
    except UnidentifiedImageError:
        raise MaskError(path, "is not a PNG image (damaged or another kind of file)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MaskError(path, f"cannot be read: {exc}") from None
    stray = np.setdiff1d(np.unique(mask), MASK_VALUES)
    if stray.size:
        raise MaskError(path, f"holds the value {int(stray[0])}; a mask has only 0 (background), "
                              "128 (cytoplasm) and 255 (nucleus)")
    return mask


def load_cell_mask(project: Project, cell: Cell) -> np.ndarray | None:
    """The cell's saved mask, None if it has none; MaskError if the file is broken."""
    if cell.nucleus_mask is None:
        return None
    return read_mask(project.mask_path(cell.nucleus_mask), (cell.box.width, cell.box.height))
