"""One module per CLI subcommand (see cli.py); what several of them share lives here."""
from __future__ import annotations

import sys
from typing import Sequence

from ..core.project import Project

#: Orphan files named one per line, at most this many.
ORPHANS_SHOWN = 20


def warn_orphans(project: Project, authors: Sequence[str] | None = None) -> None:
    """Name the annotation files (of ``authors``, default all) whose photo is gone: their cells
    are in no result of this run."""
    folders = None if authors is None else {project.root / "annotations" / a for a in authors}
    orphans = [p for p in project.orphan_annotations()
               if folders is None or any(f in p.parents for f in folders)]
    if orphans:
        print(f"raabin-labeler: warning: {len(orphans)} annotation file(s) have no photo in "
              f"{project.images_dir} (moved, renamed or deleted?) and are left out:", file=sys.stderr)
        for path in orphans[:ORPHANS_SHOWN]:
            print(f"  {path}", file=sys.stderr)
        if len(orphans) > ORPHANS_SHOWN:
            print(f"  … and {len(orphans) - ORPHANS_SHOWN} more", file=sys.stderr)
