"""``raabin-labeler open [PROJECT]``: the labeling window (the bundled sample by default)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.paths import SAMPLE_PROJECT_DIR


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("open", help="open a project in the labeling window")
    parser.add_argument("project", nargs="?", type=Path, default=None,
                        help="project folder (default: the last one opened, else the bundled sample; "
                             "raabin-labeler with no arguments always opens the sample)")
    parser.add_argument("--expert", help="label as this expert (remembered for next time)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..ui.app import launch  # Tk is imported only when a window is wanted

    return launch(args.project, expert=args.expert, sample=SAMPLE_PROJECT_DIR)
