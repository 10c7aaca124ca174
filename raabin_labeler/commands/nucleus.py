"""``raabin-labeler nucleus CROPS_DIR --out DIR``: Easy-GT masks, one PNG per crop, same stem.

Crops of any size and any format Pillow reads; each mask has its crop's size and the values of
FORMAT.md (0 background, 128 cytoplasm from the automatic cell outline, 255 nucleus), or 0/255
with ``--nucleus-only``. Runs in processes over all cores; a crop that cannot be read is
reported by name and the others are still done (issue 6, "Batch").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.imageio import ImageError, open_image, to_array
from ..core.jobs import Finished, ItemDone, Job, PoolRunner, Runner
from ..core.nucleus import FITTED, NUCLEUS, NucleusSession, compose_mask
from ..errors import UserError
from ..progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "nucleus", help="Easy-GT nucleus masks for a folder of cell crops",
        description="Write one mask PNG per crop (same stem, crop's size): 255 nucleus, 128 "
                    "cytoplasm, 0 background. Every file in CROPS_DIR that Pillow can open is a crop.")
    parser.add_argument("crops", type=Path, metavar="CROPS_DIR", help="folder of cell crops")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the masks")
    parser.add_argument("--nucleus-only", action="store_true",
                        help="write 0/255 nucleus masks without the automatic cell outline")
    parser.set_defaults(run=run)


def find_crops(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (extensions Pillow registers), sorted by name."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of crops")
    known = set(Image.registered_extensions())
    crops = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known)
    by_stem: dict[str, Path] = {}
    for path in crops:
        if path.stem in by_stem:
            raise UserError(f"{by_stem[path.stem].name} and {path.name} would both give {path.stem}.png; "
                            "rename one of them")
        by_stem[path.stem] = path
    return crops


def write_mask(task: tuple[Path, Path, bool]) -> Path:
    """Worker: one crop in, one mask PNG out (runs in a pool process; no shared state)."""
    crop, out_dir, nucleus_only = task
    try:
        rgb = to_array(open_image(crop))
    except ImageError as exc:  # re-raised plainly: the pool must pickle it back
        raise ValueError(str(exc)) from None
    session = NucleusSession(rgb, FITTED)
    nucleus = session.crop_mask()
    if nucleus_only:
        mask = np.where(nucleus, NUCLEUS, 0).astype(np.uint8)
    else:
        mask = compose_mask(session.cell_mask(), nucleus)
    target = out_dir / f"{crop.stem}.png"
    Image.fromarray(mask, mode="L").save(target, compress_level=1)  # masks are tiny anyway
    return target


def make_masks(crops: list[Path], out_dir: Path, nucleus_only: bool = False,
               runner: Runner | None = None) -> tuple[int, list[str]]:
    """Masks for ``crops`` into ``out_dir``: (number written, one error line per failed crop)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(crop, out_dir, nucleus_only) for crop in crops]
    job = Job("nucleus", write_mask, tasks, runner=runner or PoolRunner(processes=True),
              describe=lambda task: task[0].name)
    errors: list[str] = []
    written = 0
    with ProgressBar(len(tasks), "nucleus") as bar:
        # Run on a thread so the bar is drawn while the pool works.
        job.start()
        while True:
            event = job.events.get()
            if isinstance(event, ItemDone):
                outcome = event.outcome
                if outcome.error is None:
                    written += 1
                else:
                    text = outcome.error.split(": ", 1)[-1]
                    name = str(outcome.item[0])
                    errors.append(text if name in text else f"{name}: {text}")
                bar.update(written + len(errors), outcome.item[0].name)
            elif isinstance(event, Finished):
                if event.last_error and event.done < event.total:
                    errors.append(f"the job stopped early: {event.last_error}")
                break
    return written, errors


def run(args: argparse.Namespace) -> int:
    crops = find_crops(args.crops)
    if not crops:
        raise UserError(f"{args.crops}: no image files (jpg, png, bmp, tif…) in this folder")
    written, errors = make_masks(crops, args.out, args.nucleus_only)
    for line in errors:
        print(f"raabin-labeler: {line}", file=sys.stderr)
    print(f"{written} masks written to {args.out}")
    if errors:
        raise UserError(f"{len(errors)} of {len(crops)} crops failed (listed above)")
    return 0
