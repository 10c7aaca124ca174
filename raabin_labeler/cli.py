"""The command line: every batch job runs headless (FORMAT.md, "The command line").

Each subcommand lives in ``raabin_labeler.commands.<name>`` and registers its own parser;
failures the user can act on are ``UserError`` and end as one line on stderr with exit 1.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from . import __version__
from .core.paths import SAMPLE_PROJECT_DIR
from .errors import UserError

COMMANDS = ("open", "init", "import_", "export", "detect", "evaluate_detection", "agreement", "nucleus", "dedup", "sample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raabin-labeler",
        description="Label white blood cells on smear photos. With no command, opens the bundled "
                    "sample project in the labeling window.")
    parser.add_argument("--version", action="version", version=f"raabin-labeler {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"raabin_labeler.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()  # imports every command's modules: Ctrl+C may come meanwhile
        args = parser.parse_args(argv or ["open", str(SAMPLE_PROJECT_DIR)])  # no arguments: the sample
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"raabin-labeler: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `raabin-labeler agreement … | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # nothing more to flush into the closed pipe at exit
        return 141
    except OSError as exc:  # a folder that is a file, a read-only place, a full disk: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"raabin-labeler: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("raabin-labeler: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
