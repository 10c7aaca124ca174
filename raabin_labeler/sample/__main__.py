"""``python -m raabin_labeler.sample --out sample_data --seed 7``: the same as ``raabin-labeler sample``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..commands.sample import run
from ..errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raabin_labeler.sample",
                                     description="Write the synthetic sample project.")
    parser.add_argument("--out", type=Path, default=Path("sample_data"),
                        help="new or empty folder (default sample_data)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--photos", type=int, default=14)
    try:
        return run(parser.parse_args(argv))
    except UserError as exc:
        print(f"raabin-labeler: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
