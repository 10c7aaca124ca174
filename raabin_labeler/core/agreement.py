"""Two experts' labels of the same cells: matching, the Table 4 confusion matrix, kappa (issue 7).

Matching, per photo: cells with the same id are the same cell (detector proposals and imported
Raabin cells share ids); the rest are paired one-to-one by box overlap, maximising the total IoU
over pairs with IoU ≥ 0.5 (``scipy.optimize.linear_sum_assignment``). A cell only one expert has
counts as "Not labeled" for the other.

Decisions this module makes (documented for the report and the view):
- a proposal an expert *rejected* ("not a white cell") counts as "Not labeled" for that expert,
  so the matrix keeps the paper's shape; the pair remembers it (``CellPair.rejected_a/_b``) and
  ``AgreementSummary`` counts such pairs;
- pairs neither expert labeled (both unlabeled or rejected) are left out of the matrix: they say
  nothing about agreement and would inflate kappa;
- cells carrying an *extra* label (RBC, Platelets from an import) are ignored before matching;
- duplicates (``duplicate_of``) are counted like any cell: the experts did label them; only the
  double-labeled dataset leaves them out.
"""
from __future__ import annotations

import csv
import io
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from ..errors import UserError
from .annotation import Acquisition, Box, Cell, ImageAnnotation, ImageRef
from .crop_listing import remove_stale_crops
from .project import DETECTOR, Project
from .store import StoreError, atomic_write_text
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: ``progress(stage, done, total, item)``, as the importers and exporters use.
ProgressFn = Callable[[str, int, int, str], None]
MIN_IOU = 0.5
NOT_LABELED = "Not labeled"
NOT_RECOGNIZED_KEY = "not_recognized"
UNSURE = "{} (sub-type unsure)"
LEVELS = ("leaf", "parent")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile
TICK_PT = 8  # font size of the heatmap's class names


def no_progress(stage: str, done: int, total: int, item: str) -> None:
    """Report nothing."""


# ----------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class CellPair:
    """One cell as the two experts recorded it; ``a`` or ``b`` is None when that expert lacks it."""

    image: str
    a: Cell | None
    b: Cell | None
    matched_by: str  # "id", "iou", or "" when only one expert has the cell
    iou: float = 1.0

    @property
    def label_a(self) -> str | None:
        """Expert A's label, None for absent, unlabeled or rejected ("Not labeled")."""
        return None if self.a is None or self.a.rejected else self.a.label

    @property
    def label_b(self) -> str | None:
        return None if self.b is None or self.b.rejected else self.b.label

    @property
    def rejected_a(self) -> bool:
        return self.a is not None and self.a.rejected

    @property
    def rejected_b(self) -> bool:
        return self.b is not None and self.b.rejected

    @property
    def cell(self) -> Cell:
        """Expert A's record, else B's: the box used for crops, galleries and the consensus."""
        cell = self.a or self.b
        assert cell is not None
        return cell

    @property
    def cell_id(self) -> str:
        return self.cell.id

    @property
    def box(self) -> Box:
        return self.cell.box

    @property
    def labeled(self) -> bool:
        return self.label_a is not None or self.label_b is not None

    @property
    def agreed(self) -> bool:
        return self.label_a is not None and self.label_a == self.label_b


def iou_matrix(boxes_a: Sequence[Box], boxes_b: Sequence[Box]) -> np.ndarray:
    """IoU of every box of A against every box of B, vectorised (shape len(a) × len(b))."""
    if not boxes_a or not boxes_b:
        return np.zeros((len(boxes_a), len(boxes_b)))
    a = np.array([b.as_list() for b in boxes_a], dtype=np.float64)
    b = np.array([b.as_list() for b in boxes_b], dtype=np.float64)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def match_cells(image: str, cells_a: Sequence[Cell], cells_b: Sequence[Cell],
                min_iou: float = MIN_IOU) -> list[CellPair]:
    """Pair two experts' cells of one photo: by id first, then by maximum total IoU ≥ ``min_iou``.

    Pairs come in A's cell order, then B's unmatched cells; every cell appears exactly once.
    """
    b_by_id = {c.id: c for c in cells_b}
    pairs: list[CellPair | None] = []
    rest_a: list[int] = []
    used_b: set[str] = set()
    for cell in cells_a:
        other = b_by_id.get(cell.id)
        if other is not None:
            iou = 1.0 if cell.box == other.box else cell.box.iou(other.box)
            pairs.append(CellPair(image, cell, other, "id", iou))
            used_b.add(cell.id)
        else:
            rest_a.append(len(pairs))
            pairs.append(None)
    rest_b = [c for c in cells_b if c.id not in used_b]
    free_a = [cells_a[i] for i in range(len(cells_a)) if pairs[i] is None]
    matched_b: set[int] = set()
    if free_a and rest_b:
        from scipy.optimize import linear_sum_assignment  # ~1 s to import: only when needed

        ious = iou_matrix([c.box for c in free_a], [c.box for c in rest_b])
        # Edges below the threshold get weight 0, so the assignment maximises the total IoU of
        # eligible pairs only; zero-weight assignments are then discarded.
        weights = np.where(ious >= min_iou, ious, 0.0)
        rows, cols = linear_sum_assignment(weights, maximize=True)
        for r, c in zip(rows, cols):
            if weights[r, c] > 0:
                pairs[rest_a[r]] = CellPair(image, free_a[r], rest_b[c], "iou", float(ious[r, c]))
                matched_b.add(c)
    out = [p if p is not None else CellPair(image, cells_a[i], None, "", 0.0) for i, p in enumerate(pairs)]
    out += [CellPair(image, None, c, "", 0.0) for j, c in enumerate(rest_b) if j not in matched_b]
    return out


@dataclass(frozen=True)
class PairedImage:
    """One photo's pairs, with what the filters need (acquisition, folder)."""

    image: str
    ref: ImageRef
    acquisition: Acquisition
    pairs: tuple[CellPair, ...]

    @property
    def folder(self) -> str:
        parent = PurePosixPath(self.image).parent.as_posix()
        return "" if parent == "." else parent

    @cached_property
    def by_labels(self) -> dict[tuple[str | None, str | None], list[CellPair]]:
        """Labeled pairs grouped by (A's label, B's label): the matrix adds these up per photo."""
        groups: dict[tuple[str | None, str | None], list[CellPair]] = {}
        for pair in self.pairs:
            if pair.labeled:
                groups.setdefault((pair.label_a, pair.label_b), []).append(pair)
        return groups

    @cached_property
    def tally(self) -> tuple[int, ...]:
        """This photo's share of ``AgreementSummary`` (all fields but ``photos``, in order)."""
        pairs = self.pairs
        return (sum(p.matched_by == "id" for p in pairs), sum(p.matched_by == "iou" for p in pairs),
                sum(p.b is None for p in pairs), sum(p.a is None for p in pairs),
                sum(p.rejected_a and p.label_b is not None for p in pairs),
                sum(p.rejected_b and p.label_a is not None for p in pairs),
                sum(not p.labeled for p in pairs))


def _wbc_cells(annotation: ImageAnnotation | None, taxonomy: Taxonomy, path: Path) -> list[Cell]:
    """The cells agreement looks at: extra labels (RBC…) ignored; unknown labels are an error."""
    if annotation is None:
        return []
    out = []
    for cell in annotation.cells:
        if cell.label is not None and not cell.rejected:
            if cell.label not in taxonomy:
                raise StoreError(path, f"label {cell.label!r} is not in the project's taxonomy",
                                 f"cell {cell.id}")
            if taxonomy.get(cell.label).extra:
                continue
        out.append(cell)
    return out


#: per project: (A, B, photo) -> (A's annotation, B's, taxonomy, their pairs). The project hands
#: out the same immutable annotation object until its file changes, so an identity check says
#: whether the pairs are still right; reopening the agreement view then costs one stat per file.
_paired: "weakref.WeakKeyDictionary[Project, dict[tuple[str, str, str], tuple[object, object, object, PairedImage]]]" \
    = weakref.WeakKeyDictionary()


def pair_image(project: Project, expert_a: str, expert_b: str, image: str) -> PairedImage | None:
    """The photo's pairs, None when neither expert has a file for it."""
    ann_a, ann_b = project.load(expert_a, image), project.load(expert_b, image)
    if ann_a is None and ann_b is None:
        return None
    cache = _paired.setdefault(project, {})
    key = (expert_a, expert_b, image)
    known = cache.get(key)
    if known is not None and known[0] is ann_a and known[1] is ann_b and known[2] is project.taxonomy:
        return known[3]
    paired = _pair_image(project, expert_a, expert_b, image, ann_a, ann_b)
    cache[key] = (ann_a, ann_b, project.taxonomy, paired)
    return paired


def _pair_image(project: Project, expert_a: str, expert_b: str, image: str,
                ann_a: ImageAnnotation | None, ann_b: ImageAnnotation | None) -> PairedImage:
    first = ann_a or ann_b
    assert first is not None
    acquisition = first.acquisition if ann_a is None or ann_b is None else _merged(ann_a.acquisition, ann_b.acquisition)
    cells_a = _wbc_cells(ann_a, project.taxonomy, project.annotation_path(expert_a, image))
    cells_b = _wbc_cells(ann_b, project.taxonomy, project.annotation_path(expert_b, image))
    return PairedImage(image, first.image, acquisition, tuple(match_cells(image, cells_a, cells_b)))


def _merged(a: Acquisition, b: Acquisition) -> Acquisition:
    """A's acquisition fields, with B's filling the ones A left empty."""
    return Acquisition(**{k: getattr(a, k) if getattr(a, k) is not None else getattr(b, k)
                          for k in ("smear", "stain", "microscope", "magnification", "camera", "diagnosis")})


def pair_experts(project: Project, expert_a: str, expert_b: str, images: Iterable[str] | None = None,
                 progress: ProgressFn = no_progress,
                 left_out: list[StoreError] | None = None) -> list[PairedImage]:
    """Every photo either expert has a file for, with its cells paired. Reads files only.

    A file that cannot be read stops the pairing with its error, or, given a ``left_out`` list,
    is recorded there and its photo left out (the window shows the rest, and says so).
    """
    if expert_a == expert_b:
        raise UserError(f"compare two different experts, not {expert_a} with itself")
    known = project.authors()
    for expert in (expert_a, expert_b):
        if expert not in known:
            raise UserError(f"{expert}: no annotations in {project.root} (authors with files: "
                            f"{', '.join(known) or 'none yet'})")
    todo = list(project.images() if images is None else images)
    out = []
    for i, image in enumerate(todo):
        progress("reading", i, len(todo), image)
        try:
            paired = pair_image(project, expert_a, expert_b, image)
        except StoreError as exc:
            if left_out is None:
                raise
            left_out.append(exc)
            continue
        if paired is not None:
            out.append(paired)
    progress("reading", len(todo), len(todo), "")
    return out


# ----------------------------------------------------------------------------- filters

@dataclass(frozen=True)
class PhotoFilter:
    """Keep photos of one smear / camera / microscope / folder; None means any."""

    smear: str | None = None
    camera: str | None = None
    microscope: str | None = None
    folder: str | None = None  # a folder and everything below it

    def keeps(self, paired: PairedImage) -> bool:
        acq = paired.acquisition
        if self.folder is not None and self.folder.strip("/"):
            folder = self.folder.strip("/")
            if paired.folder != folder and not paired.folder.startswith(folder + "/"):
                return False
        return all(want is None or want == got for want, got in
                   ((self.smear, acq.smear), (self.camera, acq.camera), (self.microscope, acq.microscope)))

    def apply(self, images: Iterable[PairedImage]) -> list[PairedImage]:
        return [p for p in images if self.keeps(p)]


def filter_choices(images: Iterable[PairedImage]) -> dict[str, list[str]]:
    """The values each filter can take in these photos (for the view's drop-downs)."""
    values: dict[str, set[str]] = {"smear": set(), "camera": set(), "microscope": set(), "folder": set()}
    for p in images:
        for key in ("smear", "camera", "microscope"):
            value = getattr(p.acquisition, key)
            if value is not None:
                values[key].add(value)
        if p.folder:
            parts = p.folder.split("/")
            values["folder"].update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {k: sorted(v) for k, v in values.items()}


# ----------------------------------------------------------------------------- matrix

class MatrixClasses:
    """The matrix's row/column names for a taxonomy and level, and a label's class.

    Leaf level: the leaves' matrix names in alphabetical order, "Not recognized", "Not labeled"
    (exactly Table 4's order for the Raabin taxonomy). A parent label ("neutrophil": sure of the
    class, not the sub-type) gets its own class "Neutrophil (sub-type unsure)", placed after the
    last of its leaves and only listed when it occurs. Parent level: top-level classes, same rule.
    """

    def __init__(self, taxonomy: Taxonomy, level: str = "leaf"):
        if level not in LEVELS:
            raise UserError(f"level {level!r}: use leaf or parent")
        self.taxonomy, self.level = taxonomy, level
        wbc = [taxonomy.get(p) for p in taxonomy.wbc_labels()]
        shown = [l for l in wbc if (not l.children if level == "leaf" else l.parent is None)]
        last = [l for l in shown if l.path == NOT_RECOGNIZED_KEY]
        ordered = sorted((l for l in shown if l.path != NOT_RECOGNIZED_KEY), key=lambda l: l.matrix_name.lower())
        self.base: list[str] = [l.matrix_name for l in ordered + last] + [NOT_LABELED]
        self._of: dict[str | None, str] = {None: NOT_LABELED}
        for label in wbc:
            if level == "parent":
                self._of[label.path] = taxonomy.get(label.top).matrix_name
            elif label.children:
                self._of[label.path] = UNSURE.format(label.matrix_name)
            else:
                self._of[label.path] = label.matrix_name
        # where an "unsure" class goes: after the last of its leaves in the base order
        self._after: dict[str, str] = {}
        if level == "leaf":
            for label in wbc:
                if label.children:
                    leaves = [self._of[p] for p in taxonomy.leaves() if p.startswith(label.path + ".")]
                    self._after[UNSURE.format(label.matrix_name)] = max(leaves, key=self.base.index)

    def of(self, label: str | None) -> str:
        return self._of[label]

    def names(self, present: Iterable[str] = ()) -> list[str]:
        """The class order, with the "unsure" classes that occur in ``present`` slotted in."""
        out = list(self.base)
        for unsure in sorted(set(present) & set(self._after), key=lambda u: -self.base.index(self._after[u])):
            out.insert(out.index(self._after[unsure]) + 1, unsure)
        return out


@dataclass
class ConfusionMatrix:
    """Counts of pairs: rows expert A's class, columns expert B's (the paper's Table 4)."""

    expert_a: str
    expert_b: str
    level: str
    names: list[str]
    counts: np.ndarray  # int64, len(names) × len(names)
    members: dict[tuple[int, int], list[CellPair]] = field(repr=False)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def pairs_at(self, row: int, col: int) -> list[CellPair]:
        """The cells counted in one matrix cell, for the gallery (photo order, then cell order)."""
        return list(self.members.get((row, col), ()))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def disagreements(self) -> list[CellPair]:
        return [p for (r, c), ps in sorted(self.members.items()) if r != c for p in ps]

    def csv_text(self) -> str:
        """First row the column labels, first column the row labels (corner: "A \\ B")."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([f"{self.expert_a} \\ {self.expert_b}", *self.names])
        for name, row in zip(self.names, self.counts.tolist()):
            writer.writerow([name, *row])
        return out.getvalue()

    def write_csv(self, path: Path) -> None:
        _write(path, lambda p: atomic_write_text(p, self.csv_text(), keep_backup=False))

    def table_text(self) -> str:
        """The matrix as aligned text for a terminal: numbered columns, legend below."""
        width = max(len(n) for n in self.names)
        col = max(5, len(str(int(self.counts.max(initial=0)))) + 1)
        lines = [f"rows {self.expert_a}, columns {self.expert_b}",
                 " " * (width + 4) + "".join(f"{i + 1:>{col}}" for i in range(len(self.names)))]
        for i, (name, row) in enumerate(zip(self.names, self.counts.tolist())):
            lines.append(f"{name:<{width}} {i + 1:>3}" + "".join(f"{v:>{col}}" for v in row))
        lines.append("columns: " + ", ".join(f"{i + 1} {n}" for i, n in enumerate(self.names)))
        return "\n".join(lines)

def confusion_matrix(images: Iterable[PairedImage], taxonomy: Taxonomy, expert_a: str, expert_b: str,
                     level: str = "leaf") -> ConfusionMatrix:
    """The matrix of every labeled pair (pairs neither expert labeled are left out)."""
    classes = MatrixClasses(taxonomy, level)
    class_of: dict[str | None, str] = {}
    grouped: dict[tuple[str, str], list[CellPair]] = {}
    for paired in images:
        for (label_a, label_b), pairs in paired.by_labels.items():
            for label in (label_a, label_b):
                if label not in class_of:
                    class_of[label] = classes.of(label)
            grouped.setdefault((class_of[label_a], class_of[label_b]), []).extend(pairs)
    names = classes.names(n for key in grouped for n in key)
    at = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    members: dict[tuple[int, int], list[CellPair]] = {}
    for (ra, cb), pairs in grouped.items():
        counts[at[ra], at[cb]] = len(pairs)
        members[(at[ra], at[cb])] = pairs
    return ConfusionMatrix(expert_a, expert_b, level, names, counts, members)


# ----------------------------------------------------------------------------- figures

@dataclass(frozen=True)
class ClassFigures:
    name: str
    count_a: int  # row total: cells expert A put in this class
    count_b: int  # column total
    agreed: int  # diagonal
    specific_agreement: float | None  # positive specific agreement 2·n_ii / (n_i. + n_.i)


@dataclass(frozen=True)
class AgreementFigures:
    """Observed agreement and Cohen's kappa with its 95 % CI.

    The standard error is the large-sample (asymptotic, non-null) one of Fleiss, Cohen &
    Everitt (1969), "Large sample standard errors of kappa and weighted kappa", Psychol. Bull.
    72:323-327 — the one SAS PROC FREQ reports as ASE; the CI is kappa ± 1.96·SE.
    """

    n: int
    observed: float
    expected: float
    kappa: float
    se: float
    ci_low: float
    ci_high: float
    classes: tuple[ClassFigures, ...]

    def lines(self) -> list[str]:
        if not self.n:
            return ["no cell labeled by either expert"]
        out = [f"cells compared {self.n}; observed agreement {self.observed:.1%}; chance {self.expected:.1%}",
               f"Cohen's kappa {self.kappa:.3f} (95% CI {self.ci_low:.3f} to {self.ci_high:.3f}, "
               f"SE {self.se:.4f}, Fleiss-Cohen-Everitt 1969)"]
        width = max(len(c.name) for c in self.classes)
        out.append(f"{'class':<{width}}  {'A':>7} {'B':>7} {'both':>7}  specific agreement")
        for c in self.classes:
            psa = "—" if c.specific_agreement is None else f"{c.specific_agreement:.3f}"
            out.append(f"{c.name:<{width}}  {c.count_a:>7} {c.count_b:>7} {c.agreed:>7}  {psa}")
        return out

    def as_dict(self) -> dict:
        def num(x: float) -> float | None:  # JSON has no NaN
            return None if np.isnan(x) else x

        return {"n": self.n, "observed": num(self.observed), "expected": num(self.expected),
                "kappa": num(self.kappa), "se": num(self.se), "ci95": [num(self.ci_low), num(self.ci_high)], "se_method": "Fleiss, Cohen & Everitt 1969",
                "classes": [c.__dict__ for c in self.classes]}


def kappa_with_ci(counts: np.ndarray) -> tuple[float, float, float, float]:
    """(observed, expected, kappa, SE) of a square count matrix (rows rater A, columns rater B).

    SE = sqrt(A + B − C) / ((1 − pe)·sqrt(n)) with
    A = Σ_i p_ii [1 − (p_i. + p_.i)(1 − κ)]², B = (1 − κ)² Σ_{i≠j} p_ij (p_.i + p_j.)²,
    C = [κ − pe(1 − κ)]²  (Fleiss, Cohen & Everitt 1969). NaN where undefined (n = 0, pe = 1).
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    if n <= 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    p = counts / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po = float(np.trace(p))
    pe = float(rows @ cols)
    if pe >= 1.0:
        return po, pe, float("nan"), float("nan")
    kappa = (po - pe) / (1.0 - pe)
    diag = np.diag(p)
    a = float(np.sum(diag * (1.0 - (rows + cols) * (1.0 - kappa)) ** 2))
    weights = (cols[:, None] + rows[None, :]) ** 2  # (p_.i + p_j.)² at [i, j]
    off = p * weights
    b = (1.0 - kappa) ** 2 * float(off.sum() - np.trace(off))
    c = (kappa - pe * (1.0 - kappa)) ** 2
    se = float(np.sqrt(max(a + b - c, 0.0) / n)) / (1.0 - pe)
    return po, pe, float(kappa), se


def agreement_figures(matrix: ConfusionMatrix) -> AgreementFigures:
    po, pe, kappa, se = kappa_with_ci(matrix.counts)
    rows, cols = matrix.counts.sum(axis=1), matrix.counts.sum(axis=0)
    diag = np.diag(matrix.counts)
    classes = tuple(
        ClassFigures(name, int(r), int(c), int(d), (2.0 * d / (r + c)) if r + c else None)
        for name, r, c, d in zip(matrix.names, rows, cols, diag))
    return AgreementFigures(matrix.total, po, pe, kappa, se, kappa - Z95 * se, kappa + Z95 * se, classes)


@dataclass(frozen=True)
class AgreementSummary:
    """How the pairs came about: what the matrix does not show by itself."""

    photos: int
    by_id: int
    by_iou: int
    only_a: int
    only_b: int
    rejected_a: int  # pairs where A rejected the proposal and B labeled it
    rejected_b: int
    neither: int  # pairs neither expert labeled: left out of the matrix

    def lines(self) -> list[str]:
        return [f"photos {self.photos}; cells matched by id {self.by_id}, by box overlap {self.by_iou}; "
                f"only {self.only_a} in A's files, {self.only_b} only in B's",
                f"proposals rejected by A but labeled by B {self.rejected_a}, the reverse {self.rejected_b} "
                f"(counted as Not labeled); cells neither labeled {self.neither} (left out)"]


def summarize(images: Sequence[PairedImage]) -> AgreementSummary:
    totals = [sum(column) for column in zip(*(img.tally for img in images))] or [0] * 7
    return AgreementSummary(len(images), *totals)


# ----------------------------------------------------------------------------- heatmap

def draw_heatmap(matrix: ConfusionMatrix, figure: "Figure") -> None:
    """Draw the matrix into ``figure`` (cleared first): counts in cells, log colours, diagonal outlined.

    The view embeds the same Figure with FigureCanvasTkAgg; image coordinates are cell indices,
    so a click at (xdata, ydata) is matrix cell (round(ydata), round(xdata)).
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, NullLocator

    figure.clear()
    # margins from the longest class name instead of tight_layout, which measures every text
    # and took a quarter of a second at each redraw (the view must open within 1 s, issue 7)
    label_in = max(map(len, matrix.names)) * 0.5 * TICK_PT / 72 + 0.45
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=min(0.45, label_in / width), bottom=min(0.45, label_in * 0.87 / height),
                           right=1 - 0.95 / width, top=0.98)
    ax = figure.add_subplot(1, 1, 1)
    counts = matrix.counts
    shown = np.ma.masked_less(counts.astype(float), 1)  # zero is not on a log scale: left white
    top = max(2.0, float(counts.max(initial=1)))
    # vmin below 1 so that a single cell is visibly tinted, not white like an empty one
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=0.5, vmax=top), interpolation="nearest")
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cells (log scale)")
    bar.set_ticks([t * 10 ** e for e in range(int(np.log10(top)) + 1) for t in (1, 2, 5) if t * 10 ** e <= top])
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    k = len(matrix.names)
    ax.set_xticks(range(k), matrix.names, rotation=60, ha="right", fontsize=TICK_PT)
    ax.set_yticks(range(k), matrix.names, fontsize=TICK_PT)
    ax.set_xlabel(matrix.expert_b)
    ax.set_ylabel(matrix.expert_a)
    threshold = np.sqrt(top)  # the log-scale middle: darker cells get white text
    for i in range(k):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=1.5))
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if counts[i, j] > threshold else "black")
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(k - 0.5, -0.5)


def write_heatmap_png(matrix: ConfusionMatrix, path: Path, dpi: int = 120) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.5, 7.5))
    FigureCanvasAgg(figure)
    draw_heatmap(matrix, figure)
    _write(path, lambda p: figure.savefig(p, dpi=dpi, format="png"))


def _write(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- double-labeled

#: The paper's five classes of the double-labeled set (Kouzehkanan et al., Raabin-WBC):
#: Neutrophil is the mature neutrophil only; small and large lymphocytes are one class, so an
#: expert pair saying "small" and "large" agrees on Lymphocyte (as does a parent "lymphocyte").
FIVE_CLASSES = {"neutrophil.mature": "Neutrophil", "lymphocyte": "Lymphocyte", "lymphocyte.small": "Lymphocyte",
                "lymphocyte.large": "Lymphocyte", "monocyte": "Monocyte", "eosinophil": "Eosinophil",
                "basophil": "Basophil"}
DOUBLE_LABELED_CSV = "double_labeled.csv"
DOUBLE_LABELED_COLUMNS = ("crop", "class", "photo", "x1", "y1", "x2", "y2", "smear", "camera", "microscope",
                          "cell_id", "label_a", "label_b")


@dataclass
class DoubleLabeledReport:
    per_class: dict[str, int]
    left_out_duplicates: int
    csv_path: Path

    def lines(self) -> list[str]:
        counts = ", ".join(f"{k} {v}" for k, v in self.per_class.items())
        return [f"double-labeled crops: {sum(self.per_class.values())} ({counts}); "
                f"{self.left_out_duplicates} agreed duplicate(s) left out; provenance in {self.csv_path}"]


def five_class(label: str | None) -> str | None:
    return FIVE_CLASSES.get(label) if label is not None else None


def double_labeled_pairs(project: Project, images: Sequence[PairedImage]) -> tuple[list[CellPair], int]:
    """Pairs both experts put in the same of the five classes, and how many duplicates were dropped.

    A cell is left out when ``duplicate_of`` is set in A's, B's or the detector's record of it
    (the detector's matched by id, since dedup may mark proposals there).
    """
    keep, dropped = [], 0
    for paired in images:
        agreed = [p for p in paired.pairs if five_class(p.label_a) is not None
                  and five_class(p.label_a) == five_class(p.label_b)]
        if not agreed:
            continue
        found = project.load(DETECTOR, paired.image)
        detector = {c.id: c for c in found.cells} if found is not None else {}
        for pair in agreed:
            records = [pair.a, pair.b, *(detector.get(c.id) for c in (pair.a, pair.b) if c is not None)]
            if any(r is not None and r.duplicate_of is not None for r in records):
                dropped += 1
            else:
                keep.append(pair)
    return keep, dropped


def export_double_labeled(project: Project, images: Sequence[PairedImage], out: Path,
                          progress: ProgressFn = no_progress) -> DoubleLabeledReport:
    """Crops of the cells both experts agree on, a folder per class, and a provenance CSV.

    Crops are ``default_box_size`` squares centred on A's box, padded black past the photo's
    edge (imageio.crop_square), JPEG q95 without chroma subsampling like the crops export.
    """
    from PIL import Image

    from .imageio import crop_square, open_image

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    pairs, dropped = double_labeled_pairs(project, images)
    by_image: dict[str, list[CellPair]] = {}
    for pair in pairs:
        by_image.setdefault(pair.image, []).append(pair)
    acquisition = {p.image: p.acquisition for p in images}
    size = project.default_box_size
    per_class = {name: 0 for name in dict.fromkeys(FIVE_CLASSES.values())}
    rows = []
    try:
        for i, (image, group) in enumerate(by_image.items()):
            progress("cropping", i, len(by_image), image)
            photo = open_image(project.image_path(image), project.max_pixels)
            acq = acquisition[image]
            stem = PurePosixPath(image).with_suffix("").as_posix().replace("/", "__")
            for pair in group:
                cls = FIVE_CLASSES[pair.label_a or ""]
                rel = f"{cls}/{stem}__{pair.cell_id}.jpg"
                (out / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop_square(photo, pair.box, size)).save(out / rel, quality=95, subsampling=0)
                per_class[cls] += 1
                rows.append([rel, cls, image, *pair.box.as_list(), acq.smear or "", acq.camera or "",
                             acq.microscope or "", pair.cell_id, pair.label_a, pair.label_b])
        progress("cropping", len(by_image), len(by_image), "")
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(DOUBLE_LABELED_COLUMNS)
        writer.writerows(rows)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_crops(out, DOUBLE_LABELED_CSV, (row[0] for row in rows))
        atomic_write_text(out / DOUBLE_LABELED_CSV, text.getvalue(), keep_backup=False)
    except OSError as exc:
        raise UserError(f"{exc.filename or out}: cannot write the export: {exc.strerror or exc}") from None
    return DoubleLabeledReport(per_class, dropped, out / DOUBLE_LABELED_CSV)
