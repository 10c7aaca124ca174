"""Errors that speak to the user: which file, which field, what went wrong."""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""


class FileProblem(UserError):
    """Something is wrong with one file; names the file, the place in it and the problem."""

    def __init__(self, path: str | Path, problem: str, where: str | None = None):
        self.path = Path(path)
        self.problem = problem
        self.where = where
        place = f" ({where})" if where else ""
        super().__init__(f"{self.path}{place}: {problem}")
