"""``raabin-labeler agreement PROJECT --experts A B``: Table 4 matrix, kappa, exports (issue 7)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..app.agreement import AgreementController
from ..core.agreement import LEVELS
from ..core.store import atomic_write_text, dumps
from ..core.project import Project
from ..errors import UserError
from . import warn_orphans
from .import_ import StageBars


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "agreement", help="two experts' confusion matrix, kappa, and the double-labeled dataset",
        description="Compare two experts' labels: cells pair by id, else by box overlap (IoU >= 0.5, "
                    "one-to-one). A cell one expert lacks, left unlabeled or rejected is 'Not labeled' "
                    "for that expert; cells neither labeled are left out. Prints the matrix (rows: the "
                    "first expert), observed agreement, Cohen's kappa with a 95 percent CI (Fleiss-Cohen-"
                    "Everitt 1969 standard error) and per-class positive specific agreement.")
    parser.add_argument("project", type=Path, help="the project folder")
    parser.add_argument("--experts", nargs=2, required=True, metavar=("A", "B"),
                        help="the two experts: A gives the rows, B the columns")
    parser.add_argument("--level", choices=LEVELS, default="leaf",
                        help="leaf: Band, Meta… as in the paper's Table 4; parent: rolled up to the classes")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the matrix as CSV")
    parser.add_argument("--png", type=Path, metavar="FILE", help="write the heatmap as PNG")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write matrices and figures at both levels as JSON")
    parser.add_argument("--update-consensus", metavar="LEAD",
                        help="carry the cells both experts agree on into annotations/consensus/ (the lead's "
                             "decisions stay), so that `export --who consensus` holds them all; an "
                             "adjudication session in the window does the same for the photos it covers")
    parser.add_argument("--export-double-labeled", type=Path, metavar="DIR",
                        help="also write crops of the cells both experts put in the same of the five main "
                             "classes, a folder per class, with double_labeled.csv (photo, box, smear, "
                             "camera, microscope, cell id); duplicates are left out")
    for key in ("smear", "camera", "microscope"):
        parser.add_argument(f"--{key}", metavar="NAME", help=f"only photos with this {key}")
    parser.add_argument("--folder", metavar="DIR", help="only photos in this folder (below the images folder)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    warn_orphans(project, args.experts)
    expert_a, expert_b = args.experts
    ctl = AgreementController(project, expert_a, expert_b)
    with StageBars() as bars:
        ctl.load(bars)
    if ctl.left_out:  # figures over part of the photos would pass for the whole project's
        raise UserError(f"{len(ctl.left_out)} annotation file(s) cannot be read; mend them (or move them "
                        "aside) and run again:\n  " + "\n  ".join(str(problem) for problem in ctl.left_out))
    ctl.set_filter(smear=args.smear, camera=args.camera, microscope=args.microscope, folder=args.folder)
    ctl.set_level(args.level)
    if not ctl.visible_images:
        raise UserError("no photo left after the filters" if ctl.images else
                        f"neither {expert_a} nor {expert_b} has annotated any photo of {project.root}")
    other = "parent" if args.level == "leaf" else "leaf"
    print(ctl.matrix.table_text())
    print()
    print("\n".join(ctl.summary().lines()))
    print("\n".join(ctl.figures.lines()))
    theirs = ctl.figures_at(other)
    print(f"at {other} level: observed agreement {theirs.observed:.1%}, kappa {theirs.kappa:.3f} "
          f"(95% CI {theirs.ci_low:.3f} to {theirs.ci_high:.3f})")
    if args.csv:
        ctl.write_csv(args.csv)
        print(f"matrix written to {args.csv}")
    if args.png:
        ctl.write_png(args.png)
        print(f"heatmap written to {args.png}")
    if args.json:
        report = {"experts": [expert_a, expert_b], "summary": ctl.summary().__dict__}
        for level in LEVELS:
            matrix = ctl.matrix_at(level)
            report[level] = {"names": matrix.names, "counts": matrix.counts.tolist(),
                             "figures": ctl.figures_at(level).as_dict()}
        try:
            atomic_write_text(args.json, dumps(report), keep_backup=False)
        except OSError as exc:
            raise UserError(f"{args.json}: cannot write: {exc.strerror or exc}") from None
        print(f"figures written to {args.json}")
    if args.update_consensus is not None:
        with StageBars() as bars:
            changed = ctl.update_consensus(args.update_consensus, bars)
        print(f"consensus: agreed cells brought up to date, {changed} photo file(s) changed")
    if args.export_double_labeled:
        with StageBars() as bars:
            report = ctl.export_double_labeled(args.export_double_labeled, bars)
        print("\n".join(report.lines()))
    return 0
