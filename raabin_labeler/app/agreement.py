"""The agreement view's controller: filters, level, matrix, gallery, adjudication (issue 7). No Tk.

Threading: ``read_pairs`` and ``thumbnail`` read files and may run in a worker; everything else
is cheap and meant for the Tk thread. Typical use by the view:

    pairs, left_out = AgreementController.read_pairs(project, a, b, progress)   # in a worker
    ctl.set_images(pairs, left_out)                                              # on the Tk thread
    draw_heatmap(ctl.matrix, figure); ctl.figures.lines()
    row_col = ctl.cell_at(event.xdata, event.ydata); ctl.gallery(*row_col)
    session = ctl.start_adjudication("lead")
"""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from PIL import Image

from ..core.agreement import (
    LEVELS, AgreementFigures, AgreementSummary, CellPair, ConfusionMatrix, DoubleLabeledReport, PairedImage,
    PhotoFilter, ProgressFn, no_progress, agreement_figures, confusion_matrix, export_double_labeled,
    filter_choices, pair_experts, summarize, write_heatmap_png)
from ..core.consensus import AdjudicationSession, write_agreed
from ..core.imageio import crop_square, open_reduced
from ..core.project import CONSENSUS, DETECTOR, Project
from ..core.store import StoreError
from ..errors import UserError

THUMBNAIL = 128  # px, side of a gallery thumbnail


def default_experts(project: Project) -> list[str]:
    """Authors to compare, the project's listed experts first (the view's A and B default)."""
    authors = [a for a in project.authors() if a not in (DETECTOR, CONSENSUS)]
    return [e for e in project.experts if e in authors] + [e for e in authors if e not in project.experts]


class AgreementController:
    """What the agreement window shows for two experts, under the chosen filters and level."""

    def __init__(self, project: Project, expert_a: str, expert_b: str):
        self.project, self.expert_a, self.expert_b = project, expert_a, expert_b
        self.images: list[PairedImage] = []
        self.left_out: list[StoreError] = []  # files that could not be read: their photos are not counted
        self.filter = PhotoFilter()
        self.level = "leaf"
        self._matrices: dict[str, ConfusionMatrix] = {}
        self._photo_lock = threading.Lock()
        self._photo: tuple[str, float, Image.Image] | None = None  # last decoded photo, for thumbnails

    # -- data ------------------------------------------------------------------------------
    @staticmethod
    def read_pairs(project: Project, expert_a: str, expert_b: str,
                   progress: ProgressFn = no_progress) -> tuple[list[PairedImage], list[StoreError]]:
        """Read and pair both experts' files (slow part: run it off the Tk thread); the files
        that cannot be read come back beside the pairs, their photos left out."""
        left_out: list[StoreError] = []
        return pair_experts(project, expert_a, expert_b, progress=progress, left_out=left_out), left_out

    def load(self, progress: ProgressFn = no_progress) -> None:
        self.set_images(*self.read_pairs(self.project, self.expert_a, self.expert_b, progress))

    def set_images(self, images: list[PairedImage], left_out: list[StoreError] = ()) -> None:
        self.images = images
        self.left_out = list(left_out)
        self._matrices.clear()

    # -- filters and level -------------------------------------------------------------------
    def choices(self) -> dict[str, list[str]]:
        """Values for the smear / camera / microscope / folder drop-downs."""
        return filter_choices(self.images)

    def set_filter(self, **fields: str | None) -> None:
        """``set_filter(camera="Samsung Galaxy S5", smear=None)``; empty text means any."""
        self.filter = replace(self.filter, **{k: (v or None) for k, v in fields.items()})
        self._matrices.clear()

    def set_level(self, level: str) -> None:
        if level not in LEVELS:
            raise UserError(f"level {level!r}: use leaf or parent")
        self.level = level

    @property
    def visible_images(self) -> list[PairedImage]:
        return self.filter.apply(self.images)

    # -- what the window shows ----------------------------------------------------------------
    def matrix_at(self, level: str) -> ConfusionMatrix:
        if level not in self._matrices:
            self._matrices[level] = confusion_matrix(self.visible_images, self.project.taxonomy,
                                                     self.expert_a, self.expert_b, level)
        return self._matrices[level]

    @property
    def matrix(self) -> ConfusionMatrix:
        return self.matrix_at(self.level)

    @property
    def figures(self) -> AgreementFigures:
        return agreement_figures(self.matrix)

    def figures_at(self, level: str) -> AgreementFigures:
        return agreement_figures(self.matrix_at(level))

    def summary(self) -> AgreementSummary:
        return summarize(self.visible_images)

    def cell_at(self, xdata: float | None, ydata: float | None) -> tuple[int, int] | None:
        """The matrix cell (row, column) under a click on the heatmap, in data coordinates."""
        if xdata is None or ydata is None:
            return None
        row, col = int(round(ydata)), int(round(xdata))
        k = len(self.matrix.names)
        return (row, col) if 0 <= row < k and 0 <= col < k else None

    def gallery(self, row: int, col: int) -> list[CellPair]:
        """The cells counted in a matrix cell, in photo order (one thumbnail each)."""
        return self.matrix.pairs_at(row, col)

    def gallery_title(self, row: int, col: int) -> str:
        names = self.matrix.names
        return (f"{self.expert_a}: {names[row]} · {self.expert_b}: {names[col]} · "
                f"{int(self.matrix.counts[row, col])} cell(s)")

    def thumbnail(self, pair: CellPair, side: int = THUMBNAIL) -> Image.Image:
        """A ``side`` px square crop of the project's box size around the cell. Thread-safe.

        Decodes the photo at reduced size (JPEG draft) and keeps the last one, since a gallery's
        cells come photo by photo.
        """
        box_size = self.project.default_box_size
        with self._photo_lock:
            cached = self._photo
            if cached is None or cached[0] != pair.image:
                # decode at about twice the thumbnail's resolution; never above full size
                ref = next((p.ref for p in self.images if p.image == pair.image), None)
                longest = max(ref.width, ref.height) if ref else 10_000
                max_side = min(longest, max(256, int(longest * 2 * side / box_size)))
                photo, scale = open_reduced(self.project.image_path(pair.image), max_side, self.project.max_pixels)
                cached = self._photo = (pair.image, scale, photo)
        _, scale, photo = cached
        b = pair.box
        scaled = replace(b, x1=int(b.x1 * scale), y1=int(b.y1 * scale),
                         x2=max(int(b.x1 * scale) + 1, int(b.x2 * scale)),
                         y2=max(int(b.y1 * scale) + 1, int(b.y2 * scale)))
        crop = crop_square(photo, scaled, max(1, round(box_size * scale)))
        return Image.fromarray(crop).resize((side, side), Image.BILINEAR)

    @staticmethod
    def open_target(pair: CellPair) -> tuple[str, str]:
        """(photo, cell id) for "open the photo at that cell" in the labeling window."""
        return pair.image, pair.cell_id

    # -- adjudication and exports -------------------------------------------------------------
    def start_adjudication(self, lead: str, progress: ProgressFn = no_progress,
                           order: str = "photo") -> AdjudicationSession:
        """A session over the photos the filters show; writes the automatic "agreed" cells first."""
        return AdjudicationSession(self.project, self.visible_images, self.expert_a, self.expert_b,
                                   lead, progress=progress, order=order)

    def update_consensus(self, lead: str, progress: ProgressFn = no_progress) -> int:
        """Carry the cells the experts agree on into the consensus for the photos the filters
        show, as opening a session does, without one; returns how many photos' files changed."""
        if not lead or not lead.strip():
            raise UserError("say who updates the consensus: the lead's name is recorded with it")
        return write_agreed(self.project, self.visible_images, self.expert_a, self.expert_b, lead.strip(), progress)

    def write_csv(self, path: Path) -> None:
        self.matrix.write_csv(path)

    def write_png(self, path: Path) -> None:
        write_heatmap_png(self.matrix, path)

    def export_double_labeled(self, out: Path, progress: ProgressFn = no_progress) -> DoubleLabeledReport:
        return export_double_labeled(self.project, self.visible_images, out, progress)
