"""``raabin-labeler dedup PROJECT`` / ``dedup --crops DIR --report FILE``: duplicate cells.

Nothing is deleted: the report lists, per cell seen more than once, the crop kept (the
sharpest) and the crops that duplicate it, with the distances behind the decision (issue 5).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from raabin_labeler.commands import warn_orphans
from raabin_labeler.core import dedup
from raabin_labeler.core.project import CONSENSUS, DETECTOR, Project
from raabin_labeler.core.project_dedup import find_project_duplicates, mark_duplicates
from raabin_labeler.core.store import atomic_write_text
from raabin_labeler.errors import UserError
from raabin_labeler.progress import ProgressBar

CROP_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dedup", help="find duplicate cells (the sharpest is kept)",
                            description="Find the same cell photographed more than once.")
    parser.add_argument("project", nargs="?", type=Path,
                        help="a project folder: mark duplicate_of on one author's cells")
    parser.add_argument("--who", help="whose cells to search in a project (default: the detector's, "
                                      "or the only author)")
    parser.add_argument("--crops", type=Path, help="a folder of cell crops (searched recursively)")
    parser.add_argument("--report", type=Path, help="JSON file listing the groups found")
    parser.add_argument("--glob", default="*", metavar="PATTERN",
                        help="with --crops: only files matching PATTERN, e.g. '*.bmp' beside masks")
    parser.add_argument("--mode", choices=("robust", "paper"), default="robust",
                        help="robust (default) or the paper's exact rule: aHash < 11 and pHash < 14")
    parser.set_defaults(run=run)


def crop_files(folder: Path, pattern: str = "*") -> list[Path]:
    """Image files under ``folder`` whose names match ``pattern``, in a stable order."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of crops")
    files = sorted(p for p in folder.rglob(pattern) if p.is_file() and p.suffix.lower() in CROP_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no crops found (expected {', '.join(sorted(CROP_SUFFIXES))} files"
                        + (")" if pattern == "*" else f" matching {pattern})"))
    return files


def write_report(path: Path, groups: list[dedup.DuplicateGroup]) -> None:
    atomic_write_text(path, json.dumps([asdict(g) for g in groups], indent=1) + "\n", keep_backup=False)


def hashing_then_comparing(bar: ProgressBar) -> Callable[[int, int], None]:
    """The bar follows the hashing, then says the comparison runs (minutes at 40,000 crops in
    robust mode: without a word the terminal would look stuck on a full bar)."""
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done, "comparing crops…" if done >= total else "")
    return progress


def comparing_photos(bar: ProgressBar) -> Callable[[int, int], None]:
    """The bar follows the photos compared for overlapping fields (before the crops are hashed)."""
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done, "photos compared")
    return progress


def run(args: argparse.Namespace) -> int:
    if args.project and args.crops:
        raise UserError("dedup: give a PROJECT or --crops DIR, not both")
    if args.report is not None and args.report.is_dir():  # found before the work, not after
        raise UserError(f"{args.report}: is a folder; --report names the JSON file to write")
    if args.project:
        return run_project(args)
    if args.crops is None or args.report is None:
        raise UserError("dedup needs a PROJECT folder, or --crops DIR and --report FILE")
    files = crop_files(args.crops, args.glob)
    names = [p.relative_to(args.crops).as_posix() for p in files]
    with ProgressBar(len(files), "hash") as bar:
        groups = dedup.find_duplicates(files, names, mode=args.mode, progress=hashing_then_comparing(bar))
    write_report(args.report, groups)
    dropped = sum(len(g.drop) for g in groups)
    print(f"{len(files)} crops: {len(groups)} cells seen more than once, {dropped} duplicates "
          f"to drop; report written to {args.report}")
    return 0


def run_project(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    authors = [a for a in project.authors() if a != CONSENSUS]
    who = args.who or (DETECTOR if DETECTOR in authors else authors[0] if len(authors) == 1 else None)
    if who is None:
        raise UserError(f"{project.root}: say whose cells to search with --who "
                        f"({', '.join(authors) or 'nobody has annotations yet'})")
    if who not in authors:
        raise UserError(f"{project.root}: {who!r} has no annotations here ({', '.join(authors)})")
    warn_orphans(project, [who])
    with ProgressBar(1, "hash") as bar:
        found = find_project_duplicates(project, who, mode=args.mode, progress=hashing_then_comparing(bar),
                                        fields_progress=comparing_photos(bar))
    changed = mark_duplicates(project, who, found)
    dropped = sum(len(g.drop) for g in found.groups)
    print(f"{found.cells} cells of {who}: {len(found.groups)} seen more than once, {dropped} marked "
          f"duplicate_of the sharpest copy ({changed} cell records changed)")
    for photo in found.redundant_photos:
        print(f"redundant photo (every cell is a duplicate of a cell elsewhere): {photo}")
    for problem in found.unreadable:
        print(f"left out, cannot be read: {problem}", file=sys.stderr)
    if args.report:
        write_report(args.report, found.groups)
    return 0
