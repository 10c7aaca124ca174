"""Mean nucleus Dice of the Easy-GT methods on two real sets, and the joint fit of FITTED.

Sets (../shared/data, README there):
- dataset1: segmentation_wbc/dataset1, 300 crops, truth = mask == 255;
- BCCD: the WBC boxes of bccd/wbc_boxes_corrected.csv cut from JPEGImages, truth = the
  bccd/masks mask >= 208 inside the box (masks are not per instance: a second white cell in
  the box counts too).
Prints, per set, plain two-class Otsu on CMYK M (baseline of the run), the Easy-GT program
(gray world, M > T2), FITTED (raabin_labeler.core.nucleus), their ratios to the baseline, the
whole-cell Dice of the automatic outline, and the fit: every (channel, α, dilation) of the grid
ranked by the smaller margin to the targets (Dice − 0.96 on dataset1, Dice − 0.95 on BCCD).

    .venv/bin/python benchmarks/nucleus_accuracy.py            # about 2 min on 2 cores
    .venv/bin/python benchmarks/nucleus_accuracy.py --no-fit   # the three methods only
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from raabin_labeler.core.nucleus import (EASY_GT, FITTED, PLAIN_OTSU, NucleusMethod,
                                         NucleusSession, clean_nucleus, combined_threshold,
                                         to_crop_size)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {"dataset1": 0.96, "BCCD": 0.95}
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
    return out


def load(item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop RGB, nucleus truth, whole-cell truth)."""
    name, ref, box = item
    if name == "dataset1":
        rgb = np.asarray(Image.open(ref).convert("RGB"))
        mask = np.asarray(Image.open(Path(ref).with_suffix(".png")).convert("L"))
        return rgb, mask == 255, mask >= 128
    x1, y1, x2, y2 = box
    rgb = np.asarray(Image.open(DATA / "bccd" / "JPEGImages" / f"{ref}.jpg").convert("RGB"))
    mask_path = DATA / "bccd" / "masks" / f"{ref.replace('BloodImage_', 'BloodImage_Mask_')}.png"
    mask = np.asarray(Image.open(mask_path).convert("L"))
    return rgb[y1:y2, x1:x2], mask[y1:y2, x1:x2] >= 208, mask[y1:y2, x1:x2] >= 80


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def score(task) -> tuple[str, list[float], list[float], float]:
    """One crop: Dice of the three methods, of every grid method, and of the cell outline."""
    item, fit = task
    rgb, nucleus, cell = load(item)
    main = [dice(NucleusSession(rgb, m).crop_mask(), nucleus) for m in (PLAIN_OTSU, EASY_GT, FITTED)]
    grid: list[float] = []
    if fit:
        sessions: dict[str, NucleusSession] = {}
        for method in GRID:  # one session per channel; α and the clean-up vary
            session = sessions.setdefault(method.channel, NucleusSession(rgb, method))
            raw = session.channel > combined_threshold(session.thresholds, method.alpha)
            mask = to_crop_size(clean_nucleus(raw, method.dilate), session.crop_size)
            grid.append(dice(mask, nucleus))
    fitted = NucleusSession(rgb, FITTED)
    cell_dice = dice(fitted.cell_mask(), cell)
    return item[0], main, grid, cell_dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-fit", action="store_true", help="skip the parameter grid")
    args = parser.parse_args()
    start = time.perf_counter()
    tasks = [(item, not args.no_fit) for item in items()]
    with Pool(os.cpu_count() or 1) as pool:
        results = pool.map(score, tasks, chunksize=8)
    sets = list(TARGETS)
    print(f"nucleus Dice, mean over crops ({time.perf_counter() - start:.0f} s)")
    print(f"{'set':9} {'crops':>5} {'plain Otsu M':>13} {'Easy-GT T2':>11} {'FITTED':>7} "
          f"{'ratio':>6} {'target':>7} {'cell Dice':>10}")
    for name in sets:
        rows = np.array([r[1] for r in results if r[0] == name])
        cells = np.array([r[3] for r in results if r[0] == name])
        plain, easy, fitted = rows.mean(axis=0)
        print(f"{name:9} {len(rows):5d} {plain:13.4f} {easy:11.4f} {fitted:7.4f} "
              f"{fitted / plain:6.3f} {TARGETS[name]:7.2f} {cells.mean():10.4f}")
    print(f"FITTED = {FITTED}")
    if args.no_fit:
        return
    table = {name: np.array([r[2] for r in results if r[0] == name]).mean(axis=0) for name in sets}
    order = sorted(range(len(GRID)), key=lambda i: -min(table[n][i] - TARGETS[n] for n in sets))
    print("\njoint fit, best 10 by the smaller margin to the targets:")
    print(f"{'channel':16} {'alpha':>5} {'dilate':>6} " + " ".join(f"{n:>9}" for n in sets) + "  min margin")
    for i in order[:10]:
        m = GRID[i]
        margin = min(table[n][i] - TARGETS[n] for n in sets)
        print(f"{m.channel:16} {m.alpha:5.2f} {m.dilate:6.2f} "
              + " ".join(f"{table[n][i]:9.4f}" for n in sets) + f"  {margin:+.4f}")
    best_each = {n: max(range(len(GRID)), key=lambda i: table[n][i]) for n in sets}
    for n, i in best_each.items():
        m = GRID[i]
        others = ", ".join(f"{o} {table[o][i]:.4f}" for o in sets if o != n)
        print(f"best for {n} alone: {m.channel} alpha={m.alpha} dilate={m.dilate}: "
              f"{table[n][i]:.4f} ({others})")


if __name__ == "__main__":
    main()
