"""The duplicate-cell review (issue 5, item 5): groups as marked in the files, and the lead's decisions.

A group is one kept cell and the cells marked ``duplicate_of`` it. The reviewer confirms a group,
splits a member off ("not the same cell") or makes a member the keeper; each decision is written
to the author's files at once (``duplicate_decision``, which a later search respects) and can be
undone. Undo puts back only the duplicate fields of the cells it changed (``duplicate_of``,
``duplicate_decision``, ``duplicate_evidence``), so a label given meanwhile in the labeling window
is not lost.

Where the files are read and written is an :class:`Annotations` adapter: plain project files, or
:class:`LabelingAnnotations` when the labeling window is open, so the window's unsaved version
of a photo and its autosave never overwrite a decision (and a decision never overwrites them).

Threading: :func:`read_marks` and :func:`search_job`'s work read files and may run in a
worker; :meth:`DedupReviewController.crop` is thread-safe; everything else is for one thread
(the Tk thread in the window).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import numpy as np
from PIL import Image

from ..core import dedup
from ..core.annotation import Box, Cell, ImageAnnotation
from ..core.imageio import crop_square, open_image, open_reduced
from ..core.jobs import Job, Progress, Runner, SyncRunner
from ..core.project import DETECTOR, Project
from ..core.project_dedup import (CONFIRMED, DECISION, EVIDENCE, NOT_DUPLICATE, ProjectDuplicates, cell_ref,
                                  find_project_duplicates, groups_in, mark_duplicates, split_ref)
from ..core.store import StoreError
from ..errors import UserError

THUMBNAIL = 150  # px, side of a crop in the review list


class Annotations(Protocol):
    """Where the review reads and writes one author's annotation of one photo."""

    def load(self, author: str, image: str) -> ImageAnnotation | None: ...

    def save(self, annotation: ImageAnnotation) -> None: ...

    def settle(self) -> None:
        """Make the files on disk current (before a search reads them and marks them)."""

    def files_changed(self, author: str, images: list[str]) -> None:
        """The search wrote these files directly: take their new content in."""


class ProjectAnnotations:
    """The project's files, nothing in between (the CLI, tests, no labeling window)."""

    def __init__(self, project: Project):
        self.project = project

    def load(self, author: str, image: str) -> ImageAnnotation | None:
        return self.project.load(author, image)

    def save(self, annotation: ImageAnnotation) -> None:
        self.project.save(annotation)

    def settle(self) -> None:
        pass

    def files_changed(self, author: str, images: list[str]) -> None:
        pass


class LabelingAnnotations(ProjectAnnotations):
    """Files of the expert open in the labeling window go through its controller (Tk thread only).

    The current photo is edited with ``replace_cell`` (one undo step each in the window, saved by
    its autosaver), so the window's in-memory photo never goes stale and overwrites a decision on
    its next autosave. Other photos of that expert go to the autosaver (``changed``), starting
    from its unsaved version, as ``set_acquisition`` does. Other authors' files are written
    directly (other windows and the agreement view read them from disk); the detector's current
    photo is re-read as proposals.
    """

    def __init__(self, labeling):
        super().__init__(labeling.project)
        self.labeling = labeling

    def _is_current(self, author: str, image: str) -> bool:
        c = self.labeling
        return author == c.expert and image == c.image and c.annotation is not None

    def load(self, author: str, image: str) -> ImageAnnotation | None:
        c = self.labeling
        if self._is_current(author, image):
            return c.annotation
        if author == c.expert:
            pending = c.autosaver.latest(author, image)
            if pending is not None:
                return pending
        return self.project.load(author, image)

    def save(self, annotation: ImageAnnotation) -> None:
        c, author, image = self.labeling, annotation.author.id, annotation.image.path
        if self._is_current(author, image):
            self._replace_changed(annotation)
        elif author == c.expert:
            c.autosaver.changed(annotation)
            c.forget_status(image)
        else:
            self.project.save(annotation)
            self._detector_changed(author, image)

    def _replace_changed(self, annotation: ImageAnnotation) -> None:
        c = self.labeling
        now = {cell.id: cell for cell in c.cells()}
        for cell in annotation.cells:
            if now.get(cell.id) != cell:
                c.replace_cell(cell)

    def _detector_changed(self, author: str, image: str) -> None:
        if author == DETECTOR:
            self.labeling.forget_status(image)
            if image == self.labeling.image:
                self.labeling.reload_proposals()

    def settle(self) -> None:
        error = self.labeling.autosaver.flush()
        if error:
            raise UserError(f"the labeling window could not save its changes first: {error}")

    def files_changed(self, author: str, images: list[str]) -> None:
        c = self.labeling
        for image in images:
            if self._is_current(author, image):
                written = self.project.load(author, image)
                if written is not None:
                    self._replace_changed(written)
            if author == c.expert:
                c.forget_status(image)
            else:
                self._detector_changed(author, image)


@dataclass(frozen=True)
class Member:
    """One cell of a group as the review shows it."""

    ref: str
    image: str
    cell_id: str
    box: Box | None  # None: the file or the cell is gone
    evidence: dict = field(default_factory=dict)  # distances to the keeper, as the search left them
    decision: str | None = None


@dataclass(frozen=True)
class ReviewGroup:
    keeper: Member
    members: tuple[Member, ...]

    @property
    def refs(self) -> list[str]:
        return [self.keeper.ref, *(m.ref for m in self.members)]

    @property
    def confirmed(self) -> bool:
        return all(m.decision == CONFIRMED for m in self.members)


@dataclass(frozen=True)
class Marks:
    """What the review lists, read from the files in one go (safe to build in a worker).

    ``photos`` holds the cells of every photo with a marked cell or a kept one, in the project's
    order: a decision regroups from them and the photos it wrote, without reading every file.
    """

    groups: list[ReviewGroup]
    redundant_photos: list[str]
    photos: dict[str, tuple[Cell, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _DuplicateFields:
    """The part of a cell the review edits; undo puts exactly this back."""

    duplicate_of: str | None
    decision: str | None
    evidence: dict | None

    @classmethod
    def of(cls, cell: Cell) -> "_DuplicateFields":
        return cls(cell.duplicate_of, cell.extra.get(DECISION), cell.extra.get(EVIDENCE))

    def applied(self, cell: Cell) -> Cell:
        extra = {k: v for k, v in cell.extra.items() if k not in (DECISION, EVIDENCE)}
        if self.decision is not None:
            extra[DECISION] = self.decision
        if self.evidence is not None:
            extra[EVIDENCE] = self.evidence
        return replace(cell, duplicate_of=self.duplicate_of, extra=extra)


def read_marks(project: Project, author: str) -> Marks:
    """The groups marked in the author's files (as :func:`marked_groups` finds them), with boxes,
    evidence and decisions of their cells, and the photos that are redundant.

    Only photos holding a marked or kept cell count: no other photo can be redundant.
    """
    photos = {image: annotation.cells for image, annotation, _ in project.iter_annotations(author) if annotation}
    marked = {split_ref(cell.duplicate_of)[0] for cells in photos.values() for cell in cells if cell.duplicate_of}
    marked |= {image for image, cells in photos.items() if any(cell.duplicate_of for cell in cells)}
    return group_marks({image: cells for image, cells in photos.items() if image in marked})


def group_marks(photos: dict[str, tuple[Cell, ...]], previous: Marks | None = None,
                changed: frozenset[str] = frozenset()) -> Marks:
    """The groups of ``photos`` (image -> its cells, in the project's order).

    With ``previous``, a group that a decision left as it was (checked only where one of its
    cells is on a ``changed`` photo) is the previous object itself, so a view redraws only the
    groups the decision changed.
    """
    cells = {cell_ref(image, cell.id): cell for image, image_cells in photos.items() for cell in image_cells}
    photo_cells = {image: [cell_ref(image, c.id) for c in image_cells if not c.rejected]
                   for image, image_cells in photos.items()}
    keepers = groups_in(photos.items())

    before = {g.keeper.ref: g for g in previous.groups} if previous else {}
    shown = {m.ref: m for g in before.values() for m in (g.keeper, *g.members)}

    def member(ref: str) -> Member:
        image, cell_id = split_ref(ref)
        if image not in changed and ref in shown:
            return shown[ref]
        cell = cells.get(ref)
        if cell is None:
            return Member(ref, image, cell_id, None)
        return Member(ref, image, cell_id, cell.box, dict(cell.extra.get(EVIDENCE) or {}), cell.extra.get(DECISION))

    groups = []
    for keep, drop in keepers:
        old = before.get(keep)
        if old is not None and [m.ref for m in old.members] == drop and \
                not any(split_ref(ref)[0] in changed for ref in (keep, *drop)):
            groups.append(old)
            continue
        group = ReviewGroup(member(keep), tuple(member(ref) for ref in drop))
        groups.append(old if group == old else group)  # its photo changed, the group did not
    groups.sort(key=lambda g: min(g.refs))  # a group keeps its place in the list when its keeper changes
    if previous:
        groups = _in_previous_order(groups, previous.groups)
    dropped = {ref: keep for keep, drop in keepers for ref in drop}
    return Marks(groups, dedup.redundant_photos(photo_cells, dropped), dict(photos))


def _in_previous_order(groups: list[ReviewGroup], previous: list[ReviewGroup]) -> list[ReviewGroup]:
    """A group that shares a cell with a group shown before takes that group's place (a split
    member that was the group's first cell no longer sends it down the list); a group back after
    an undo goes after the group before it in the usual order."""
    place = {ref: i for i, g in enumerate(previous) for ref in g.refs}
    keys, last = [], -1.0
    for group in groups:
        found = next((place[ref] for ref in group.refs if ref in place), None)
        last = float(found) if found is not None else last + 1e-6
        keys.append(last)
    return [g for _, _, g in sorted(zip(keys, range(len(groups)), groups), key=lambda item: item[:2])]


def search_job(project: Project, author: str, mode: dedup.Mode, runner: Runner | None = None) -> Job:
    """The project-wide search as a background :class:`Job` of one item; writes nothing.

    It decodes every photo, compares the photos (robust mode) and hashes every crop (slow);
    photos compared and crops hashed arrive as Progress events.

    Its one ``ItemDone`` carries the :class:`ProjectDuplicates`; apply it with
    :meth:`DedupReviewController.apply_search` on the thread that owns the files.
    """
    job = Job(f"Find duplicates ({mode})", lambda who: find_project_duplicates(
        project, who, mode=mode, runner=runner,
        progress=lambda done, total: job.events.put(Progress(job.name, done, total, "crops hashed")),
        fields_progress=lambda done, total: job.events.put(Progress(job.name, done, total, "photos compared"))),
        [author], runner=SyncRunner(), describe=lambda who: f"{who}'s cells")
    return job


class DedupReviewController:
    """One author's duplicate groups under review; decisions are saved at once and undoable."""

    def __init__(self, project: Project, author: str, annotations: Annotations | None = None):
        self.project = project
        self.author = author
        self.annotations = annotations or ProjectAnnotations(project)
        self.groups: list[ReviewGroup] = []
        self.redundant_photos: list[str] = []
        self._marks: Marks | None = None
        #: Sharpness per cell ref from the last search in this session (files keep no sharpness).
        self.sharpness: dict[str, float] = {}
        self._undo: list[list[tuple[str, _DuplicateFields]]] = []
        self._photo_lock = threading.Lock()
        self._photo: tuple[str, bool, float, Image.Image] | None = None  # last decoded photo

    # -- reading ----------------------------------------------------------------------------
    def read(self) -> Marks:
        """Read the marks from the files (may run in a worker; call ``settle`` first)."""
        return read_marks(self.project, self.author)

    def show(self, marks: Marks) -> None:
        self._marks = marks
        self.groups, self.redundant_photos = marks.groups, marks.redundant_photos

    def reload(self) -> None:
        self.annotations.settle()
        self.show(self.read())

    def group_of(self, ref: str) -> ReviewGroup | None:
        return next((g for g in self.groups if ref in g.refs), None)

    # -- the search ----------------------------------------------------------------------------
    def apply_search(self, found: ProjectDuplicates) -> int:
        """Mark what a search found (decisions already taken stand); returns cells changed.

        Runs on the thread that owns the files: pending labeling edits are saved first and the
        labeling window takes the new marks in, so neither overwrites the other.
        """
        self.annotations.settle()
        changed = mark_duplicates(self.project, self.author, found)
        self.annotations.files_changed(self.author, self.project.images())
        self.sharpness.update({ref: s for g in found.groups
                               for ref, s in g.evidence.get("sharpness", {}).items()})
        self.reload()
        return changed

    # -- decisions ----------------------------------------------------------------------------
    def confirm(self, group: ReviewGroup) -> None:
        """The group is right: every cell of it, the keeper too, is ``confirmed``.

        The keeper is confirmed as well, so a later search cannot mark it a duplicate of
        another cell and leave its members pointing at a dropped cell.
        """
        self._change({ref: self._fields(ref, lambda f: replace(f, decision=CONFIRMED)) for ref in group.refs})

    def split(self, group: ReviewGroup, member: Member) -> None:
        """"Not the same cell": the member stays in the data; a later search leaves it alone."""
        self._change({member.ref: _DuplicateFields(None, NOT_DUPLICATE, None)})

    def swap_keeper(self, group: ReviewGroup, member: Member) -> None:
        """Keep ``member`` instead of the keeper; the old keeper and the others now duplicate it.

        The old keeper takes the member's evidence (distances are symmetric); the others' evidence
        was measured against the old keeper, so it is dropped rather than shown as if it were new.
        """
        new = member.ref
        changes = {new: _DuplicateFields(None, CONFIRMED, None),
                   group.keeper.ref: _DuplicateFields(new, CONFIRMED, member.evidence or None)}
        for other in group.members:
            if other.ref != new:
                changes[other.ref] = _DuplicateFields(new, CONFIRMED, None)
        self._change(changes)

    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> None:
        """Put back the duplicate fields the last decision changed."""
        if self._undo:
            written = self._write(dict(self._undo[-1]))[1]  # a vanished cell raises here and keeps the step
            self._undo.pop()
            self._regroup(written)

    def _fields(self, ref: str, change: Callable[[_DuplicateFields], _DuplicateFields]) -> _DuplicateFields:
        return change(_DuplicateFields.of(self._current_cell(ref)))

    def _current_cell(self, ref: str) -> Cell:
        image, cell_id = split_ref(ref)
        annotation = self.annotations.load(self.author, image)
        try:
            if annotation is not None:
                return annotation.cell(cell_id)
        except KeyError:
            pass
        raise UserError(f"cell {cell_id} is no longer on {image} ({self.author}); reload the list")

    def _change(self, changes: dict[str, _DuplicateFields]) -> None:
        before, written = self._write(changes)
        if before:
            self._undo.append(before)
        self._regroup(written)

    def _regroup(self, written: list[ImageAnnotation]) -> None:
        """Regroup from the marks shown and the photos just written: reading every file again
        took up to 0.2 s a decision on a real project (QA, BCCD)."""
        if self._marks is None:
            self.reload()
            return
        photos = dict(self._marks.photos)
        held = len(photos)
        photos.update((a.image.path, a.cells) for a in written)
        for image in {split_ref(c.duplicate_of)[0] for a in written for c in a.cells if c.duplicate_of} - set(photos):
            try:  # an undo that marks again, after a new search
                kept = self.annotations.load(self.author, image)
            except StoreError:
                continue  # shown as a missing cell, as read_marks does
            if kept is not None:
                photos[image] = kept.cells
        if len(photos) > held:  # members stay in the project's order, as read_marks lists them
            order = {image: i for i, image in enumerate(self.project.images())}
            photos = dict(sorted(photos.items(), key=lambda item: order.get(item[0], len(order))))
        self.show(group_marks(photos, self._marks, frozenset(a.image.path for a in written)))

    def _write(self, changes: dict[str, _DuplicateFields]) -> tuple[list[tuple[str, _DuplicateFields]],
                                                                    list[ImageAnnotation]]:
        """Apply per photo, one save each; returns the previous fields of the cells that changed
        and the annotations saved.

        Every cell is checked before anything is written, so a vanished cell changes nothing.
        """
        by_image: dict[str, list[str]] = {}
        for ref in changes:
            self._current_cell(ref)
            by_image.setdefault(split_ref(ref)[0], []).append(ref)
        before: list[tuple[str, _DuplicateFields]] = []
        written: list[ImageAnnotation] = []
        for image, refs in by_image.items():
            annotation = self.annotations.load(self.author, image)
            assert annotation is not None
            cells = []
            for cell in annotation.cells:
                ref = cell_ref(image, cell.id)
                if ref in changes and _DuplicateFields.of(cell) != changes[ref]:
                    before.append((ref, _DuplicateFields.of(cell)))
                    cell = changes[ref].applied(cell)
                cells.append(cell)
            if cells != list(annotation.cells):
                written.append(annotation.with_cells(cells))
                self.annotations.save(written[-1])
        return before, written

    # -- crops ------------------------------------------------------------------------------
    def crop(self, member: Member, side: int = THUMBNAIL) -> tuple[Image.Image, float | None]:
        """The member's crop as the search cut it (square, the box's longer side), ``side`` px,
        and its sharpness (mean Sobel magnitude, as the search measures it). Thread-safe.

        Sharpness needs the full-resolution crop; when the last search already measured it, the
        photo is decoded at reduced size instead (JPEG draft), several times faster.
        """
        if member.box is None:
            raise UserError(f"{member.ref}: the cell is no longer in {self.author}'s file")
        b, known = member.box, self.sharpness.get(member.ref)
        full = known is None
        with self._photo_lock:
            cached = self._photo
            if cached is None or cached[0] != member.image or (full and not cached[1]):
                path = self.project.image_path(member.image)
                if full:
                    photo, scale = open_image(path, self.project.max_pixels), 1.0
                else:
                    ref = self.project.image_ref(member.image)
                    longest = max(ref.width, ref.height)
                    max_side = min(longest, max(256, int(longest * 2 * side / max(b.width, b.height))))
                    photo, scale = open_reduced(path, max_side, self.project.max_pixels)
                cached = self._photo = (member.image, full, scale, photo)
        _, _, scale, photo = cached
        scaled = Box(int(b.x1 * scale), int(b.y1 * scale), max(int(b.x1 * scale) + 1, int(b.x2 * scale)),
                     max(int(b.y1 * scale) + 1, int(b.y2 * scale)))
        pixels = crop_square(photo, scaled)
        if full:
            known = dedup.sharpness(np.asarray(Image.fromarray(pixels).convert("L")))
        return Image.fromarray(pixels).resize((side, side), Image.BILINEAR), known


def default_author(project: Project, expert: str | None) -> str:
    """Whose marks the review opens on (reads files; run it off the Tk thread).

    The labeling window's expert if they have marks; else the first author who has any (a lead
    who ran ``dedup --who expert-a`` sees expert-a's groups, not "detector: no duplicates
    marked"); else the detector, where the window's search marks by default.
    """
    authors = project.authors()
    if expert and expert in authors and _has_marks(project, expert):
        return expert
    return next((a for a in authors if a != expert and _has_marks(project, a)), DETECTOR)


def _has_marks(project: Project, author: str) -> bool:
    """Whether any cell of the author is marked a duplicate; stops at the first one."""
    return any(cell.duplicate_of for _, annotation, _ in project.iter_annotations(author)
               for cell in (annotation.cells if annotation else ()))
