"""`raabin-labeler evaluate-detection`: score the WBC detector on BCCD val or on a project's truth.

Scored as issue 4 asks: recall and precision at IoU ≥ 0.5 with greedy one-to-one matching, and
the mean IoU of the matched boxes.

Without ``--project``: fit the colour filter on BCCD's train split and score it on val, against
``wbc_boxes_corrected.csv`` (BCCD's XML with its known WBC mistakes fixed, see the data README).
``--save-model`` writes the fitted model; the shipped default is made by
``raabin-labeler evaluate-detection --save-model assets/detector_default.json``.

With ``--project P --truth AUTHOR``: run the detector on every photo AUTHOR annotated, exactly
as ``raabin-labeler detect P`` would (reduced decode, project scale) but in memory, and score
its WBC proposals against AUTHOR's cells. Cells to find are every cell of the white-cell tree
(any WBC class, burst, not recognised, not yet labeled) except ``artifact``: a stain spot or
drying artefact is not a WBC, so a WBC proposal on one is a false positive; an ``artifact``
proposal is scored apart, against the artifact cells. Cells with an extra label (BCCD's RBC,
Platelets) are not WBCs either. ``--fit`` first fits on the project's other authors' labels.
"""
from __future__ import annotations

import argparse
import csv
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.annotation import ImageAnnotation
from ..core.detection import (CellScale, ColorModel, LabeledPhoto, default_model, detect_photo, fit_color_model,
                              match_boxes, propose_cells)
from ..core.imageio import ImageError
from ..core.jobs import PoolRunner, Runner
from ..core.project import Project
from ..core.proposals import fit_on_project, project_scale
from ..errors import FileProblem, UserError
from ..progress import ProgressBar

TRUTH_FILE = "wbc_boxes_corrected.csv"


@dataclass(frozen=True)
class DetectionScore:
    truth: int
    proposed: int
    matched: int
    mean_iou: float

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.proposed if self.proposed else 1.0

    def summary(self) -> str:
        return (f"recall {self.recall:.4f} ({self.matched}/{self.truth})  "
                f"precision {self.precision:.4f} ({self.matched}/{self.proposed})  "
                f"mean IoU of matched {self.mean_iou:.4f}")


def default_data_dir() -> Path:
    """../shared/data/bccd from the working folder, else from the repository root."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "data" / "bccd"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data" / "bccd"


def read_truth(data_dir: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """WBC boxes per image stem, x2/y2 exclusive (the CSV's xmax/ymax are used as such)."""
    path = data_dir / TRUTH_FILE
    if not path.is_file():
        raise FileProblem(path, "not found: --data must name the BCCD folder")
    boxes: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                boxes[row["image"]].append((int(row["xmin"]), int(row["ymin"]), int(row["xmax"]), int(row["ymax"])))
            except (KeyError, TypeError, ValueError):
                raise FileProblem(path, "expected integer xmin, ymin, xmax, ymax and an image name",
                                  f"line {line}") from None
    return boxes


def read_split(data_dir: Path, split: str) -> list[str]:
    path = data_dir / f"{split}.txt"
    if not path.is_file():
        raise FileProblem(path, "split list not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_photo(data_dir: Path, stem: str, truth: dict[str, list]) -> LabeledPhoto:
    """One BCCD frame with its corrected WBC boxes and, if present, its nucleus/cell masks."""
    image_path = data_dir / "JPEGImages" / f"{stem}.jpg"
    try:
        rgb = np.asarray(Image.open(image_path).convert("RGB"))
    except OSError as exc:
        raise FileProblem(image_path, f"cannot be read: {exc}") from None
    nucleus = cell = None
    mask_path = data_dir / "masks" / f"{stem.replace('Image_', 'Image_Mask_')}.png"
    if mask_path.is_file():
        # The data README: nucleus >= 208, whole cell >= 80 (some masks carry JPEG noise).
        mask = np.asarray(Image.open(mask_path).convert("L"))
        if mask.shape == rgb.shape[:2]:
            nucleus, cell = mask >= 208, mask >= 80
    return LabeledPhoto(rgb, truth.get(stem, []), nucleus, cell, stem)


def load_split(data_dir: Path, split: str) -> list[LabeledPhoto]:
    truth = read_truth(data_dir)
    return [load_photo(data_dir, stem, truth) for stem in read_split(data_dir, split)]


def score(model: ColorModel, photos: list[LabeledPhoto], label: str = "evaluate") -> DetectionScore:
    n_truth = n_proposed = 0
    ious: list[float] = []
    with ProgressBar(len(photos), label) as bar:
        for photo in photos:
            proposed = [p.box for p in propose_cells(photo.rgb, model) if p.kind == "wbc"]
            matches = match_boxes(photo.boxes, proposed, min_iou=0.5)
            n_truth += len(photo.boxes)
            n_proposed += len(proposed)
            ious.extend(iou for _, _, iou in matches)
            bar.advance(photo.name)
    return DetectionScore(n_truth, n_proposed, len(ious), float(np.mean(ious)) if ious else 0.0)


# --- a project's own truth ----------------------------------------------------------------------

#: Labels that are not WBCs: proposals on them are false positives (issue 4: stain spots).
ARTIFACT = "artifact"
UNLABELED = "(not labeled)"


@dataclass(frozen=True)
class TruthCell:
    box: tuple[int, int, int, int]
    label: str  # the top-level class, UNLABELED, or ARTIFACT


@dataclass(frozen=True)
class ProjectScore:
    """WBC scores over a project, recall per top-level class, and what happened on artifacts."""

    wbc: DetectionScore
    per_class: dict[str, tuple[int, int]]  # class: (found, truth)
    artifacts: int
    wbc_on_artifact: int  # WBC proposals whose best match is an artifact cell: false positives
    artifact_proposed: int
    artifact_found: int

    def lines(self) -> list[str]:
        classes = "  ".join(f"{name} {found}/{total}" for name, (found, total) in self.per_class.items())
        artifacts = (f"artifact cells {self.artifacts}: {self.wbc_on_artifact} taken for WBCs (false positives), "
                     f"{self.artifact_found} found by {self.artifact_proposed} artifact proposals")
        return [self.wbc.summary(), f"recall per class: {classes}", artifacts]


def truth_cells(project: Project, annotation: ImageAnnotation) -> list[TruthCell]:
    """An author's cells as truth: rejected ones left out, extra labels (RBC...) left out."""
    out = []
    for cell in annotation.cells:
        if cell.rejected:
            continue
        if cell.label is None:
            label = UNLABELED
        elif cell.label not in project.taxonomy:
            continue
        else:
            entry = project.taxonomy.get(cell.label)
            if entry.extra:
                continue
            label = entry.top
        out.append(TruthCell(tuple(cell.box.as_list()), label))
    return out


def _propose(task: tuple[Path, ColorModel, CellScale | None]) -> list[tuple[tuple[int, int, int, int], str]]:
    """Worker (pool process): one photo's proposals as ``detect`` makes them, as plain tuples."""
    path, model, scale = task
    try:
        return [(p.box, p.kind) for p in detect_photo(path, model, scale)]
    except ImageError as exc:  # re-raised plainly: the pool must pickle it back
        raise ValueError(str(exc)) from None


def score_project(project: Project, truth: dict[str, list[TruthCell]], model: ColorModel,
                  runner: Runner | None = None) -> ProjectScore:
    """Detect on every photo of ``truth`` (in memory, nothing written) and score the proposals."""
    scale = project_scale(project)
    tasks = {project.image_path(image): image for image in truth}
    runner = runner or PoolRunner(processes=True)
    n_truth = n_proposed = wbc_on_artifact = artifact_proposed = artifact_found = 0
    ious: list[float] = []
    found: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    with ProgressBar(len(tasks), "evaluate") as bar:
        for outcome in runner.imap(_propose, [(path, model, scale) for path in tasks], threading.Event()):
            image = tasks[outcome.item[0]]
            if outcome.error is not None:
                raise UserError(f"{project.image_path(image)}: {outcome.error.split(': ', 1)[-1]}")
            cells = truth[image]
            wbcs = [c for c in cells if c.label != ARTIFACT]
            artifacts = [c.box for c in cells if c.label == ARTIFACT]
            proposed = [box for box, kind in outcome.value if kind == "wbc"]
            flagged = [box for box, kind in outcome.value if kind == ARTIFACT]
            matches = match_boxes([c.box for c in wbcs], proposed, min_iou=0.5)
            for c in wbcs:
                total[c.label] += 1
            for i, _, iou in matches:
                found[wbcs[i].label] += 1
                ious.append(iou)
            taken = {j for _, j, _ in matches}
            unmatched = [p for j, p in enumerate(proposed) if j not in taken]
            wbc_on_artifact += len(match_boxes(artifacts, unmatched, min_iou=0.5))
            artifact_found += len(match_boxes(artifacts, flagged, min_iou=0.5))
            artifact_proposed += len(flagged)
            n_truth += len(wbcs)
            n_proposed += len(proposed)
            bar.advance(image)
    n_artifacts = sum(c.label == ARTIFACT for cells in truth.values() for c in cells)
    wbc = DetectionScore(n_truth, n_proposed, len(ious), float(np.mean(ious)) if ious else 0.0)
    order = [name for name in project.taxonomy.top_level() if name in total] + sorted(set(total) - set(project.taxonomy.top_level()))
    return ProjectScore(wbc, {name: (found[name], total[name]) for name in order}, n_artifacts,
                        wbc_on_artifact, artifact_proposed, artifact_found)


def read_project_truth(project: Project, author: str) -> dict[str, list[TruthCell]]:
    """Every photo the author annotated (even with no cells: then every proposal is false)."""
    if author not in project.authors():
        known = ", ".join(project.authors()) or "none"
        raise UserError(f"{project.root}: no annotations by {author!r} (authors: {known})")
    truth = {}
    for image, annotation, error in project.iter_annotations(author):
        if error is not None:
            raise UserError(str(error))
        if annotation is not None:
            truth[image] = truth_cells(project, annotation)
    if not truth:
        raise UserError(f"{project.root}: {author!r} annotated no photo of the project")
    return truth


def run_project(args: argparse.Namespace) -> int:
    project = Project.open(Path(args.project))
    truth = read_project_truth(project, args.truth)
    model = ColorModel.load(Path(args.model)) if args.model else default_model()
    if args.fit:
        model, cells, photos = fit_on_project(project, exclude=(args.truth,))
        print(f"fitted on {cells} cells in {photos} labeled photos "
              f"(every author but {args.truth} and the detector)")
    if args.save_model:
        model.save(Path(args.save_model))
        print(f"saved the model to {args.save_model}")
    result = score_project(project, truth, model)
    for line in result.lines():
        print(f"{args.truth}: {line}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.truth and not args.project:
        raise UserError("--truth needs --project")
    if args.project:
        if not args.truth:
            raise UserError("--project needs --truth AUTHOR: whose cells to score against")
        return run_project(args)
    if args.fit:
        raise UserError("--fit goes with --project (on BCCD the model is fitted on --fit-split)")
    data_dir = Path(args.data) if args.data else default_data_dir()
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: BCCD folder not found (give it with --data DIR)")
    if args.model:
        model = ColorModel.load(Path(args.model))
    else:
        model = fit_color_model(load_split(data_dir, args.fit_split), name=f"BCCD {args.fit_split}")
        print(f"fitted on {data_dir / (args.fit_split + '.txt')}")
    if args.save_model:
        model.save(Path(args.save_model))
        print(f"saved the model to {args.save_model}")
    result = score(model, load_split(data_dir, args.split))
    print(f"{args.split}: {result.summary()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate-detection",
                            help="score the WBC detector on BCCD val, or on a project's truth",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="the BCCD folder (default: ../shared/data/bccd)")
    parser.add_argument("--model", metavar="JSON", help="score this fitted model instead of fitting one "
                        "(with --project: instead of the default)")
    parser.add_argument("--save-model", metavar="JSON", help="write the fitted model here")
    parser.add_argument("--split", default="val", help="the split to score (default: val)")
    parser.add_argument("--fit-split", default="train", help="the split to fit on (default: train)")
    parser.add_argument("--project", metavar="P", help="score on this project's photos instead of BCCD")
    parser.add_argument("--truth", metavar="AUTHOR", help="with --project: the author whose cells are the truth")
    parser.add_argument("--fit", action="store_true",
                        help="with --project: fit on the labels of every author but AUTHOR and the detector first")
    parser.set_defaults(run=run)
