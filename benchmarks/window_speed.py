"""Labeling-window speed on 16 MP phone photos (issue 3), under a real Tk display.

Prints, with a baseline measured in the same run:
- first paint of the next photo when moving forward (prefetch on) vs. a plain full PIL
  decode + PhotoImage of the whole photo (the naive viewer);
- time until full detail is on screen;
- ms per motion event while dragging one box among 100;
- opening a folder of 500 such photos (time) and resident memory after paging through it.

Run: xvfb-run -a python benchmarks/window_speed.py   (needs ../shared/data/bccd)
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
import tkinter as tk
from pathlib import Path

from PIL import Image, ImageTk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raabin_labeler.app.settings import Settings  # noqa: E402
from raabin_labeler.core.annotation import Box, Cell  # noqa: E402
from raabin_labeler.core.project import Project  # noqa: E402
from raabin_labeler.ui.app import Session  # noqa: E402

BCCD = REPO.parent / "shared" / "data" / "bccd" / "JPEGImages"
W, H = 4160, 3120
PHOTOS = 20
EXPERT_PAUSE = 1.0  # seconds an expert spends on a photo before moving on (prefetch time)


def make_photos(folder: Path) -> list[Path]:
    sources = sorted(BCCD.glob("*.jpg"))[:PHOTOS]
    paths = []
    for i, src in enumerate(sources):
        path = folder / f"IMG_{i:04d}.jpg"
        Image.open(src).convert("RGB").resize((W, H), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def pump(root: tk.Tk, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        root.update()
        time.sleep(0.005)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    os.environ.setdefault("RAABIN_LABELER_CONFIG", tempfile.mkdtemp())
    tmp = Path(tempfile.mkdtemp())
    (tmp / "photos").mkdir()
    photos = make_photos(tmp / "photos")
    root = tk.Tk()
    root.geometry("1600x1000+0+0")

    # Baseline: what a naive viewer does for each photo.
    naive = []
    for path in photos:
        t0 = time.perf_counter()
        im = Image.open(path)
        im.load()
        ref = ImageTk.PhotoImage(im, master=root)
        naive.append((time.perf_counter() - t0) * 1000)
        del ref

    project = Project.create(tmp / "project", images=tmp / "photos")
    window = Session(root, Settings(expert="bench")).start(project.root, "bench")
    pump(root, 2.0)
    c, canvas = window.controller, window.canvas
    first_paint, full_detail = [], []
    for _ in range(len(photos) - 1):
        pump(root, EXPERT_PAUSE)
        t0 = time.perf_counter()
        c.next_photo()
        root.update_idletasks()
        first_paint.append((time.perf_counter() - t0) * 1000)
        while not (canvas.pyramid and canvas.pyramid.complete and canvas.showing_detail()):
            root.update()
            time.sleep(0.002)
        root.update_idletasks()
        full_detail.append((time.perf_counter() - t0) * 1000)

    # Dragging one box among 100.
    ann = c.annotation
    cells = [Cell.new(Box(60 + (i % 10) * 400, 60 + (i // 10) * 300, 360 + (i % 10) * 400, 340 + (i // 10) * 300))
             for i in range(100)]
    c.annotation = ann.with_cells(cells)
    canvas.refresh()
    root.update()
    target = cells[55]
    sx, sy = canvas.view.to_screen(*target.box.center)
    canvas.event_generate("<ButtonPress-1>", x=round(sx), y=round(sy))
    motion = []
    for step in range(1, 201):
        t0 = time.perf_counter()
        canvas.event_generate("<B1-Motion>", x=round(sx + step % 40), y=round(sy + step % 30), state=0x100)
        root.update_idletasks()
        motion.append((time.perf_counter() - t0) * 1000)
    canvas.event_generate("<ButtonRelease-1>", x=round(sx), y=round(sy), state=0x100)
    window.controller.autosaver.flush()

    # A folder of 500 photos: links to the same files, since only listing and paging matter.
    big = tmp / "big"
    big.mkdir()
    for i in range(500):
        os.symlink(photos[i % len(photos)], big / f"IMG_{i:04d}.jpg")
    big_project = Project.create(tmp / "bigproject", images=big)
    window.close()
    root = tk.Tk()
    root.geometry("1600x1000+0+0")
    t0 = time.perf_counter()
    big_window = Session(root, Settings(expert="bench")).start(big_project.root, "bench")
    root.update()
    open_ms = (time.perf_counter() - t0) * 1000
    for _ in range(30):
        big_window.controller.next_photo()
        pump(root, 0.05)
    pump(root, 1.0)
    rss = rss_mb()
    big_window.close()

    print(f"photos: {len(photos)} of {W}x{H} JPEG")
    print(f"baseline full decode + PhotoImage: median {statistics.median(naive):.0f} ms, p95 {pct(naive, .95):.0f} ms")
    print(f"first paint of next photo:         median {statistics.median(first_paint):.1f} ms, "
          f"p95 {pct(first_paint, .95):.1f} ms (target <= 50 ms p95)")
    print(f"  ratio baseline/first paint (median): {statistics.median(naive) / statistics.median(first_paint):.1f}x")
    print(f"full detail on screen:             median {statistics.median(full_detail):.0f} ms, "
          f"p95 {pct(full_detail, .95):.0f} ms (target <= 300 ms)")
    print(f"drag one of 100 boxes:             median {statistics.median(motion):.2f} ms, "
          f"p95 {pct(motion, .95):.2f} ms per motion event (target <= 16 ms)")
    print(f"500-photo folder: opened in {open_ms:.0f} ms (target < 1000 ms); "
          f"resident memory after 30 photos {rss:.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
