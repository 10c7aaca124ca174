"""``raabin-labeler detect PROJECT``: colour-filter WBC proposals for every photo (issue 4).

Writes only ``annotations/detector/<image>.json`` (a job never writes a file an expert owns),
skipping photos already done unless ``--redo``. Photos are decoded and searched in worker
processes on every core; the files are written here, by one process. ``--fit`` first re-fits
the colour filter on the project's own expert labels instead of the BCCD default. The expected
WBC diameter comes from ``cell_diameter_px`` in project.json when set, else from each photo.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.detection import ColorModel, default_model
from ..core.jobs import Job, PoolRunner, Runner
from ..core.project import DETECTOR, Project
from ..core.proposals import detect_one, detection_tasks, fit_on_project, save_proposals
from ..errors import UserError
from ..progress import report_failures, run_job_with_bar

def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("detect", help="propose WBC boxes on every photo of a project",
                            description="Colour-filter WBC proposals for every photo, written only into "
                                        "annotations/detector/ (photos that have some already are skipped "
                                        "unless --redo).")
    parser.add_argument("project", type=Path, metavar="PROJECT")
    parser.add_argument("--redo", action="store_true", help="also photos that have proposals already")
    parser.add_argument("--fit", action="store_true", help="re-fit the detector on this project's expert labels first")
    parser.set_defaults(run=run)


def detect_project(project: Project, model: ColorModel, images: list[str],
                   runner: Runner | None = None) -> tuple[int, list[str]]:
    """Proposals for ``images`` into annotations/detector/: (photos written, error lines)."""
    tasks = detection_tasks(project, model, images)
    job = Job("detect", detect_one, tasks, runner=runner or PoolRunner(processes=True),
              describe=lambda task: task[0])
    return run_job_with_bar(job, "detect", lambda task, found: save_proposals(project, task[0], found))


def run(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    images = [i for i in project.images() if args.redo or not project.has_annotation(DETECTOR, i)]
    if args.fit and not images:  # said before the fit, not after it
        raise UserError("every photo has proposals already: add --redo to detect them again with a "
                        "re-fitted detector")
    model = default_model()
    if args.fit:
        model, cells, photos = fit_on_project(project)
        print(f"fitted the detector on {cells} cells in {photos} photos")
    written, errors = detect_project(project, model, images)
    print(f"proposals written for {written} photos ({len(project.images()) - len(images)} already done)")
    return report_failures(errors, len(images), "photos")
