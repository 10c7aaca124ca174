"""The crops an earlier export listed and this one did not write again: removed.

Why: both crop exports (``export --format crops``, the double-labeled dataset) write a folder
per class and a CSV listing every crop. Exported again after a relabel, a cell's old crop stayed
in its old class folder beside the new one: a training set read from the folders held the cell
twice, under two labels. Only files the old listing names are touched, never others.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

from .paths import safe_relative


def remove_stale_crops(out: Path, listing: str, written: Iterable[str]) -> int:
    """Delete the crops ``out/listing`` (first column, a header row first) names that are not
    among ``written`` (paths relative to ``out``); returns how many were removed. Call it
    before the new listing replaces the old one."""
    path = out / listing
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))[1:]
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0  # no earlier listing (or not ours to read): nothing is known to be stale
    kept = set(written)
    removed = 0
    for row in rows:
        if not row or row[0] in kept:
            continue
        try:
            target = out / safe_relative(row[0])
        except ValueError:
            continue  # a listing edited to point outside the folder: never followed
        if target.is_file():
            target.unlink()
            removed += 1
    return removed
