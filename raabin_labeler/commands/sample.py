"""``raabin-labeler sample OUT [--seed N] [--photos N]``: write the synthetic sample project."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sample", help="make a synthetic smear project with ground truth and two experts",
                            description="Write a synthetic labeling project: smear photos from two cameras "
                                        "(some fields overlapping), exact ground truth with nucleus masks "
                                        "under annotations/truth, and two simulated experts' labels. The same "
                                        "seed gives byte-identical files.")
    parser.add_argument("out", type=Path, help="new or empty folder to write the project into")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7, as in sample_data/)")
    parser.add_argument("--photos", type=int, default=14, help="number of photos (default 14)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sample import SampleConfig, generate_sample

    if args.photos < 1:
        raise UserError(f"--photos {args.photos}: a sample needs at least one photo")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: use a seed of 0 or more")
    with ProgressBar(args.photos, "sample") as bar:
        summary = generate_sample(args.out, SampleConfig(seed=args.seed, photos=args.photos),
                                  lambda done, total, item: bar.update(done, item))
    print(f"{args.out}: {summary.photos} photos, {summary.truth_cells} truth cells "
          f"({summary.physical_cells} physical), {summary.bytes / 1e6:.1f} MB")
    return 0
