"""Detector speed on one core per 4160×3120 photo (issue 4: ≤ 150 ms after decode).

Baseline, measured in the same run: one full decode of the same photo. The photo is made from
real BCCD frames (upscaled 2× and tiled, so a WBC is ~400 px across as on a 13 MP phone photo)
and written to a temporary JPEG. Prints medians of several runs:

    .venv/bin/python benchmarks/detection_speed.py [--runs 9] [--data ../shared/data/bccd]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: before numpy/cv2 start their pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from raabin_labeler.core.detection import DECODE_SIDE, default_model, detect_photo, propose_cells  # noqa: E402
from raabin_labeler.core.imageio import open_image, open_reduced  # noqa: E402

WIDTH, HEIGHT = 4160, 3120


def make_photo(bccd: Path, path: Path) -> int:
    """Tile 2×-upscaled BCCD train frames into a 4160×3120 JPEG; returns the WBCs it shows."""
    frames = sorted((bccd / "JPEGImages").glob("*.jpg"))[:16]
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for k, frame in enumerate(frames):
        tile = cv2.resize(np.asarray(Image.open(frame).convert("RGB")), (1280, 960), interpolation=cv2.INTER_CUBIC)
        y, x = (k // 4) * 960, (k % 4) * 1280
        if y < HEIGHT and x < WIDTH:
            canvas[y:y + 960, x:x + 1280] = tile[:HEIGHT - y, :WIDTH - x]
    Image.fromarray(canvas).save(path, quality=92)
    return len(frames)


def median_ms(func, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    model = default_model()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "smear_4160x3120.jpg"
        make_photo(Path(args.data), path)
        full = np.asarray(open_image(path))
        reduced = np.asarray(open_reduced(path, DECODE_SIDE)[0])
        propose_cells(reduced, model)  # warm-up: imports, caches
        decode_full = median_ms(lambda: open_image(path), args.runs)
        decode_reduced = median_ms(lambda: open_reduced(path, DECODE_SIDE), args.runs)
        detect_reduced = median_ms(lambda: propose_cells(reduced, model), args.runs)
        detect_full = median_ms(lambda: propose_cells(full, model), args.runs)
        end_to_end = median_ms(lambda: detect_photo(path, model), args.runs)
        found = len(detect_photo(path, model))
    print(f"photo {WIDTH}x{HEIGHT} JPEG, one core, median of {args.runs} runs; {found} WBCs proposed")
    print(f"baseline full decode            {decode_full:7.1f} ms  (ratio 1.00)")
    print(f"reduced decode (draft, ≤{DECODE_SIDE} px)  {decode_reduced:7.1f} ms  (ratio {decode_reduced / decode_full:.2f})")
    print(f"detection after reduced decode  {detect_reduced:7.1f} ms  (ratio {detect_reduced / decode_full:.2f})")
    print(f"detection on the full array     {detect_full:7.1f} ms  (ratio {detect_full / decode_full:.2f})")
    print(f"detect_photo (decode + detect)  {end_to_end:7.1f} ms  (ratio {end_to_end / decode_full:.2f})")
    print(f"target: detection after decode <= 150 ms: {'met' if detect_reduced <= 150 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
