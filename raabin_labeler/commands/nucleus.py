"""``raabin-labeler nucleus CROPS_DIR --out DIR``: Easy-GT masks, one PNG per crop, same stem.

Crops of any size and any format Pillow reads; each mask has its crop's size and the values of
FORMAT.md (0 background, 128 cytoplasm from the automatic cell outline, 255 nucleus), or 0/255
with ``--nucleus-only``. Runs in processes over all cores; a crop that cannot be read is
reported by name and the others are still done (issue 6, "Batch"). Masks already in the output
folder are kept (``--overwrite`` makes them again): a re-run after an interruption or after
hand corrections only adds the missing ones.

Speed (issue 6: ≥ 200 crops/s/core on 575×575, benchmarks/nucleus_speed.py): a JPEG crop is
decoded by OpenCV straight at the batch's working side (libjpeg's 1/2, 1/4, 1/8 scaling), the
masks are computed at that side and drawn at the crop's size, and the PNG is compressed by
zlib-ng with deflate's run-length strategy (masks are long runs of three values; core/png.py).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..core.imageio import DEFAULT_MAX_PIXELS, ImageError, image_info, open_image, to_array
from ..core.jobs import Job, PoolRunner, Runner
from ..core.nucleus import BATCH_WORK_SIZE, batch_mask
from ..core.jpeg_header import jpeg_frames
from ..core.png import encode_gray_png
from ..errors import UserError
from ..progress import report_failures, run_job_with_bar


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "nucleus", help="Easy-GT nucleus masks for a folder of cell crops",
        description="Write one mask PNG per crop (same stem, crop's size): 255 nucleus, 128 "
                    "cytoplasm, 0 background. Every file in CROPS_DIR that Pillow can open is a crop.")
    parser.add_argument("crops", type=Path, metavar="CROPS_DIR", help="folder of cell crops")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the masks")
    parser.add_argument("--nucleus-only", action="store_true",
                        help="write 0/255 nucleus masks without the automatic cell outline")
    parser.add_argument("--overwrite", action="store_true",
                        help="make masks again for crops that already have one in DIR (default: keep them)")
    parser.add_argument("--glob", default="*", metavar="PATTERN",
                        help="only the files matching PATTERN, e.g. '*.bmp' in a folder that also holds masks")
    parser.set_defaults(run=run)


def find_crops(folder: Path, pattern: str = "*") -> list[Path]:
    """The image files directly in ``folder`` (extensions Pillow registers) whose names match
    ``pattern``, sorted by name."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of crops")
    known = set(Image.registered_extensions())
    crops = sorted(p for p in folder.glob(pattern)
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known)
    by_stem: dict[str, Path] = {}
    for path in crops:
        if path.stem in by_stem:
            raise UserError(f"{by_stem[path.stem].name} and {path.name} would both give {path.stem}.png; "
                            f"rename one of them, or choose the crops with --glob '*{by_stem[path.stem].suffix}'")
        by_stem[path.stem] = path
    return crops


#: OpenCV's reduced JPEG decodes by scale factor.
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
            4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
def read_crop(path: Path, side: int) -> tuple[tuple[int, int], np.ndarray]:
    """(the crop's displayed (width, height), its RGB pixels at ≥ ``side`` px where cheaper).

    A JPEG is decoded by OpenCV at the largest 1/2ⁿ scale that keeps both sides ≥ ``side``
    (both decoders apply the EXIF orientation). Its size is read from its frame header, turned
    as the decode shows (saves Pillow's header reading, 0.1 ms of the 0.7 ms read); when the
    decode cannot tell (a turned crop of nearly square size), from Pillow's header reading.
    Anything OpenCV does not decode to the expected shape goes through Pillow, whose errors
    name the file (ImageError).
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: non-ASCII paths on Windows
    except OSError:
        data = np.zeros(0, np.uint8)  # image_info below names the problem
    stored = _jpeg_size(data)
    exact = stored is None or stored[0] * stored[1] > DEFAULT_MAX_PIXELS
    if exact:
        info = image_info(path)  # header only: the exact size, and a clear error for a non-image
        stored = (info.width, info.height)
    width, height = stored
    factor = 1
    if data[:3].tobytes() == b"\xff\xd8\xff":  # JPEG
        while factor < 8 and -(-min(width, height) // (2 * factor)) >= side:
            factor *= 2
    bgr = cv2.imdecode(data, _REDUCED[factor])
    shape = (-(-height // factor), -(-width // factor))
    if bgr is not None and (bgr.shape[:2] == shape or (not exact and bgr.shape[:2] == shape[::-1])):
        if not exact and shape == shape[::-1] and width != height:  # turned or not, the decode is square
            info = image_info(path)
            width, height = info.width, info.height
        elif bgr.shape[:2] != shape:  # turned by its EXIF orientation
            width, height = height, width
        return (width, height), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    info = image_info(path)
    return (info.width, info.height), to_array(open_image(path))


def _jpeg_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) as stored in a JPEG's frame header; None if ``data`` is not such a JPEG."""
    frames = jpeg_frames(data[:65536].tobytes())  # headers come first
    if not frames or not (frames[0].width and frames[0].height):
        return None
    return frames[0].width, frames[0].height


def write_mask(task: tuple[Path, Path, bool]) -> Path:
    """Worker: one crop in, one mask PNG out (runs in a pool process; no shared state)."""
    crop, out_dir, nucleus_only = task
    try:
        size, rgb = read_crop(crop, BATCH_WORK_SIZE)
    except ImageError as exc:  # re-raised plainly: the pool must pickle it back
        raise ValueError(str(exc)) from None
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        # no colour, no nucleus to find: an empty mask written as a success would stay (re-runs keep masks)
        raise ValueError(f"{crop}: a greyscale crop; the nucleus is found by its colour (Giemsa violet)")
    mask = batch_mask(rgb, size, nucleus_only)
    target = out_dir / f"{crop.stem}.png"
    png = encode_gray_png(mask)
    # a whole file or none: an interrupted run never leaves a cut-off PNG under the mask's name
    # (no fsync: the masks can be made again, and 200 a second would each wait on the disk)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(png)
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    return target


def make_masks(crops: list[Path], out_dir: Path, nucleus_only: bool = False,
               runner: Runner | None = None) -> tuple[int, list[str]]:
    """Masks for ``crops`` into ``out_dir``: (number written, one error line per failed crop)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(crop, out_dir, nucleus_only) for crop in crops]
    job = Job("nucleus", write_mask, tasks, runner=runner or PoolRunner(processes=True, chunk=8),
              describe=lambda task: task[0].name)
    # One OpenCV thread in each pool process: the processes already keep every core busy, and
    # OpenCV's own thread per core in each only adds hand-overs (8 % more CPU per mask, 0.64
    # of 7.5 ms on 575-px crops). Set here, in the calling process, so the forked workers start
    # with it: reconfiguring OpenCV's threads inside a forked worker can hang it.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return run_job_with_bar(job, "nucleus")
    finally:
        cv2.setNumThreads(threads)


def _check_writable(folder: Path) -> None:
    """Once, before the work: a folder that cannot take the masks fails every crop otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".raabin-write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"{folder}: cannot write the masks there ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    crops = find_crops(args.crops, args.glob)
    if not crops:
        raise UserError(f"{args.crops}: no image files (jpg, png, bmp, tif…) in this folder"
                        + ("" if args.glob == "*" else f" matching {args.glob}"))
    clash = next((c for c in crops if (args.out / f"{c.stem}.png").resolve() == c.resolve()), None)
    if clash is not None:
        raise UserError(f"{clash}: its mask would be written over the crop itself; choose another --out")
    # A mask already there may have been corrected by hand, or be the work of a run that was
    # interrupted (each file is written whole): kept unless asked, so a re-run only adds.
    has_mask = [not args.overwrite and (args.out / f"{c.stem}.png").is_file() for c in crops]
    kept = [c for c, has in zip(crops, has_mask) if has]
    todo = [c for c, has in zip(crops, has_mask) if not has]
    if todo:
        _check_writable(args.out)
    written, errors = make_masks(todo, args.out, args.nucleus_only) if todo else (0, [])
    print(f"{written} masks written to {args.out}")
    if kept:
        print(f"{len(kept)} crops already had a mask there, kept as it was (--overwrite to make them again)")
    return report_failures(errors, len(todo), "crops")
