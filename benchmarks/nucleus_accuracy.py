"""Mean nucleus Dice of the Easy-GT methods on three sets, and the joint fit of FITTED.

Sets (../shared/data, README there):
- dataset1: segmentation_wbc/dataset1, 300 crops, truth = mask == 255;
- BCCD: the WBC boxes of bccd/wbc_boxes_corrected.csv cut from JPEGImages, truth = the
  bccd/masks mask >= 208 inside the box (masks are not per instance: a second white cell in
  the box counts too);
- sample: the bundled sample project (sample_data), author "truth": each cell's box cut from
  its photo (EXIF applied), truth = its exact mask == 255 (the PNG has the box's size);
  cells whose mask has no nucleus (basophils, artifacts: 128 only) are left out.
Prints, per set, plain two-class Otsu on CMYK M (baseline of the run), the Easy-GT program
(gray world, M > T2), FITTED (raabin_labeler.core.nucleus), its ratio to the baseline, FITTED
as the batch command computes it (batch_mask, at BATCH_WORK_SIZE = 144 instead of 575) and
its difference to FITTED, the whole-cell Dice of the automatic outline (panel and batch), and the fit: every (channel, α, dilation) of the grid
ranked by the smaller margin to the targets (Dice − 0.96 on dataset1, Dice − 0.95 on BCCD;
the sample set has no target and is shown alongside).

    .venv/bin/python benchmarks/nucleus_accuracy.py            # about 2 min on 2 cores
    .venv/bin/python benchmarks/nucleus_accuracy.py --no-fit   # the three methods only
    .venv/bin/python benchmarks/nucleus_accuracy.py --fit-pixel  # re-fit the per-pixel model

``--fit-pixel`` fits the logistic regression of raabin_labeler.core.nucleus_pixel on 600 pixels
per crop (drawn near the Easy-GT core's outline) of dataset1 and BCCD jointly, reports held-out
Dice (two folds: fit on every other crop of each set, test on the rest; the sample set is never
fitted) and prints the coefficients fitted on all crops, to paste into COEFFICIENTS. The fit is
L2-regularised on standardised features with C = PIXEL_C (``--pixel-c`` to try another).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from raabin_labeler.core.imageio import open_image
from raabin_labeler.core.nucleus import (CYTOPLASM, EASY_GT, FITTED, FITTED_THRESHOLD, NUCLEUS,
                                         PLAIN_OTSU, WORK_SIZE, NucleusMethod, NucleusSession,
                                         _to_work_size, batch_mask, clean_nucleus, combined_threshold,
                                         gray_world_balance, to_crop_size)
from raabin_labeler.core.nucleus_pixel import FEATURES, PIXEL_SIDE, nucleus_probability, pixel_features

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "sample_data"
TARGETS = {"dataset1": 0.96, "BCCD": 0.95}
SETS = (*TARGETS, "sample")
GRID = [NucleusMethod(channel, alpha, clean=True, dilate=dilate)
        for channel, alpha, dilate in itertools.product(
            ("cmyk_magenta", "nuclear_magenta"), (0.0, 0.25, 0.4, 0.5, 0.6, 0.75), (0.0, 0.01, 0.02, 0.03))]


def items() -> list[tuple[str, str, tuple[int, int, int, int] | None]]:
    out: list[tuple[str, str, tuple[int, int, int, int] | None]] = []
    for bmp in sorted((DATA / "segmentation_wbc" / "dataset1").glob("*.bmp")):
        out.append(("dataset1", str(bmp), None))
    with open(DATA / "bccd" / "wbc_boxes_corrected.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            box = tuple(int(float(row[k])) for k in ("xmin", "ymin", "xmax", "ymax"))
            out.append(("BCCD", row["image"], box))
    for path in sorted((SAMPLE / "annotations" / "truth").rglob("*.json")):
        record = json.loads(path.read_text())
        for cell in record["cells"]:
            if cell.get("nucleus_mask") and cell["label"] not in WHOLE_CELL_ONLY:
                out.append(("sample", f"{record['image']['path']}|{cell['nucleus_mask']}", tuple(cell["box"])))
    return out


#: Labels whose sample masks are whole-cell only (128, no nucleus; issue 6 step 6).
WHOLE_CELL_ONLY = {"basophil", "artifact"}


def load(item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop RGB, nucleus truth, whole-cell truth)."""
    name, ref, box = item
    if name == "dataset1":
        rgb = np.asarray(Image.open(ref).convert("RGB"))
        mask = np.asarray(Image.open(Path(ref).with_suffix(".png")).convert("L"))
        return rgb, mask == 255, mask >= 128
    x1, y1, x2, y2 = box
    if name == "sample":
        image, mask_rel = ref.split("|")
        rgb = np.asarray(open_image(SAMPLE / "images" / image))[y1:y2, x1:x2]
        mask = np.asarray(Image.open(SAMPLE / mask_rel).convert("L"))
        if mask.shape != rgb.shape[:2] or not (mask == 255).any():
            raise ValueError(f"{mask_rel}: not a nucleus mask of the box's size {rgb.shape[:2]}")
        return rgb, mask == 255, mask >= 128
    rgb = np.asarray(Image.open(DATA / "bccd" / "JPEGImages" / f"{ref}.jpg").convert("RGB"))
    mask_path = DATA / "bccd" / "masks" / f"{ref.replace('BloodImage_', 'BloodImage_Mask_')}.png"
    mask = np.asarray(Image.open(mask_path).convert("L"))
    return rgb[y1:y2, x1:x2], mask[y1:y2, x1:x2] >= 208, mask[y1:y2, x1:x2] >= 80


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def score(task) -> tuple[str, list[float], list[float], list[float]]:
    """One crop: Dice of the three methods and the batch, of every grid method, of the cell outlines."""
    item, fit = task
    rgb, nucleus, cell = load(item)
    main = [dice(NucleusSession(rgb, m).crop_mask(), nucleus)
            for m in (PLAIN_OTSU, EASY_GT, FITTED_THRESHOLD, FITTED)]
    batch = batch_mask(rgb, (rgb.shape[1], rgb.shape[0]))
    main.append(dice(batch == NUCLEUS, nucleus))
    grid: list[float] = []
    if fit:
        sessions: dict[str, NucleusSession] = {}
        for method in GRID:  # one session per channel; α and the clean-up vary
            session = sessions.setdefault(method.channel, NucleusSession(rgb, method))
            raw = session.channel > combined_threshold(session.thresholds, method.alpha)
            mask = to_crop_size(clean_nucleus(raw, method.dilate), session.crop_size)
            grid.append(dice(mask, nucleus))
    fitted = NucleusSession(rgb, FITTED)
    cell_dice = [dice(fitted.cell_mask(), cell), dice(batch >= CYTOPLASM, cell)]
    return item[0], main, grid, cell_dice


#: Pixels drawn per crop for the per-pixel model, weighted toward the core's outline.
PIXELS_PER_CROP = 600


def pixel_sample(task) -> tuple[np.ndarray, np.ndarray]:
    """(features, truth) of PIXELS_PER_CROP pixels of one crop, drawn near the core's outline."""
    index, item = task
    rgb, nucleus, _ = load(item)
    features = pixel_features(gray_world_balance(_to_work_size(rgb, WORK_SIZE)))
    truth = to_crop_size(nucleus, (PIXEL_SIDE, PIXEL_SIDE)).ravel()
    weight = np.exp(-np.abs(features[..., FEATURES.index("distance")].ravel() * 5) / 4)
    pick = np.random.default_rng(index).choice(truth.size, PIXELS_PER_CROP, p=weight / weight.sum())
    return features.reshape(-1, len(FEATURES))[pick], truth[pick]


def model_dice(task) -> float:
    """Nucleus Dice of one crop under the given coefficients, the way NucleusSession computes it."""
    item, coefficients = task
    rgb, nucleus, _ = load(item)
    work = gray_world_balance(_to_work_size(rgb, WORK_SIZE))
    channel = cv2.resize(nucleus_probability(work, coefficients), work.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    mask = clean_nucleus(channel > FITTED.threshold)
    return dice(to_crop_size(mask, (rgb.shape[1], rgb.shape[0])), nucleus)


#: Inverse L2 strength of the per-pixel fit (on standardised features).
PIXEL_C = 3.0


def fit_logistic(features: np.ndarray, truth: np.ndarray, c: float = PIXEL_C) -> np.ndarray:
    """Standardised L2 logistic regression, folded back to raw-feature coefficients."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(features), truth)
    weights = model.coef_[0] / scaler.scale_
    return np.append(weights, model.intercept_[0] - weights @ scaler.mean_).astype(np.float32)


def fit_pixel_model(pool: Pool, c: float = PIXEL_C) -> None:
    everything = items()
    fitted = [i for i, item in enumerate(everything) if item[0] in TARGETS]
    samples = dict(zip(fitted, pool.map(pixel_sample, [(i, everything[i]) for i in fitted], chunksize=8)))
    rank = {i: n for name in TARGETS for n, i in enumerate(j for j in fitted if everything[j][0] == name)}
    held: dict[str, list[float]] = {}
    for fold in (0, 1):
        train = [i for i in fitted if rank[i] % 2 == fold]
        coefficients = fit_logistic(np.vstack([samples[i][0] for i in train]),
                                    np.concatenate([samples[i][1] for i in train]), c)
        test = [i for i in range(len(everything)) if i not in train]
        for i, value in zip(test, pool.map(model_dice, [(everything[i], coefficients) for i in test], chunksize=8)):
            held.setdefault(everything[i][0], []).append(value)
    print("per-pixel model, held-out nucleus Dice (2 folds; sample: mean of both folds' models):")
    for name in SETS:
        print(f"  {name:9} {np.mean(held[name]):.4f}  ({len(held[name])} crop tests)")
    coefficients = fit_logistic(np.vstack([samples[i][0] for i in fitted]),
                                np.concatenate([samples[i][1] for i in fitted]), c)
    scores = pool.map(model_dice, [(item, coefficients) for item in everything], chunksize=8)
    print("fitted on all of dataset1 + BCCD (in-sample): "
          + ", ".join(f"{name} {np.mean([s for s, it in zip(scores, everything) if it[0] == name]):.4f}"
                      for name in SETS))
    print("COEFFICIENTS = np.array([" + ", ".join(f"{c:.6g}" for c in coefficients) + "], dtype=np.float32)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-fit", action="store_true", help="skip the parameter grid")
    parser.add_argument("--fit-pixel", action="store_true", help="re-fit the per-pixel model and stop")
    parser.add_argument("--pixel-c", type=float, default=PIXEL_C, help="with --fit-pixel: the fit's C")
    args = parser.parse_args()
    if args.fit_pixel:
        with Pool(os.cpu_count() or 1) as pool:
            fit_pixel_model(pool, args.pixel_c)
        return
    start = time.perf_counter()
    tasks = [(item, not args.no_fit) for item in items()]
    with Pool(os.cpu_count() or 1) as pool:
        results = pool.map(score, tasks, chunksize=8)
    sets = list(SETS)
    print(f"nucleus Dice, mean over crops ({time.perf_counter() - start:.0f} s)")
    print(f"{'set':9} {'crops':>5} {'plain Otsu M':>13} {'Easy-GT T2':>11} {'threshold':>9} {'FITTED':>7} "
          f"{'ratio':>6} {'target':>7} {'batch':>7} {'change':>7} {'cell Dice':>10} {'batch':>6}")
    for name in sets:
        rows = np.array([r[1] for r in results if r[0] == name])
        cells = np.array([r[3] for r in results if r[0] == name]).mean(axis=0)
        plain, easy, threshold, fitted, batch = rows.mean(axis=0)
        target = f"{TARGETS[name]:7.2f}" if name in TARGETS else f"{'-':>7}"
        print(f"{name:9} {len(rows):5d} {plain:13.4f} {easy:11.4f} {threshold:9.4f} {fitted:7.4f} "
              f"{fitted / plain:6.3f} {target} {batch:7.4f} {batch - fitted:+7.4f} "
              f"{cells[0]:10.4f} {cells[1]:6.4f}")
    print(f"threshold = FITTED_THRESHOLD = {FITTED_THRESHOLD}\nFITTED = {FITTED} (the per-pixel model; "
          "its held-out figures: --fit-pixel)")
    if args.no_fit:
        return
    table = {name: np.array([r[2] for r in results if r[0] == name]).mean(axis=0) for name in sets}
    order = sorted(range(len(GRID)), key=lambda i: -min(table[n][i] - TARGETS[n] for n in TARGETS))
    print("\njoint fit, best 10 by the smaller margin to the targets:")
    print(f"{'channel':16} {'alpha':>5} {'dilate':>6} " + " ".join(f"{n:>9}" for n in sets) + "  min margin")
    for i in order[:10]:
        m = GRID[i]
        margin = min(table[n][i] - TARGETS[n] for n in TARGETS)
        print(f"{m.channel:16} {m.alpha:5.2f} {m.dilate:6.2f} "
              + " ".join(f"{table[n][i]:9.4f}" for n in sets) + f"  {margin:+.4f}")
    best_each = {n: max(range(len(GRID)), key=lambda i: table[n][i]) for n in TARGETS}
    for n, i in best_each.items():
        m = GRID[i]
        others = ", ".join(f"{o} {table[o][i]:.4f}" for o in sets if o != n)
        print(f"best for {n} alone: {m.channel} alpha={m.alpha} dilate={m.dilate}: "
              f"{table[n][i]:.4f} ({others})")


if __name__ == "__main__":
    main()
