"""Speed of the Easy-GT nucleus masks on 575×575 crops (issue 6: batch ≥ 200 crops/s/core,
live slider ≤ 16 ms from slider move to updated overlay).

Crops: squares around the BCCD WBC boxes, resized to 575×575 (the Raabin crop size).
Baselines, measured in the same run: the threshold method (FITTED_THRESHOLD) written plainly
(float64 gray world and CMYK, scikit-image Otsu on the image, scipy labelling and hole
filling), as in the Easy-GT program; and for the batch end to end (JPEG read, masks, PNG
write) the command's first worker (Pillow decode at full size, the 575 session of the threshold
method, nucleus and outline each cleaned, Pillow PNG) and the previous worker (threshold method
at 288 from a 1/2 JPEG decode, OpenCV PNG). The current worker runs the per-pixel model
(FITTED) at 144 from a 1/4 JPEG decode. Figures are medians over repeats (the machine is
shared and noisy: the per-CPU-second column is what one free core gives).

    .venv/bin/python benchmarks/nucleus_speed.py
"""
from __future__ import annotations

import csv
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu

from raabin_labeler.commands.nucleus import _PNG_FAST, make_masks, read_crop, write_mask
from raabin_labeler.core.imageio import open_image, to_array
from raabin_labeler.core.nucleus import (FITTED, FITTED_THRESHOLD, NUCLEUS, WORK_SIZE, NucleusSession,
                                         compose_mask)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CROPS = 40
REPEATS = 5


def crops() -> list[np.ndarray]:
    out = []
    with open(DATA / "bccd" / "wbc_boxes_corrected.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:CROPS]
    for row in rows:
        image = np.asarray(Image.open(DATA / "bccd" / "JPEGImages" / f"{row['image']}.jpg").convert("RGB"))
        x1, y1, x2, y2 = (int(float(row[k])) for k in ("xmin", "ymin", "xmax", "ymax"))
        side = max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        h, w = image.shape[:2]
        sx, sy = min(max(0, cx - side // 2), max(0, w - side)), min(max(0, cy - side // 2), max(0, h - side))
        square = image[sy:sy + side, sx:sx + side]
        out.append(cv2.resize(square, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_LINEAR))
    return out


def baseline_mask(rgb: np.ndarray) -> np.ndarray:
    """The steps of FITTED_THRESHOLD written plainly, as a reference for the speed-ups."""
    f = rgb.astype(np.float64)
    means = f.reshape(-1, 3).mean(axis=0)
    balanced = np.clip(f * (means.mean() / means), 0, 255).astype(np.uint8).astype(np.float64) / 255
    blue, green = balanced[..., 2], balanced[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        channel = np.where(blue > 0, np.clip(blue - green, 0, None) / blue, 0)
    channel = np.floor(channel * 255 + 0.5).astype(np.uint8)
    t2 = threshold_otsu(channel)
    _, t3_up = threshold_multiotsu(channel, classes=3)
    mask = channel > np.floor((1 - FITTED_THRESHOLD.alpha) * t2 + FITTED_THRESHOLD.alpha * t3_up)
    labels, count = ndi.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        mask = np.isin(labels, np.flatnonzero(sizes >= sizes.max() / 10) + 1)
    mask = ndi.binary_fill_holes(mask)
    radius = int(round(FITTED_THRESHOLD.dilate * np.sqrt(mask.sum())))
    if radius:
        yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        mask = ndi.binary_dilation(mask, yy ** 2 + xx ** 2 <= radius ** 2)
    return mask


def old_write_mask(task: tuple[Path, Path, bool]) -> Path:
    """The batch worker before the speed work: the baseline of the end-to-end figures."""
    crop, out_dir, nucleus_only = task
    session = NucleusSession(to_array(open_image(crop)), FITTED_THRESHOLD)
    nucleus = session.crop_mask()
    if nucleus_only:
        mask = np.where(nucleus, NUCLEUS, 0).astype(np.uint8)
    else:
        mask = compose_mask(session.cell_mask(), nucleus)
    target = out_dir / f"{crop.stem}.png"
    Image.fromarray(mask, mode="L").save(target, compress_level=1)
    return target


def previous_write_mask(task: tuple[Path, Path, bool]) -> Path:
    """The previous batch worker: the threshold method at 288 from a 1/2 JPEG decode."""
    crop, out_dir, nucleus_only = task
    size, rgb = read_crop(crop, 288)
    mask = NucleusSession(rgb, FITTED_THRESHOLD, 288).automatic_mask(size, nucleus_only)
    target = out_dir / f"{crop.stem}.png"
    target.write_bytes(cv2.imencode(".png", mask, _PNG_FAST)[1].tobytes())
    return target


def nucleus_and_cell(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = NucleusSession(rgb, FITTED)
    return session.crop_mask(), session.cell_mask()


def per_second(func, items, clock=time.perf_counter) -> float:
    """Median over REPEATS of items per second, one core (``clock``: wall or this process' CPU)."""
    rates = []
    for _ in range(REPEATS):
        start = clock()
        for item in items:
            func(item)
        rates.append(len(items) / (clock() - start))
    return statistics.median(rates)


def main() -> None:
    cv2.setNumThreads(1)  # one core: the batch runs one process per core
    images = crops()
    base = per_second(baseline_mask, images)
    nucleus = per_second(lambda rgb: NucleusSession(rgb, FITTED).crop_mask(), images)
    full = per_second(nucleus_and_cell, images)
    print(f"575x575 crops, one core, median of {REPEATS} x {len(images)} crops")
    print(f"  baseline (plain numpy/scipy/skimage) : {base:7.1f} crops/s")
    # On a shared machine the wall clock counts time other processes held the core; the CPU
    # clock of this process is what one free core would give.
    base_cpu = per_second(baseline_mask, images, time.process_time)
    nucleus_cpu = per_second(lambda rgb: NucleusSession(rgb, FITTED).crop_mask(), images, time.process_time)
    print(f"  nucleus mask (NucleusSession)        : {nucleus:7.1f} crops/s  ratio {nucleus / base:5.2f}  target 200")
    print(f"  the same per CPU second              : {nucleus_cpu:7.1f} crops/s  ratio {nucleus_cpu / base_cpu:5.2f}"
          f"  (baseline {base_cpu:.1f})")
    print(f"  nucleus + cell outline               : {full:7.1f} crops/s  ratio {full / base:5.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "crops"
        folder.mkdir()
        for i, rgb in enumerate(images):
            Image.fromarray(rgb).save(folder / f"crop{i:03d}.jpg", quality=95)  # as Raabin's crops
        paths = sorted(folder.iterdir())
        (Path(tmp) / "masks1").mkdir()
        print("batch end to end (JPEG read + masks + PNG write), one worker, crops/s "
              "(wall | per CPU second), target 200")
        rates = {}
        for label, func, only in (("old worker (baseline)", old_write_mask, False),
                                  ("previous worker, 288", previous_write_mask, False),
                                  ("write_mask, 0/128/255", write_mask, False),
                                  ("old worker --nucleus-only", old_write_mask, True),
                                  ("write_mask --nucleus-only", write_mask, True)):
            tasks = [(p, Path(tmp) / "masks1", only) for p in paths]
            wall = per_second(func, tasks)
            cpu = per_second(func, tasks, time.process_time)
            rates[label] = (wall, cpu)
            old = rates["old worker (baseline)" if not only else "old worker --nucleus-only"]
            print(f"  {label:27}: {wall:7.1f} | {cpu:7.1f}   ratio {wall / old[0]:5.2f} | {cpu / old[1]:5.2f}")
        many = paths * 10
        walls = []
        for run in range(3):
            start = time.perf_counter()
            written, errors = make_masks(many, Path(tmp) / f"masks{run + 2}")
            walls.append(written / (time.perf_counter() - start))
        both = statistics.median(walls)
        print(f"  batch command, {len(many)} crops, 2 processes: {both:7.1f} crops/s wall, median of 3 "
              f"(incl. pool start; {len(errors)} errors); {both / 2:.1f} per core, "
              f"ratio {both / rates['old worker (baseline)'][0]:.2f} to the old worker on one core")

    session_times, overlay_times, moves = [], [], []
    for rgb in images[:10]:
        start = time.perf_counter()
        session = NucleusSession(rgb, FITTED)
        session_times.append(time.perf_counter() - start)
        base_t = session.auto_threshold
        for step in (-20, -10, -5, -1, 1, 5, 10, 20) * 4:
            start = time.perf_counter()
            session.overlay(int(np.clip(base_t + step, 0, 255)))
            overlay_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            session.channel > base_t + step  # the comparison alone, for reference
            moves.append(time.perf_counter() - start)
    over = statistics.median(overlay_times) * 1000
    print(f"live slider on 575x575: overlay update (compare + clean-up + blend) median {over:.2f} ms, "
          f"95th pct {np.percentile(overlay_times, 95) * 1000:.2f} ms, target 16 ms, ratio {16 / over:.1f}x headroom")
    print(f"  comparison alone {statistics.median(moves) * 1000:.2f} ms; "
          f"preparing a crop (once, Otsu) {statistics.median(session_times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
