"""Where the package's own files are, and the rule that keeps JSON paths inside a project."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent
ASSETS_DIR = REPO_DIR / "assets"
SAMPLE_PROJECT_DIR = REPO_DIR / "sample_data"


def safe_relative(path: str) -> PurePosixPath:
    """A path from a JSON file, checked to stay inside the project (FORMAT.md).

    Absolute paths, drive letters, backslashes that hide ``..`` and ``..`` parts are refused
    with ValueError, so a crafted file cannot make the tool read or write elsewhere.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValueError("must be a non-empty relative path")
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]) or ".." in posix.parts:
        raise ValueError(f"{path!r} leaves the project")
    return posix
