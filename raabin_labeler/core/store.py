"""Reading and writing annotation JSON: atomic saves, backups, clear errors (FORMAT.md).

Every JSON file of a project goes through here. A save never leaves a half-written file: the
new text goes to a temporary file in the same folder, is flushed and fsynced, and replaces the
old one with ``os.replace``; the previous version stays beside it as ``<name>.bak``. A file
that cannot be read is never overwritten behind the user's back.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import FileProblem
from .annotation import FORMAT_VERSION, AnnotationError, ImageAnnotation

MAX_JSON_BYTES = 64 * 1024 * 1024
BACKUP_SUFFIX = ".bak"

#: Upgrades from older format versions, keyed by the version they read. Each returns a dict in
#: the next version; the chain ends at FORMAT_VERSION. Version 1 is the first, so it is empty.
MIGRATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class StoreError(FileProblem):
    """A file that could not be read or written; never overwritten on our initiative."""


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def _hidden_beside(name: str) -> str:
    """A hidden name for a file beside ``name``, short enough for any file name to have one.

    File names are at most 255 bytes; ``.<name>.<random>.tmp`` of a photo named near that
    length could not be made, so such a photo's annotation could never be saved (found by QA).
    """
    data = name.encode("utf-8")
    if len(data) <= 120:
        return "." + name
    # cut, with a digest of the whole name so two long names of one folder stay apart
    return "." + data[:100].decode("utf-8", "ignore") + "~" + hashlib.sha1(data).hexdigest()[:12]


def _keep_backup(path: Path) -> None:
    """Make ``<name>.bak`` the current version of ``path`` in one atomic step.

    A hard link shares the old bytes without copying them; where links are not supported
    (some network shares) a copy is made.
    """
    staging = path.with_name(f"{_hidden_beside(path.name)}.bak-{os.getpid()}")
    try:
        try:
            os.link(path, staging)
        except OSError:
            shutil.copy2(path, staging)
        os.replace(staging, backup_path(path))
    finally:
        if staging.exists():
            staging.unlink()


def atomic_write_text(path: Path, text: str, *, keep_backup: bool = True) -> None:
    """Write ``text`` (UTF-8) so that ``path`` is always either the old or the new version."""
    atomic_write_bytes(path, text.encode("utf-8"), keep_backup=keep_backup)


def atomic_write_bytes(path: Path, data: bytes, *, keep_backup: bool = False) -> None:
    """Write ``data`` so that ``path`` is always either the old or the new version.

    The new file gets the old one's permissions, or the umask's for a new file: the temporary
    file is private (0600), and left so every save made a shared project folder unreadable to
    the other experts. The folder itself is not fsynced: after a power cut the rename may be
    undone, which leaves the previous version, still a whole file; fsyncing it too doubled the
    time of big imports.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_UMASK
    fd, tmp_name = tempfile.mkstemp(prefix=f"{_hidden_beside(path.name)}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        if keep_backup and path.exists():
            _keep_backup(path)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def _read_umask() -> int:
    """The process's umask (set and restored once, at import: os.umask has no read-only form)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _one_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def dumps(data: Any) -> str:
    """JSON with one top-level key, and one list item (one cell), per line.

    Readable and diff-friendly, yet written by json's C encoder (an ``indent`` would switch to
    the pure-Python one, several times slower on big imports).
    """
    if not isinstance(data, dict) or not data:
        return _one_line(data) + "\n"
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(_one_line(item) for item in value)
            lines.append(f" {_one_line(str(key))}: [\n  {items}\n ]")
        else:
            lines.append(f" {_one_line(str(key))}: {_one_line(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def read_json(path: Path) -> Any:
    """Parse a JSON file; every failure is a StoreError naming the file and the place."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise StoreError(path, f"is {size} bytes; annotation files are at most {MAX_JSON_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(path, "file not found") from None
    except IsADirectoryError:
        raise StoreError(path, "is a folder, not a JSON file") from None
    except PermissionError:
        raise StoreError(path, "cannot be read: permission denied") from None
    except OSError as exc:
        raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StoreError(path, "is not UTF-8 text", f"byte {exc.start}") from None
    if not text.strip():
        raise StoreError(path, "is empty")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise StoreError(path, f"is not valid JSON: {exc.msg}", f"line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:
        raise StoreError(path, f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise StoreError(path, "is nested too deeply to be an annotation file") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def write_json(path: Path, data: Any, *, overwrite_broken: bool = False,
               readable: Callable[[Path], Any] | None = None) -> None:
    """Atomically save ``data``; refuses to replace an existing file that cannot be read.

    An unreadable file may be the only copy of someone's work (a sync conflict, a manual
    edit, a newer tool's format); the caller must decide to replace it (``overwrite_broken``).
    ``readable`` is the loader that must accept the old file (plain JSON parsing by default).
    """
    path = Path(path)
    if not overwrite_broken and path.exists():
        try:
            (readable or read_json)(path)
        except StoreError as exc:
            if "permission denied" not in exc.problem:
                raise StoreError(path, f"{exc.problem}; it was left untouched (open its backup "
                                       "or move it aside first)", exc.where) from None
    try:
        atomic_write_text(path, dumps(data))
    except PermissionError:
        raise StoreError(path, "cannot be saved: permission denied (is the folder read-only?)") from None
    except OSError as exc:
        raise StoreError(path, f"cannot be saved: {exc.strerror or exc}") from None


def migrate(data: Any, path: Path) -> dict[str, Any]:
    """Bring an annotation dict up to FORMAT_VERSION, or say why it cannot be."""
    if not isinstance(data, dict):
        raise StoreError(path, f"expected a JSON object at the top, got {type(data).__name__}")
    version = data.get("format")
    steps = 0
    while version != FORMAT_VERSION:
        if isinstance(version, str) and version in MIGRATIONS and steps < len(MIGRATIONS):
            data = MIGRATIONS[version](data)
            version, steps = data.get("format"), steps + 1
            continue
        if isinstance(version, str) and version.startswith("raabin-labeler/"):
            raise StoreError(path, f"uses format {version!r}, which this version of raabin-labeler "
                                   f"does not know (it reads {FORMAT_VERSION!r}); please upgrade", "format")
        raise StoreError(path, f"is not a raabin-labeler annotation (format is {version!r})", "format")
    return data


def load_annotation(path: Path) -> ImageAnnotation:
    path = Path(path)
    data = migrate(read_json(path), path)
    try:
        return ImageAnnotation.from_dict(data)
    except AnnotationError as exc:
        raise StoreError(path, exc.problem, exc.field) from None
    except RecursionError:
        raise StoreError(path, "is nested too deeply to be an annotation file") from None


def save_annotation(path: Path, annotation: ImageAnnotation, *, overwrite_broken: bool = False) -> None:
    write_json(path, annotation.to_dict(), overwrite_broken=overwrite_broken, readable=load_annotation)
