"""A decision in Tools → Duplicate cells… on a page of 30 big groups: how long the Tk thread is busy.

The real window under Xvfb over a temporary project of BCCD photos (the VOC boxes imported as
expert-a), with 200 duplicate groups of 8-20 cells written into expert-a's files as a search
would leave them (the first page: 30 groups, ~450 crops). The review opens as "lead", as when a
lead reviews an expert (expert-a's files are written as each decision is made), waits until every
crop is shown, then makes 20 decisions through the widgets (Not the same cell, Keep this one,
Confirm group, Ctrl+Z): each timed from the button's invoke / the key event to the end of the
following ``update`` (layout and redraw included). Baseline, in the same run and window: a full
page rebuild (``render()`` + ``update_idletasks``), which every decision used to do.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/dedup_review_speed.py
"""
from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
import tkinter as tk
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raabin_labeler.app.settings import Settings  # noqa: E402
from raabin_labeler.core.project import Project  # noqa: E402
from raabin_labeler.core.project_dedup import EVIDENCE, cell_ref  # noqa: E402
from raabin_labeler.ui.app import Session  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"
GROUPS = 200
DECISIONS = 20
KINDS = ("Not the same cell", "Ctrl+Z", "Keep this one", "Confirm group")
REBUILDS = 10


def make_project(where: Path) -> Project:
    """BCCD imported as expert-a, then GROUPS groups of look-alikes marked across photos."""
    cli = [str(Path(sys.executable).with_name("raabin-labeler"))]
    subprocess.run([*cli, "init", str(where), "--images", str(DATA / "JPEGImages")], check=True,
                   capture_output=True)
    subprocess.run([*cli, "import", str(where), "--format", "voc", str(DATA / "Annotations"), "--as", "expert-a"],
                   check=True, capture_output=True)
    project = Project.open(where)
    rng = random.Random(13)
    annotations = {image: project.load("expert-a", image) for image in project.images()}
    pool = [(image, cell.id) for image, a in annotations.items() if a for cell in a.cells]
    rng.shuffle(pool)
    marks: dict[str, dict[str, tuple[str, dict]]] = {}  # image -> cell id -> (keeper ref, evidence)
    for _ in range(GROUPS):
        size = rng.randint(8, 20)
        keeper, members = pool.pop(), [pool.pop() for _ in range(size - 1)]
        for image, cell_id in members:
            evidence = {"ahash": rng.randint(0, 10), "phash": rng.randint(0, 13), "ncc": rng.uniform(0.9, 1),
                        "texture_ncc": rng.uniform(0.5, 1)}
            marks.setdefault(image, {})[cell_id] = (cell_ref(*keeper), evidence)
    for image, cells in marks.items():
        a = annotations[image]
        project.save(a.with_cells([replace(c, duplicate_of=cells[c.id][0], extra={**c.extra, EVIDENCE: cells[c.id][1]})
                                   if c.id in cells else c for c in a.cells]))
    return project


def pump(root: tk.Misc, condition, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("timed out")
        root.update()
        time.sleep(0.005)


def buttons(widget: tk.Misc, text: str) -> list[tk.Misc]:
    found = [widget] if widget.winfo_class() == "TButton" and widget.cget("text") == text else []
    for child in widget.winfo_children():
        found += buttons(child, text)
    return found


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dedup-review-") as tmp:
        project = make_project(Path(tmp) / "P")
        root = tk.Tk()
        root.geometry("1400x900+0+0")
        window = Session(root, Settings(expert="lead")).start(project.root, "lead")
        assert window is not None
        pump(root, lambda: window.canvas.winfo_ismapped())
        window.run("dedup.review")
        view = window.dedup_review
        pump(root, lambda: view.crops_loaded)
        root.update()
        crops = sum(len(g.members) + 1 for g in view.ctl.groups[:view.shown])
        print(f"{len(view.ctl.groups)} groups of {view.ctl.author}; page of {view.shown} groups, {crops} crops")

        def timed(act) -> float:
            start = time.perf_counter()
            act()
            root.update()
            return time.perf_counter() - start

        def decision(i: int):
            row = view.rows[(i * 7) % len(view.rows)]
            kind = KINDS[i % 4]
            if kind == "Ctrl+Z":
                return lambda: view.top.event_generate("<Control-z>")
            return buttons(row, kind)[-1 if kind == "Keep this one" else 0].invoke

        view.top.focus_force()
        root.update()
        decided = [timed(decision(i)) for i in range(DECISIONS)]

        def rebuild() -> None:
            view.render()
            view.list_canvas.update_idletasks()

        rebuilt = [timed(rebuild) for _ in range(REBUILDS)]
        assert window.errors == [], window.errors
        window.close()
    d, r = statistics.median(decided), statistics.median(rebuilt)
    print(f"  full page rebuild (baseline, render()): median {r * 1000:.0f} ms, max {max(rebuilt) * 1000:.0f} ms "
          f"({REBUILDS} runs)")
    print(f"  one decision (Tk thread, {DECISIONS} decisions): median {d * 1000:.0f} ms, "
          f"max {max(decided) * 1000:.0f} ms")
    for k, kind in enumerate(KINDS):
        print(f"    {kind:<18} median {statistics.median(decided[k::4]) * 1000:.0f} ms")
    print(f"decision: median {d * 1000:.0f} ms, max {max(decided) * 1000:.0f} ms; "
          f"ratio rebuild / decision {r / d:.1f}x")


if __name__ == "__main__":
    main()
