"""One module per CLI subcommand (see cli.py); what several of them share lives here."""
from __future__ import annotations

import sys

from ..core.project import Project

#: Orphan files named one per line, at most this many.
ORPHANS_SHOWN = 20


def warn_orphans(project: Project) -> None:
    """Name the annotation files whose photo is gone: their cells are in no result of this run."""
    orphans = project.orphan_annotations()
    if orphans:
        print(f"raabin-labeler: warning: {len(orphans)} annotation file(s) have no photo in "
              f"{project.images_dir} (moved, renamed or deleted?) and are left out:", file=sys.stderr)
        for path in orphans[:ORPHANS_SHOWN]:
            print(f"  {path}", file=sys.stderr)
        if len(orphans) > ORPHANS_SHOWN:
            print(f"  … and {len(orphans) - ORPHANS_SHOWN} more", file=sys.stderr)
