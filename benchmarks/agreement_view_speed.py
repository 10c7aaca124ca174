"""Tools → Agreement… on 40,000 cells over 640 photos (issue 7: "the view opens in ≤ 1 s").

Timed in the real window under a Tk display, from the menu command to the matrix heatmap and the
figures on screen:
- baseline: a cold open, nothing read before (every file parsed and paired on the spot);
- ours: the usual case, opened after the labeling window's background warm-up has run (files
  parsed and cells paired once, kept until a file changes; only changed files are re-read).

Run: ``xvfb-run -a .venv/bin/python benchmarks/agreement_view_speed.py [--repeats 5]``. Medians.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import tkinter as tk
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import agreement_speed  # noqa: E402  (the 40,000-cell project generator)

from raabin_labeler.app.settings import Settings  # noqa: E402
from raabin_labeler.core.formats.importer import import_annotations  # noqa: E402
from raabin_labeler.core.project import Project  # noqa: E402
from raabin_labeler.ui.app import Session, _warm_up_agreement_view  # noqa: E402


def open_view(project_root: Path, warm: bool) -> float:
    """Seconds from Tools → Agreement… to the matrix and figures drawn."""
    root = tk.Tk()
    root.geometry("1400x900+0+0")
    window = Session(root, Settings(expert="lead")).start(project_root, "lead")
    assert window is not None
    for _ in range(10):
        root.update()
    if warm:
        _warm_up_agreement_view(window.controller.project)
        for thread in [t for t in threading.enumerate() if t.name == "warm-up"]:
            while thread.is_alive():
                root.update()
                time.sleep(0.01)
    start = time.perf_counter()
    window.run("agreement.open")
    view = window.agreement_view
    while not view.loaded:
        root.update()
        time.sleep(0.002)
    root.update()  # the heatmap is drawn on idle
    took = time.perf_counter() - start
    window.close()  # destroys the Tk root too
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agreement-view-") as tmp:
        images, src = agreement_speed.make_sources(Path(tmp), random.Random(7))
        project = Project.create(Path(tmp) / "P", images=images, experts=["A", "B"])
        import_annotations(project, "raabin", src, ["A", "B"])
        cold = [open_view(project.root, warm=False) for _ in range(args.repeats)]
        warm = [open_view(project.root, warm=True) for _ in range(args.repeats)]
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"{agreement_speed.CELLS} cells on {agreement_speed.PHOTOS} photos; median of {args.repeats} opens")
    print(f"  cold (baseline: every file read and paired on opening) {c:.2f} s  (runs {', '.join(f'{x:.2f}' for x in cold)})")
    print(f"  after the background warm-up                          {w:.2f} s  (runs {', '.join(f'{x:.2f}' for x in warm)})")
    print(f"view with matrix and figures: {w:.2f} s (target <= 1 s: {'met' if w <= 1 else 'MISSED'}); "
          f"ratio cold / warm {c / w:.1f}x")


if __name__ == "__main__":
    main()
