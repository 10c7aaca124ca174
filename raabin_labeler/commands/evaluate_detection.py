"""`raabin-labeler evaluate-detection`: fit the colour filter on BCCD's train split, score on val.

Truth is ``wbc_boxes_corrected.csv`` (BCCD's XML with its known WBC mistakes fixed, see the
data README), scored as issue 4 asks: recall and precision at IoU ≥ 0.5 with greedy one-to-one
matching, and the mean IoU of the matched boxes. ``--save-model`` writes the fitted model; the
shipped default is made by ``raabin-labeler evaluate-detection --save-model assets/detector_default.json``.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.detection import ColorModel, LabeledPhoto, fit_color_model, match_boxes, propose_cells
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


def run(args: argparse.Namespace) -> int:
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
                            help="fit the WBC detector on BCCD train and score it on val",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="the BCCD folder (default: ../shared/data/bccd)")
    parser.add_argument("--model", metavar="JSON", help="score this fitted model instead of fitting one")
    parser.add_argument("--save-model", metavar="JSON", help="write the fitted model here")
    parser.add_argument("--split", default="val", help="the split to score (default: val)")
    parser.add_argument("--fit-split", default="train", help="the split to fit on (default: train)")
    parser.set_defaults(run=run)
