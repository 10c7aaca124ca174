"""Adjudication: the lead's final label for each cell the two experts disagree on (issue 7, item 5).

The consensus is an ordinary author (``annotations/consensus/<image>.json``, saved through
``Project.save``) so every export reads it (``export --who consensus``). Each consensus cell
says how it got there in extra keys:

- ``decision``: ``"agreed"`` (both experts gave this label; written automatically),
  ``"adjudicated"`` (the lead picked the label) or ``"sent_back"`` (the lead returned the cell
  to the experts; label empty);
- ``decided_by``, ``decided_at``: the lead's name and the UTC time;
- ``expert_labels`` / ``expert_cells``: each expert's label (null: not labeled or rejected) and
  cell id at the time, so a later change by the experts is visible.

Rules on re-opening: "agreed" cells follow the experts (re-derived each time, removed when the
experts no longer agree); "adjudicated" cells are final; a "sent_back" cell goes back into the
queue (or becomes "agreed") as soon as either expert's label differs from the one recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from ..errors import UserError
from .agreement import CellPair, PairedImage, ProgressFn, no_progress
from .annotation import Acquisition, Cell, ImageAnnotation, ImageRef, now_iso
from .project import CONSENSUS, Project, author_for
from .store import StoreError

AGREED, ADJUDICATED, SENT_BACK = "agreed", "adjudicated", "sent_back"
DECISIONS = (AGREED, ADJUDICATED, SENT_BACK)


def consensus_cell(pair: CellPair, label: str | None, decision: str, who: str, when: str,
                   expert_a: str, expert_b: str) -> Cell:
    """The consensus record of a pair: A's box (else B's) under A's cell id (else B's)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision {decision!r}: expected one of {DECISIONS}")
    extra = {"decision": decision, "decided_by": who, "decided_at": when,
             "expert_labels": {expert_a: pair.label_a, expert_b: pair.label_b},
             "expert_cells": {expert_a: pair.a.id if pair.a else None, expert_b: pair.b.id if pair.b else None}}
    return Cell(pair.cell_id, pair.box, label, f"consensus:{decision}", created=when, modified=when, extra=extra)


def decision_of(cell: Cell | None) -> str | None:
    return cell.extra.get("decision") if cell is not None else None


def for_export(project: Project, annotation: ImageAnnotation) -> ImageAnnotation:
    """The consensus as exports see it. A cell the lead sent back has no label yet: left out.
    A cell either expert's file marks as another's duplicate (``dedup`` run on the experts'
    cells, before or after the adjudication) is that duplicate here too, so exports leave it out
    like the experts' own (the consensus file itself never carries the mark).

    An "agreed" cell follows the experts (module doc) up to the export, not only up to the last
    adjudication session: it is exported with the label both experts give it now, and left out
    once they no longer agree (QA: an expert's later relabel was exported as "agreed"). An expert
    file that cannot be read changes nothing."""
    theirs: dict[str, dict[str, Cell] | None] = {}  # expert → their cells by id, read once per photo

    def record(expert: str, cell_id: object) -> tuple[bool, Cell | None]:
        """(whether the expert's file could be read, their current cell of that id)."""
        if expert not in theirs:
            try:
                found = project.load(expert, annotation.image.path)
            except (StoreError, UserError):
                found = None  # an unreadable or unknown expert file marks nothing
                theirs[expert] = None
            else:
                theirs[expert] = {c.id: c for c in found.cells} if found else {}
        cells = theirs[expert]
        if cells is None:
            return False, None
        return True, cells.get(cell_id) if isinstance(cell_id, str) else None

    def current_label(c: Cell | None) -> str | None:
        return None if c is None or c.rejected else c.label

    cells = []
    for cell in annotation.cells:
        if decision_of(cell) == SENT_BACK:
            continue
        experts = list((cell.extra.get("expert_cells") or {}).items())
        records = [record(e, c) for e, c in experts]
        duplicate_of = cell.duplicate_of or next(
            (r.duplicate_of for _, r in records if r is not None and r.duplicate_of), None)
        if decision_of(cell) == AGREED and len(records) == 2 and all(readable for readable, _ in records):
            labels = {current_label(r) for _, r in records}
            if len(labels) != 1 or None in labels:
                continue  # the experts disagree now: the lead has not decided this cell
            first = next(r for _, r in records if r is not None)
            cell = replace(cell, label=labels.pop(), box=first.box)
        cells.append(replace(cell, duplicate_of=duplicate_of))
    return annotation.with_cells(cells)


def still_valid(cell: Cell, pair: CellPair, expert_a: str, expert_b: str) -> bool:
    """Whether a lead's decision still stands for the experts' current labels (see module doc)."""
    decision = decision_of(cell)
    if decision == ADJUDICATED:
        return True
    if decision == SENT_BACK:
        return cell.extra.get("expert_labels") == {expert_a: pair.label_a, expert_b: pair.label_b}
    return False


@dataclass(frozen=True)
class AdjudicationItem:
    """A cell the experts disagree on (or only one labeled), waiting for the lead."""

    pair: CellPair
    ref: ImageRef
    acquisition: Acquisition

    @property
    def image(self) -> str:
        return self.pair.image

    @property
    def cell_id(self) -> str:
        return self.pair.cell_id

    @property
    def one_expert_only(self) -> bool:
        return self.pair.label_a is None or self.pair.label_b is None


class _ConsensusFiles:
    """The consensus annotations, loaded once per photo and saved on every change."""

    def __init__(self, project: Project):
        self.project = project
        self._cache: dict[str, ImageAnnotation | None] = {}
        self._by_id: dict[str, dict[str, Cell]] = {}

    def get(self, image: str) -> ImageAnnotation | None:
        if image not in self._cache:
            self._remember(image, self.project.load(CONSENSUS, image))
        return self._cache[image]

    def _remember(self, image: str, annotation: ImageAnnotation | None) -> None:
        self._cache[image] = annotation
        self._by_id[image] = {c.id: c for c in annotation.cells} if annotation else {}

    def cell(self, image: str, cell_id: str) -> Cell | None:
        self.get(image)
        return self._by_id[image].get(cell_id)

    def put(self, image: str, ref: ImageRef, acquisition: Acquisition, cells: Sequence[Cell]) -> None:
        annotation = self.get(image) or replace(ImageAnnotation.empty(ref, author_for(CONSENSUS)),
                                                acquisition=acquisition)
        annotation = annotation.with_cells(cells)
        self.project.save(annotation)
        self._remember(image, annotation)

    def set_cell(self, item: AdjudicationItem, cell: Cell | None) -> None:
        current = self.get(item.image)
        cells = [c for c in (current.cells if current else ()) if c.id != item.cell_id]
        if cell is not None:
            cells.append(cell)
        self.put(item.image, item.ref, item.acquisition, cells)


def _pair_for(cell: Cell, pair_of: dict[str, CellPair], pairs: Sequence[CellPair], expert_a: str,
              expert_b: str, taken: set[str]) -> CellPair | None:
    """The labeled pair a consensus cell was decided for: by its id, else by the expert cell ids
    it recorded (a pair's id is A's cell id, else B's, so it changes when A draws a cell only B
    had). None when the cell's experts no longer have it, or its pair's id is another cell's."""
    pair = pair_of.get(cell.id)
    if pair is not None:
        return pair
    recorded = cell.extra.get("expert_cells")
    if not isinstance(recorded, dict):
        return None
    for p in pairs:
        if p.labeled and p.cell_id not in taken and any(
                rec is not None and recorded.get(expert) == rec.id for expert, rec in ((expert_a, p.a), (expert_b, p.b))):
            return p
    return None


def write_agreed(project: Project, images: Sequence[PairedImage], expert_a: str, expert_b: str, lead: str,
                 progress: ProgressFn = no_progress, clock: Callable[[], str] = now_iso,
                 files: _ConsensusFiles | None = None) -> int:
    """Bring the automatic "agreed" cells up to date; returns how many photos' files changed.

    Lead decisions that still stand are kept, as are cells someone added by hand (no
    ``decision``); a file is only rewritten when its content changes.
    """
    files = files or _ConsensusFiles(project)
    changed = 0
    for i, paired in enumerate(images):
        progress("consensus", i, len(images), paired.image)
        current = files.get(paired.image)
        old = {c.id: c for c in current.cells} if current else {}
        pair_of = {p.cell_id: p for p in paired.pairs if p.labeled}
        taken = set(old)  # consensus cell ids in use: a moved decision never takes another's
        cells: list[Cell] = []
        for cell in old.values():  # keep the lead's standing decisions and hand-made cells
            decision = decision_of(cell)
            pair = _pair_for(cell, pair_of, paired.pairs, expert_a, expert_b, taken)
            if pair is not None and pair.cell_id != cell.id:
                # decided when only B had the cell; A has drawn it since, so the pair now goes
                # by A's id: the decision moves with it, else the cell is exported twice (QA)
                cell = replace(cell, id=pair.cell_id, box=pair.box)
                taken.add(pair.cell_id)
            if decision is None or (decision != AGREED and pair is not None
                                    and still_valid(cell, pair, expert_a, expert_b)):
                cells.append(cell)
            elif decision == ADJUDICATED:  # the pair vanished (a box deleted): the decision stays
                cells.append(cell)
        kept = {c.id for c in cells}
        for pair in paired.pairs:
            if not pair.agreed or pair.cell_id in kept:
                continue
            previous = old.get(pair.cell_id)
            if (previous is not None and decision_of(previous) == AGREED and previous.label == pair.label_a
                    and previous.box == pair.box):
                cells.append(previous)  # unchanged: keep its original time stamp
            else:
                cells.append(consensus_cell(pair, pair.label_a, AGREED, lead, clock(), expert_a, expert_b))
        if current is None and not cells:
            continue
        # the same cells in another order are no change (agreed cells are re-listed after the
        # lead's decisions): rewriting would only touch the file, and every reader's cache of it
        if current is None or {c.id: c for c in current.cells} != {c.id: c for c in cells}:
            files.put(paired.image, paired.ref, paired.acquisition, cells)
            changed += 1
    progress("consensus", len(images), len(images), "")
    return changed


#: "photo": photo by photo, as the files come; "disagreement": the same pair of labels in a row,
#: the most frequent confusion first, so the lead compares like with like (Band vs Meta, …)
QUEUE_ORDERS = ("photo", "disagreement")


def by_disagreement(items: Sequence[AdjudicationItem]) -> list[AdjudicationItem]:
    """Items grouped by (A's label, B's label), largest group first, photo order within."""
    groups: dict[tuple[str, str], list[AdjudicationItem]] = {}
    for item in items:
        groups.setdefault((item.pair.label_a or "", item.pair.label_b or ""), []).append(item)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [item for _, group in ordered for item in group]


class AdjudicationSession:
    """The lead's queue of disagreements: decide, send back, undo; each step saved at once.

    ``current`` is the item on screen; ``decide`` and ``send_back`` record a decision for it and
    move to the next undecided item; ``undo`` restores the consensus cell as it was and returns
    to that item. Opening a session writes the automatic "agreed" cells first.
    """

    def __init__(self, project: Project, images: Sequence[PairedImage], expert_a: str, expert_b: str,
                 lead: str, clock: Callable[[], str] = now_iso, progress: ProgressFn = no_progress,
                 order: str = "photo"):
        if not lead or not lead.strip():
            raise UserError("say who adjudicates: the lead's name is recorded with every decision")
        if order not in QUEUE_ORDERS:
            raise UserError(f"queue order {order!r}: use one of {', '.join(QUEUE_ORDERS)}")
        self.project, self.expert_a, self.expert_b = project, expert_a, expert_b
        self.lead, self.clock = lead.strip(), clock
        self._files = _ConsensusFiles(project)
        write_agreed(project, images, expert_a, expert_b, self.lead, progress, clock, self._files)
        self.items: list[AdjudicationItem] = [
            AdjudicationItem(pair, paired.ref, paired.acquisition)
            for paired in images for pair in paired.pairs if pair.labeled and not pair.agreed]
        if order == "disagreement":
            self.items = by_disagreement(self.items)
        self._undo: list[tuple[int, Cell | None]] = []
        self.index = self._next_open(0)

    # -- state ----------------------------------------------------------------------------
    def decision(self, index: int) -> Cell | None:
        """The standing consensus cell of item ``index``, None while it is undecided."""
        item = self.items[index]
        cell = self._files.cell(item.image, item.cell_id)
        return cell if cell is not None and still_valid(cell, item.pair, self.expert_a, self.expert_b) else None

    def is_decided(self, index: int) -> bool:
        return self.decision(index) is not None

    @property
    def current(self) -> AdjudicationItem | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    @property
    def decided(self) -> int:
        return sum(self.is_decided(i) for i in range(len(self.items)))

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def finished(self) -> bool:
        return self.decided == self.total

    def progress_text(self) -> str:
        return f"decided {self.decided} / {self.total}"

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    # -- navigation ------------------------------------------------------------------------
    def _next_open(self, start: int) -> int:
        """The first undecided item from ``start`` on (wrapping); len(items) when none is left."""
        n = len(self.items)
        for k in range(n):
            i = (start + k) % n
            if not self.is_decided(i):
                return i
        return n

    def select(self, index: int) -> AdjudicationItem:
        if not 0 <= index < len(self.items):
            raise IndexError(index)
        self.index = index
        return self.items[index]

    # -- decisions ---------------------------------------------------------------------------
    def decide(self, label: str) -> None:
        """The lead's final label for the current item (any label of the taxonomy)."""
        if label not in self.project.taxonomy:
            raise UserError(f"label {label!r} is not in the project's taxonomy")
        self._record(label, ADJUDICATED)

    def send_back(self) -> None:
        """Return the current cell to the experts; it comes back when their labels change."""
        self._record(None, SENT_BACK)

    def _record(self, label: str | None, decision: str) -> None:
        item = self.current
        if item is None:
            raise UserError("nothing to decide: every disagreement has a decision")
        previous = self._files.cell(item.image, item.cell_id)
        cell = consensus_cell(item.pair, label, decision, self.lead, self.clock(), self.expert_a, self.expert_b)
        self._files.set_cell(item, cell)
        self._undo.append((self.index, previous))
        self.index = self._next_open(self.index + 1)

    def undo(self) -> AdjudicationItem | None:
        """Take back the last decision; returns the item it concerned (now current again)."""
        if not self._undo:
            return None
        index, previous = self._undo.pop()
        self._files.set_cell(self.items[index], previous)
        self.index = index
        return self.items[index]
