"""``raabin-labeler export PROJECT --format F --who AUTHOR --out DIR``: cells for other tools."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.formats.exporter import WRITERS, export_annotations
from ..core.project import Project
from . import warn_orphans
from .import_ import StageBars


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export", help="export an author's cells as COCO, VOC, YOLO, Raabin JSON, crops or masks",
        description="Export one author's cells. Rejected cells and cells marked as a duplicate of "
                    "another are left out. Unlabeled cells get the category 'wbc'; other categories "
                    "are taxonomy paths (neutrophil.band).")
    parser.add_argument("project", type=Path, help="the project folder")
    parser.add_argument("--format", required=True, choices=list(WRITERS),
                        help="coco: DIR/annotations.json; voc: labelImg XML per photo; yolo: txt per "
                             "photo + classes.txt; raabin: Raabin-WBC JSON per photo; crops: square crops "
                             "of the project's box size, a folder per label, and crops.csv; masks: each "
                             "cell's mask PNG as DIR/<photo>/<cell-id>.png and masks.csv listing every cell")
    parser.add_argument("--who", nargs="+", required=True, metavar="AUTHOR",
                        help="whose cells; for raabin a second author fills Label2")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output folder; files of an earlier export there are replaced, other files never")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in DIR that no export wrote but that have an exported file's name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    warn_orphans(project, args.who)
    with StageBars() as bars:
        report = export_annotations(project, args.format, args.who, args.out, bars, overwrite=args.overwrite)
    print("\n".join(report.lines()))
    return 0
