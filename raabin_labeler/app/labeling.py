"""The labeling controller: what an expert can do to the cells of one photo, and moving on.

It holds the current photo's annotation (immutable snapshots, so undo is a stack of them),
the selection, the label-key chord and the detector's proposals. The window translates mouse
and keys into these calls and redraws when told; nothing here imports Tk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from ..core import geometry
from ..core.annotation import Acquisition, Box, Cell, ImageAnnotation
from ..core.masks import stale_masks_dropped
from ..core.project import DETECTOR, Project, author_for
from ..core.store import StoreError
from ..errors import FileProblem
from .autosave import Autosaver

IDLE_CAP_SECONDS = 60  # time between two edits counts as work up to this much


def _folder(image: str) -> str:
    return image.rsplit("/", 1)[0] if "/" in image else ""


def unhandled_proposals(proposals: tuple[Cell, ...], cells: tuple[Cell, ...]) -> list[Cell]:
    """Proposals with no record in the expert's cells, by id or by a box over the same cell."""
    ids = {c.id for c in cells}
    return [p for p in proposals if p.id not in ids and not any(_same_cell(p.box, c.box) for c in cells)]


def _same_cell(proposal: Box, box: Box) -> bool:
    """IoU ≥ 0.5 (FORMAT.md matching), or the proposal inside the expert's box and at least a
    third of it: the detector boxes a lobed nucleus tighter than experts box the cell (sample
    project: IoU 0.37-0.50, always inside), and such a proposal was shown on top of the labeled
    cell for the expert to reject. A small one inside a big box (a cell in a clump) still shows."""
    inter = proposal.intersection(box)
    return proposal.iou(box) >= 0.5 or (inter >= 0.9 * proposal.area and 3 * inter >= box.area)


@dataclass(frozen=True)
class PhotoStatus:
    state: str  # "not started", "in progress", "done", "unreadable"
    cells: int = 0
    unlabeled: int = 0
    labeled: int = 0


@dataclass
class _Snapshot:
    annotation: ImageAnnotation
    selected: str | None


class LabelingController:
    """One expert labeling one project. Call from the Tk thread only."""

    def __init__(self, project: Project, expert: str, *, autosaver: Autosaver | None = None,
                 advance_after_label: bool = True, clock: Callable[[], float] = time.monotonic):
        self.project = project
        self.expert = expert
        self.taxonomy = project.taxonomy
        self.autosaver = autosaver or Autosaver(project.save)
        self.advance_after_label = advance_after_label
        self.clock = clock
        self.images = project.images()
        self.index = -1
        self.annotation: ImageAnnotation | None = None
        self.proposals: tuple[Cell, ...] = ()
        self.other: dict[str, ImageAnnotation] = {}
        self.selected: str | None = None
        self.problem: FileProblem | None = None  # why the current photo cannot be edited
        self._undo: list[_Snapshot] = []
        self._redo: list[_Snapshot] = []
        self._edit_start: _Snapshot | None = None
        self.chord_parent: str | None = None
        self._last_activity: float | None = None
        self._statuses: dict[str, PhotoStatus] = {}
        self.listeners: list[Callable[[str], None]] = []

    # -- notifications ------------------------------------------------------------------
    def _notify(self, what: str) -> None:
        """``what`` is "photo", "cells", "drag" (a box following the mouse), "selection", "status",
        or "leaving" (another photo is about to be shown: the current one can still be edited)."""
        for listener in list(self.listeners):
            listener(what)

    # -- photos -------------------------------------------------------------------------
    @property
    def image(self) -> str | None:
        return self.images[self.index] if 0 <= self.index < len(self.images) else None

    def open_index(self, index: int) -> bool:
        """Show photo ``index``; returns False (with ``problem`` set) when its file is broken."""
        if not 0 <= index < len(self.images):
            return False
        self.commit_chord()  # a class key typed just before leaving the photo stands
        self._notify("leaving")
        left = self.annotation
        carried = (left.acquisition if left is not None and self.image is not None
                   and _folder(self.images[index]) == _folder(self.image) else None)
        self._account_time()
        self.index = index
        self.selected = None
        self._undo.clear()
        self._redo.clear()
        self._edit_start = None
        self.problem = None
        image = self.images[index]
        self._statuses.pop(image, None)  # read again: "unreadable" may be over (a backup restored)
        try:
            self.annotation = self._current_version(image, carried)
        except FileProblem as exc:
            self.annotation = None
            self.problem = exc
            self._statuses[image] = PhotoStatus("unreadable")
        self.proposals = self._load_proposals(image)
        self.other = self._load_others(image)
        self._last_activity = None
        if self.advance_after_label and self.annotation is not None:
            self._select_first_unlabeled()  # label keys work at once, no click needed
        self._notify("photo")
        return self.problem is None

    def _current_version(self, image: str, carried: Acquisition | None = None) -> ImageAnnotation:
        """The autosaver's unsaved version if there is one (it is newer than the file).

        A photo this expert has not opened yet starts with the acquisition details another
        author already entered for it: smear, camera and microscope are facts, not opinions;
        else with ``carried`` (those of the photo just left, in the same folder: the same slide).
        """
        pending = self.autosaver.latest(self.expert, image)
        if pending is not None:
            return pending
        existing = self.project.load(self.expert, image)
        if existing is not None:
            return existing
        new = ImageAnnotation.empty(self.project.image_ref(image), author_for(self.expert))
        for author in self.project.authors():
            if author in (self.expert, DETECTOR):
                continue
            try:
                other = self.project.load(author, image)
            except StoreError:
                continue
            if other is not None and other.acquisition.to_dict():
                return replace(new, acquisition=other.acquisition)
        return replace(new, acquisition=carried) if carried is not None else new

    def open_image(self, image: str) -> bool:
        return self.open_index(self.images.index(image))

    def _load_proposals(self, image: str) -> tuple[Cell, ...]:
        try:
            detected = self.project.load(DETECTOR, image)
        except StoreError:
            return ()
        return detected.cells if detected else ()

    def _load_others(self, image: str) -> dict[str, ImageAnnotation]:
        others = {}
        for author in self.project.authors():
            if author in (self.expert, DETECTOR):
                continue
            try:
                ann = self.project.load(author, image)
            except StoreError:
                continue
            if ann is not None:
                others[author] = ann
        return others

    def photo_unreadable(self, problem: FileProblem) -> bool:
        """The current photo's pixels cannot be decoded, although its header could be read (a
        truncated file): nothing can be labeled on it. Returns whether this was news.

        The annotation file is left as it is; edits made before the decoder gave up are saved.
        """
        image = self.image
        if image is None or self.problem is not None:
            return False
        self.problem = problem
        self.annotation = None
        self.selected = None
        self.chord_parent = None
        self._statuses[image] = PhotoStatus("unreadable")
        self._notify("photo")
        return True

    def restore_backup(self) -> bool:
        """Replace a broken annotation file by its backup (the broken one is kept aside)."""
        from ..core.store import backup_path, load_annotation
        image = self.image
        if image is None or self.problem is None:
            return False
        path = self.project.annotation_path(self.expert, image)
        backup = backup_path(path)
        restored = load_annotation(backup)  # raises a FileProblem if the backup is broken too
        path.replace(path.with_name(path.name + f".broken-{int(time.time())}"))
        self.project.save(restored)
        return self.open_index(self.index)

    def next_photo(self) -> bool:
        return self.open_index(self.index + 1) if self.index + 1 < len(self.images) else False

    def previous_photo(self) -> bool:
        return self.open_index(self.index - 1) if self.index > 0 else False

    def next_unfinished_photo(self) -> bool:
        """The next photo (wrapping) that is not marked done or still has unlabeled cells."""
        n = len(self.images)
        for step in range(1, n + 1):
            i = (self.index + step) % n
            status = self.photo_status(self.images[i])
            if status.state in ("not started", "in progress") or status.unlabeled:
                return self.open_index(i)
        return False

    def photo_status(self, image: str) -> PhotoStatus:
        if image == self.image and self.annotation is not None:
            return self._status_of(self.annotation, self.proposals)
        if image not in self._statuses:
            try:
                ann = self.autosaver.latest(self.expert, image) or self.project.load(self.expert, image)
            except StoreError:
                self._statuses[image] = PhotoStatus("unreadable")
            else:
                self._statuses[image] = (self._status_of(ann, self._load_proposals(image)) if ann
                                         else PhotoStatus("not started", unlabeled=len(self._load_proposals(image))))
        return self._statuses[image]

    def forget_status(self, image: str) -> None:
        """Its files changed behind the controller's back (a background job): re-read later."""
        self._statuses.pop(image, None)

    def _status_of(self, ann: ImageAnnotation, proposals: tuple[Cell, ...]) -> PhotoStatus:
        unlabeled = sum(1 for c in ann.cells if not c.label and not c.rejected)
        unlabeled += len(unhandled_proposals(proposals, ann.cells))
        state = "done" if ann.status.done else ("in progress" if ann.cells else "not started")
        return PhotoStatus(state, len(ann.cells), unlabeled, ann.labeled_count())

    def progress_text(self) -> str:
        """"photos done 37 / 120 · cells labeled 812" for this expert (reads each file once)."""
        statuses = [self.photo_status(image) for image in self.images]
        done = sum(s.state == "done" for s in statuses)
        labeled = sum(s.labeled for s in statuses)
        return f"photos done {done} / {len(self.images)} · cells labeled {labeled}"

    # -- what is on the photo --------------------------------------------------------------
    def cells(self) -> tuple[Cell, ...]:
        return self.annotation.cells if self.annotation else ()

    def open_proposals(self) -> list[Cell]:
        """Detector cells the expert has not handled yet: not accepted, labeled or rejected,
        and not already covered by a box of the expert's own (IoU ≥ 0.5, FORMAT.md matching).
        None while the photo or its file cannot be used: they could not be accepted."""
        if self.problem is not None:
            return []
        return unhandled_proposals(self.proposals, self.cells())

    def reload_proposals(self) -> None:
        """The detector wrote new proposals for the current photo (a background job)."""
        if self.image is not None:
            self.proposals = self._load_proposals(self.image)
            if self.selected is None and self.advance_after_label and self.annotation is not None:
                self._select_first_unlabeled()  # digits label at once, as on a photo just opened
            self._notify("cells")

    def editable(self) -> bool:
        return self.annotation is not None

    def find(self, cell_id: str) -> tuple[Cell, bool] | None:
        """The cell with this id and whether it is still a proposal."""
        for cell in self.cells():
            if cell.id == cell_id:
                return cell, False
        for cell in self.open_proposals():
            if cell.id == cell_id:
                return cell, True
        return None

    def visible_cells(self) -> list[Cell]:
        return [c for c in self.cells() if not c.rejected] + self.open_proposals()

    # -- edits --------------------------------------------------------------------------
    def _commit(self, annotation: ImageAnnotation, selected: str | None, *, undoable: bool = True) -> None:
        assert self.annotation is not None
        if undoable:
            self._undo.append(_Snapshot(self.annotation, self.selected))
            self._redo.clear()
        kept = stale_masks_dropped(self.annotation.cells, annotation.cells)  # a moved box's mask no longer fits
        if kept is not None:
            annotation = annotation.with_cells(kept)
        self.annotation = self._with_time(annotation)
        self.selected = selected
        self.autosaver.changed(self.annotation)
        self._statuses.pop(self.annotation.image.path, None)
        self._notify("cells")

    def _with_time(self, annotation: ImageAnnotation) -> ImageAnnotation:
        now = self.clock()
        spent = 0 if self._last_activity is None else min(IDLE_CAP_SECONDS, now - self._last_activity)
        self._last_activity = now
        if spent < 1:
            return annotation
        status = replace(annotation.status, seconds_spent=annotation.status.seconds_spent + int(spent))
        return replace(annotation, status=status)

    def _account_time(self) -> None:
        self._last_activity = None

    def _size(self) -> tuple[int, int]:
        assert self.annotation is not None
        return self.annotation.image.width, self.annotation.image.height

    def add_cell(self, box: Box, label: str | None = None) -> Cell | None:
        if not self.editable():
            return None
        self.commit_chord()  # a new box is another cell: the class typed for the selected one stands
        w, h = self._size()
        cell = Cell.new(box.clipped(w, h), label, source=f"expert:{self.expert}")
        self._commit(self.annotation.with_cell(cell), cell.id)
        return cell

    def draw_box(self, x0: float, y0: float, x1: float, y1: float) -> Cell | None:
        """A drag on empty canvas outlines a new cell (too small a drag draws nothing)."""
        if not self.editable():
            return None
        box = geometry.box_from_drag(x0, y0, x1, y1, *self._size())
        return self.add_cell(box) if box else None

    def place_box(self, x: float, y: float) -> Cell | None:
        """A default-size box centred on the point (the Raabin 575 px crop)."""
        if not self.editable():
            return None
        return self.add_cell(geometry.placed_box(x, y, self.project.default_box_size, *self._size()))

    def select(self, cell_id: str | None) -> None:
        if cell_id != self.selected:
            if self.chord_parent is not None:  # the class typed for the cell being left stands,
                self.commit_chord()            # as after the pause: no keystroke silently lost
            self.selected = cell_id
            self._notify("selection")

    def select_at(self, x: float, y: float) -> str | None:
        cell = geometry.cell_at(self.visible_cells(), x, y)
        self.select(cell.id if cell else None)
        return self.selected

    def cycle(self, forward: bool = True) -> None:
        """Tab / Shift+Tab through the cells in reading order."""
        order = geometry.reading_order(self.visible_cells())
        if not order:
            return
        ids = [c.id for c in order]
        if self.selected not in ids:
            self.select(ids[0] if forward else ids[-1])
        else:
            step = 1 if forward else -1
            self.select(ids[(ids.index(self.selected) + step) % len(ids)])

    def _adopted(self, cell_id: str) -> tuple[ImageAnnotation, Cell] | None:
        """The annotation with the cell in it (a proposal is copied in first) and the cell."""
        found = self.find(cell_id)
        if found is None or self.annotation is None:
            return None
        cell, is_proposal = found
        if is_proposal:
            cell = replace(cell, source=cell.source or "detector", extra={})
            cell = cell.edited(created=cell.modified or cell.created)
        return self.annotation, cell

    # Drags: many motion events, one undo step.
    def begin_edit(self) -> None:
        if self.annotation is not None and self._edit_start is None:
            self._edit_start = _Snapshot(self.annotation, self.selected)

    def set_box(self, cell_id: str, box: Box) -> None:
        """Live update during a drag: no undo entry, no save until :meth:`end_edit`."""
        adopted = self._adopted(cell_id)
        if adopted is None:
            return
        annotation, cell = adopted
        self.annotation = annotation.with_cell(replace(cell, box=box))
        self._notify("drag")

    def end_edit(self) -> None:
        start, self._edit_start = self._edit_start, None
        if start is None or self.annotation is None or self.annotation is start.annotation:
            return
        changed = self.annotation
        before = {c.id: c.box for c in (*self.proposals, *start.annotation.cells)}
        if all(before.get(c.id) == c.box for c in changed.cells):
            self.annotation = start.annotation  # a click with a little jitter edits nothing
            self._notify("cells")
            return
        self.annotation = start.annotation
        stamped = changed.with_cells([c.edited() if c not in start.annotation.cells else c for c in changed.cells])
        self._commit(stamped, self.selected)

    def drag_move(self, cell_id: str, origin: Box, dx: float, dy: float) -> None:
        self.set_box(cell_id, geometry.moved(origin, round(dx), round(dy), *self._size()))

    def drag_resize(self, cell_id: str, origin: Box, handle: str, x: float, y: float) -> None:
        self.set_box(cell_id, geometry.resized(origin, handle, x, y, *self._size()))

    def nudge(self, dx: int, dy: int) -> None:
        adopted = self._selected_for_edit()
        if adopted is None:
            return
        annotation, cell = adopted
        box = geometry.moved(cell.box, dx, dy, *self._size())
        if box != cell.box:
            self._commit(annotation.with_cell(cell.edited(box=box)), cell.id)

    def _selected_for_edit(self) -> tuple[ImageAnnotation, Cell] | None:
        """The selected cell ready to edit (a proposal adopted first), or None."""
        if self.selected is None or not self.editable():
            return None
        return self._adopted(self.selected)

    def _cell_after(self, cell_id: str) -> str | None:
        """The cell that takes the selection when ``cell_id`` goes away (reading order)."""
        order = [c.id for c in geometry.reading_order(self.visible_cells())]
        return order[(order.index(cell_id) + 1) % len(order)] if len(order) > 1 else None

    def delete_selected(self) -> None:
        """Delete an expert's cell; on a proposal, Delete means reject (it is kept, marked)."""
        if self.selected is None or not self.editable():
            return
        self.drop_chord()  # the cell goes: a class key typed for it must not land on the next one
        found = self.find(self.selected)
        if found is None:
            return
        cell, is_proposal = found
        if is_proposal or (cell.source or "").startswith("detector"):
            self.reject_selected()
            return
        self._commit(self.annotation.without_cell(cell.id), self._cell_after(cell.id))

    def label_selected(self, path: str) -> None:
        self.taxonomy.get(path)  # an unknown label is refused before anything changes
        adopted = self._selected_for_edit()
        if adopted is None:
            return
        annotation, cell = adopted
        cell = cell.edited(label=path, rejected=False)
        self._commit(annotation.with_cell(cell), cell.id)
        if self.advance_after_label:
            self.select_next_unlabeled()

    def accept_selected(self) -> None:
        """`A`: take a proposal as it is (with the detector's label, if it gave one)."""
        if self.selected is None or not self.editable():
            return
        found = self.find(self.selected)
        if found is None or not found[1]:
            return
        annotation, cell = self._adopted(self.selected)
        self._commit(annotation.with_cell(cell), cell.id)

    def reject_selected(self) -> None:
        """`X`: a proposal that is not a cell; kept as rejected so agreement can count it.

        A class key typed just before is dropped: the expert changed their mind about this cell
        (it used to label the rejected cell when the selection moved on, undoing the reject)."""
        adopted = self._selected_for_edit()
        if adopted is None:
            return
        annotation, cell = adopted
        if not (cell.source or "").startswith("detector"):
            return
        self.drop_chord()
        if not self.advance_after_label:
            self._commit(annotation.with_cell(cell.edited(rejected=True, label=None)), self._cell_after(cell.id))
            return
        order = geometry.reading_order(self.visible_cells())
        self._commit(annotation.with_cell(cell.edited(rejected=True, label=None)), cell.id)
        self.select_next_unlabeled(order)  # like a label: on to the next cell still to do

    def replace_cell(self, cell: Cell) -> None:
        """Commit an edited copy of a cell (the nucleus panel's mask) as one undoable step.

        A proposal's copy enters the expert's file with the detector's id, like a label would.
        """
        if self.editable() and self.find(cell.id) is not None:
            self._commit(self.annotation.with_cell(cell), self.selected)

    def _select_first_unlabeled(self) -> None:
        for cell in geometry.reading_order(self.visible_cells()):
            found = self.find(cell.id)
            if found and (found[1] or not found[0].label):
                self.selected = cell.id
                return

    def select_next_unlabeled(self, order: list[Cell] | None = None) -> None:
        """The next cell still to label after the selected one (reading order, wrapping); no
        selection when none is left, so a label key typed ahead changes nothing.

        ``order``: the reading order from before an edit that hid the selected cell (a reject).
        """
        order = geometry.reading_order(self.visible_cells()) if order is None else order
        ids = [c.id for c in order]
        start = ids.index(self.selected) + 1 if self.selected in ids else 0
        for cell in order[start:] + order[:start]:
            found = self.find(cell.id)
            if found and (found[1] or not (found[0].label or found[0].rejected)):
                self.select(cell.id)
                return
        self.select(None)

    # -- label keys: a digit, then a second digit for a sub-type ------------------------------
    def label_key(self, key: str) -> str | None:
        """Feed one digit; returns the label applied, or None while a sub-type key may follow.

        After a top-level key whose class has sub-types the controller waits: a second digit
        picks the sub-type; :meth:`commit_chord` (Enter or the timeout) keeps the parent only.
        """
        if self.chord_parent is not None:
            parent = self.chord_parent
            child = self.taxonomy.by_hotkey(key, parent)
            self.chord_parent = None
            if child is not None:
                self.label_selected(child)
                return child
            before = self.selected
            self.label_selected(parent)  # a key that is no sub-type: the parent stands,
            if self.selected != before and self.taxonomy.by_hotkey(key):  # and the key labels the next cell
                return self.label_key(key)
            return parent
        path = self.taxonomy.by_hotkey(key)
        if path is None or self.selected is None:
            return None
        if self.taxonomy.get(path).children:
            self.chord_parent = path
            self._notify("status")
            return None
        self.label_selected(path)
        return path

    def drop_chord(self) -> None:
        """Forget a class key waiting for its sub-type (the expert went on to undo or reject)."""
        if self.chord_parent is not None:
            self.chord_parent = None
            self._notify("status")

    def commit_chord(self) -> str | None:
        parent, self.chord_parent = self.chord_parent, None
        if parent is not None:
            self.label_selected(parent)
        return parent

    # -- undo -----------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return bool(self._undo) or self.chord_parent is not None

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        """Undo the last edit; a class key still waiting for its sub-type is the last thing
        typed, so Ctrl+Z takes back only that (it used to label the cell undo went back to)."""
        if self.chord_parent is not None:
            self.drop_chord()
            return
        self._step(self._undo, self._redo)

    def redo(self) -> None:
        self.drop_chord()  # else it would land on the cell redo selects
        self._step(self._redo, self._undo)

    def _step(self, source: list[_Snapshot], target: list[_Snapshot]) -> None:
        if not source or self.annotation is None:
            return
        target.append(_Snapshot(self.annotation, self.selected))
        snap = source.pop()
        self.annotation, self.selected = snap.annotation, snap.selected
        self.autosaver.changed(self.annotation)
        self._notify("cells")

    # -- photo-level ----------------------------------------------------------------------
    def toggle_done(self) -> None:
        if self.annotation is None:
            return
        status = replace(self.annotation.status, done=not self.annotation.status.done)
        self._commit(replace(self.annotation, status=status), self.selected)

    def set_acquisition(self, acquisition: Acquisition, *, whole_folder: bool = False) -> int:
        """Set the photo's acquisition; with ``whole_folder`` the fields given (not blank) on
        every photo in its folder too.

        Returns how many photos changed. Other photos go through the autosaver too, starting
        from their unsaved version if they have one, so no pending edit is overwritten.
        """
        if self.annotation is None:
            return 0
        self._commit(replace(self.annotation, acquisition=acquisition), self.selected)
        changed = 1
        if whole_folder:  # the fields given; a field left blank keeps what each photo has
            given = {k: v for k, v in acquisition.to_dict().items() if v not in (None, "")}
            for image in self.images:
                if image == self.image or _folder(image) != _folder(self.image):
                    continue
                try:
                    ann = self._current_version(image)
                except FileProblem:
                    continue  # an unreadable file is never overwritten
                merged = Acquisition.from_dict({**ann.acquisition.to_dict(), **given})
                self.autosaver.changed(replace(ann, acquisition=merged))
                changed += 1
        return changed

    def label_counts(self) -> dict[str, int]:
        """Cells per label on this photo, parents counting their sub-types too."""
        counts: dict[str, int] = {}
        for cell in self.cells():
            if cell.label and not cell.rejected and cell.label in self.taxonomy:
                counts[cell.label] = counts.get(cell.label, 0) + 1
                parent = self.taxonomy.get(cell.label).parent
                if parent:
                    counts[parent] = counts.get(parent, 0) + 1
        return counts

    def close(self) -> str | None:
        """Save everything and give up the claim on this expert's files (Project.claim);
        returns an error text if something could not be saved."""
        error = self.autosaver.close()
        self.project.release(self.expert)
        return error
