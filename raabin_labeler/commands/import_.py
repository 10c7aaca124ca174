"""``raabin-labeler import PROJECT --format F SRC --as AUTHOR``: other tools' boxes into a project."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.formats.importer import READERS, import_annotations
from ..core.project import Project
from ..progress import ProgressBar


class StageBars:
    """A progress bar per stage ("reading", "saving"), as the core's progress callback."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: ProgressBar | None = None

    def __call__(self, stage: str, done: int, total: int, item: str) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.bar = stage, ProgressBar(total, stage)
        assert self.bar is not None
        self.bar.update(done, item)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import", help="import boxes from VOC XML, labelme, COCO or Raabin JSON",
        description="Import another tool's boxes as an author's annotations. Files are matched to "
                    "the project's photos by relative path, else by file name stem. Label names map "
                    "onto the taxonomy; unknown ones (RBC, Platelets) become extra labels. An author "
                    "who already has a file for a photo keeps every cell; imported cells are added "
                    "unless the same box (IoU > 0.9) with the same label is already there. Nothing "
                    "is saved if any file cannot be read.")
    parser.add_argument("project", type=Path, help="the project folder")
    parser.add_argument("--format", required=True, choices=sorted(READERS),
                        help="voc: labelImg XML per photo; labelme: JSON per photo; coco: one JSON; "
                             "raabin: Raabin-WBC JSON per photo (Label1, Label2)")
    parser.add_argument("src", type=Path, help="a file, or a folder searched recursively")
    parser.add_argument("--as", dest="authors", nargs="+", required=True, metavar="AUTHOR",
                        help="author the boxes belong to; for raabin, two authors take Label1 and Label2")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    with StageBars() as bars:
        report = import_annotations(project, args.format, args.src, args.authors, bars)
    print("\n".join(report.lines()))
    return 0
