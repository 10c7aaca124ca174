"""Agreement at scale (issue 7): 40,000 cells over 640 photos, imported from Raabin JSON.

Targets: import + matrix ≤ 10 s; the view's data (read + pair + matrix + figures + heatmap) ≤ 1 s.
Baseline, measured in the same run on the same files: naive matching (every cell of A against
every cell of B with ``Box.iou`` in Python, greedy by IoU, ids ignored) and a matrix counted
with ``list.index``; the ratio is baseline / ours for the matching + matrix step.

Run: ``.venv/bin/python benchmarks/agreement_speed.py [--repeats 3]``. Photos are one flat-colour
4160×3120 JPEG hard-linked 640 times (only headers are read). Timings are medians.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from raabin_labeler.app.agreement import AgreementController  # noqa: E402
from raabin_labeler.core.agreement import (  # noqa: E402
    MatrixClasses, agreement_figures, confusion_matrix, draw_heatmap, match_cells, pair_experts)
from raabin_labeler.core.formats.importer import import_annotations  # noqa: E402
from raabin_labeler.core.project import Project  # noqa: E402

PHOTOS, CELLS = 640, 40_000
W, H, SIDE = 4160, 3120, 575
NAMES = ["Neutrophil", "Band", "Meta", "Small Lymph", "Large Lymph", "Monocyte", "Eosinophil", "Basophil",
         "Burst", "Artifact", "Not recognized"]
WEIGHTS = [40, 4, 2, 18, 6, 8, 5, 1, 6, 5, 5]


def make_sources(root: Path, rng: random.Random) -> tuple[Path, Path]:
    images, src = root / "photos", root / "raabin"
    images.mkdir(parents=True)
    src.mkdir()
    first = images / "p0000.jpg"
    Image.new("RGB", (W, H), (205, 180, 195)).save(first, quality=80)
    per_photo = [CELLS // PHOTOS + (1 if i < CELLS % PHOTOS else 0) for i in range(PHOTOS)]
    for i, n in enumerate(per_photo):
        if i:
            os.link(first, images / f"p{i:04d}.jpg")
        data: dict = {"image_info": {"smear": f"S{i % 40}", "camera": ("S5", "LG G3")[i % 2]}}
        for j in range(n):
            x, y = rng.randrange(0, W - SIDE), rng.randrange(0, H - SIDE)
            l1 = rng.choices(NAMES, WEIGHTS)[0]
            roll = rng.random()
            l2 = l1 if roll < 0.8 else (None if roll < 0.85 else rng.choices(NAMES, WEIGHTS)[0])
            data[f"Cell_{j}"] = {"Label1": l1, "Label2": l2, "x1": x, "y1": y, "x2": x + SIDE, "y2": y + SIDE}
        (src / f"p{i:04d}.json").write_text(json.dumps(data))
    return images, src


def naive_matrix(images, taxonomy) -> dict:
    """The straightforward way: all-pairs IoU in Python, greedy, ids ignored; list.index counting."""
    classes = MatrixClasses(taxonomy)
    names = classes.names()
    counts = [[0] * len(names) for _ in names]
    for paired in images:
        cells_a = [p.a for p in paired.pairs if p.a is not None]
        cells_b = [p.b for p in paired.pairs if p.b is not None]
        candidates = sorted(((a.box.iou(b.box), i, j) for i, a in enumerate(cells_a) for j, b in enumerate(cells_b)),
                            reverse=True)
        used_a, used_b, pairs = set(), set(), []
        for iou, i, j in candidates:
            if iou >= 0.5 and i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                pairs.append((cells_a[i].label, cells_b[j].label))
        pairs += [(c.label, None) for i, c in enumerate(cells_a) if i not in used_a]
        pairs += [(None, c.label) for j, c in enumerate(cells_b) if j not in used_b]
        for la, lb in pairs:
            if la or lb:
                counts[names.index(classes.of(la))][names.index(classes.of(lb))] += 1
    return {"names": names, "counts": counts}


def once(root: Path, images_dir: Path, src: Path) -> dict[str, float]:
    project = Project.create(root, images=images_dir, experts=["A", "B"])
    t0 = time.perf_counter()
    import_annotations(project, "raabin", src, ["A", "B"])
    t1 = time.perf_counter()
    paired = pair_experts(project, "A", "B")
    t2 = time.perf_counter()
    leaf = confusion_matrix(paired, project.taxonomy, "A", "B", "leaf")
    agreement_figures(leaf)
    agreement_figures(confusion_matrix(paired, project.taxonomy, "A", "B", "parent"))
    t3 = time.perf_counter()
    assert leaf.total == CELLS, leaf.total
    # the view opening: read + pair in the worker, matrix + figures + heatmap on the GUI side
    ctl = AgreementController(project, "A", "B")
    v0 = time.perf_counter()
    ctl.load()
    figure = Figure(figsize=(8, 7))
    FigureCanvasAgg(figure)
    draw_heatmap(ctl.matrix, figure)
    ctl.figures.lines()
    figure.canvas.draw()
    v1 = time.perf_counter()
    m0 = time.perf_counter()
    rematched = [match_cells(p.image, [q.a for q in p.pairs if q.a], [q.b for q in p.pairs if q.b]) for p in paired]
    confusion_matrix(paired, project.taxonomy, "A", "B", "leaf")
    m1 = time.perf_counter()
    naive = naive_matrix(paired, project.taxonomy)
    m2 = time.perf_counter()
    # the same with B's ids changed, so every pair must be found by box overlap (Hungarian)
    renamed = [(p.image, [q.a for q in p.pairs if q.a], [replace(q.b, id="b-" + q.b.id) for q in p.pairs if q.b])
               for p in paired]
    m3 = time.perf_counter()
    by_iou = [match_cells(*args) for args in renamed]
    m4 = time.perf_counter()
    assert sum(map(sum, naive["counts"])) == CELLS and sum(len(r) for r in rematched) == CELLS
    assert sum(q.matched_by == "iou" for r in by_iou for q in r) >= 0.99 * CELLS
    return {"import": t1 - t0, "read+pair": t2 - t1, "matrices+figures": t3 - t2, "import+matrix": t3 - t0,
            "view": v1 - v0, "ours_match+matrix": m1 - m0, "naive_match+matrix": m2 - m1, "ours_iou_only": m4 - m3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="agreement-bench-") as tmp:
        images_dir, src = make_sources(Path(tmp), rng)
        runs = [once(Path(tmp) / f"project{r}", images_dir, src) for r in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{CELLS} cells on {PHOTOS} photos, two experts (Raabin JSON import --as A B); "
          f"median of {args.repeats} runs, seconds")
    for key in ("import", "read+pair", "matrices+figures", "import+matrix", "view"):
        print(f"  {key:<18} {med[key]:7.2f}")
    print(f"import + matrix: {med['import+matrix']:.2f} s (target <= 10 s: "
          f"{'met' if med['import+matrix'] <= 10 else 'MISSED'})")
    print(f"view data + heatmap: {med['view']:.2f} s (target <= 1 s: {'met' if med['view'] <= 1 else 'MISSED'})")
    print(f"matching + matrix: ours {med['ours_match+matrix']:.3f} s, naive all-pairs greedy "
          f"{med['naive_match+matrix']:.3f} s, ratio {med['naive_match+matrix'] / med['ours_match+matrix']:.1f}x")
    print(f"matching by box overlap only (ids hidden): ours {med['ours_iou_only']:.3f} s, "
          f"ratio naive / ours {med['naive_match+matrix'] / med['ours_iou_only']:.1f}x")


if __name__ == "__main__":
    main()
