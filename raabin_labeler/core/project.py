"""A labeling project: a folder with project.json, images and one JSON per image per author.

Opening a project only lists files: image headers and annotation files are read when needed,
so a folder of hundreds of 16 MP photos opens at once.
"""
from __future__ import annotations

import getpass
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import FileProblem, UserError
from .annotation import Author, ImageAnnotation, ImageRef, now_iso
from .imageio import DEFAULT_MAX_PIXELS, image_info, is_image
from .paths import safe_relative
from .store import StoreError, atomic_write_text, load_annotation, read_json, save_annotation, write_json
from .taxonomy import Taxonomy, TaxonomyError

PROJECT_FILE = "project.json"
PROJECT_FORMAT_NAME = "raabin-labeler-project"
PROJECT_VERSION = 1
PROJECT_FORMAT = f"{PROJECT_FORMAT_NAME}/{PROJECT_VERSION}"
DETECTOR = "detector"
CONSENSUS = "consensus"
DEFAULT_BOX_SIZE = 575  # the Raabin-WBC crops: 575×575 px at full resolution
_AUTHOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_author_id(author_id: str) -> str:
    """Author ids become folder names, so they are kept to a safe alphabet."""
    if not isinstance(author_id, str) or not _AUTHOR_ID.fullmatch(author_id) or author_id.endswith("."):
        raise UserError(f"author name {author_id!r}: use letters, digits, '-', '_' or '.' (at most 64)")
    return author_id


def author_for(author_id: str) -> Author:
    kind = {DETECTOR: "detector", CONSENSUS: "consensus"}.get(author_id, "expert")
    return Author(kind, check_author_id(author_id))


#: In an expert's annotations folder while a window labels as that expert (hidden: no photo's).
CLAIM_FILE = ".open-in-a-window.json"


def _alive(pid: int) -> bool:
    """Whether a process of this machine still runs (a claim left by a crash is stale)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would end the process there, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, owned by someone else (or the platform cannot tell: assume so)
    return True


def _natural_key(path: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def photo_paths(base: Path) -> list[str]:
    """The photos below ``base`` (relative POSIX paths), hidden files and folders left out.

    Symbolic links to folders are followed (a lab links each smear's folder in from where the
    scanner put it; ``Path.rglob`` skipped them, so their photos were silently not in the
    project: found by QA), each real folder once, so a link back up cannot loop.
    """
    found: list[str] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(base)
        found += [(rel / name).as_posix() for name in files
                  if not name.startswith(".") and is_image(Path(name)) and os.path.isfile(os.path.join(folder, name))]
    return found


@dataclass
class Progress:
    images: int
    done: int
    in_progress: int
    cells_labeled: int

    def summary(self) -> str:
        return f"photos done {self.done} / {self.images} · cells labeled {self.cells_labeled}"


class Project:
    """An open project folder. Not thread-safe for writes of the same author and image."""

    def __init__(self, root: Path, data: dict[str, Any]):
        self.root = Path(root)
        self.data = data
        self._images: list[str] | None = None
        self._parsed: dict[Path, tuple[tuple[int, int, int], ImageAnnotation]] = {}
        try:
            self.taxonomy = Taxonomy.from_dict(data["taxonomy"]) if data.get("taxonomy") else Taxonomy.default()
        except TaxonomyError as exc:
            raise FileProblem(self.root / PROJECT_FILE, str(exc), "taxonomy") from None

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, images: Path | None = None, name: str | None = None,
               experts: list[str] | None = None) -> "Project":
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise UserError(f"{root / PROJECT_FILE} already exists: this folder is a project already")
        if root.exists() and not root.is_dir():
            raise UserError(f"{root}: is a file; a project is a folder (name a new or empty one)")
        root.mkdir(parents=True, exist_ok=True)
        if images is None:
            images_entry = "images"
            (root / "images").mkdir(exist_ok=True)
        else:
            images = Path(images).resolve()
            if not images.is_dir():
                raise UserError(f"{images}: " + ("is a file, not a folder of images" if images.exists()
                                                 else "no such folder of images"))
            try:
                images_entry = images.relative_to(root.resolve()).as_posix()
            except ValueError:
                images_entry = str(images)  # photos stay where they are (FORMAT.md)
        data = {"format": PROJECT_FORMAT, "name": name or root.resolve().name, "images": images_entry,
                "experts": [check_author_id(e) for e in experts or []],
                "default_box_size": DEFAULT_BOX_SIZE, "max_pixels": DEFAULT_MAX_PIXELS}
        write_json(root / PROJECT_FILE, data)
        (root / "annotations").mkdir(exist_ok=True)
        return cls(root, data)

    @classmethod
    def open(cls, root: Path) -> "Project":
        root = Path(root)
        path = root / PROJECT_FILE
        if not path.exists():
            raise UserError(f"{root}: not a raabin-labeler project (no {PROJECT_FILE}); "
                            f"make one with 'raabin-labeler init {root} --images DIR'")
        data = read_json(path)
        if not isinstance(data, dict):
            raise StoreError(path, "expected a JSON object")
        found = data.get("format")
        if found != PROJECT_FORMAT:
            name, _, version = str(found).rpartition("/")
            newer = name == PROJECT_FORMAT_NAME and version.isdigit() and int(version) > PROJECT_VERSION
            raise StoreError(path, f"expected format {PROJECT_FORMAT!r}, got {found!r}"
                             + ("; a newer raabin-labeler made it: please upgrade" if newer else ""), "format")
        for key, kind in (("name", str), ("images", str), ("experts", list)):
            if key in data and not isinstance(data[key], kind):
                raise StoreError(path, f"expected {kind.__name__}", key)
        size = data.get("default_box_size", DEFAULT_BOX_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 10000:
            raise StoreError(path, "expected a whole number of pixels from 8 to 10000", "default_box_size")
        return cls(root, data)

    def save_settings(self) -> None:
        write_json(self.root / PROJECT_FILE, self.data)

    # -- settings -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.root.name)

    @property
    def default_box_size(self) -> int:
        return int(self.data.get("default_box_size", DEFAULT_BOX_SIZE))

    @property
    def max_pixels(self) -> int:
        value = self.data.get("max_pixels", DEFAULT_MAX_PIXELS)
        return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_PIXELS

    @property
    def experts(self) -> list[str]:
        return [e for e in self.data.get("experts", []) if isinstance(e, str)]

    def add_expert(self, author_id: str) -> None:
        if author_id not in self.experts and author_id not in (DETECTOR, CONSENSUS):
            self.data["experts"] = [*self.experts, check_author_id(author_id)]
            self.save_settings()

    def set_taxonomy(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.data["taxonomy"] = taxonomy.to_dict()
        self.save_settings()

    # -- images -------------------------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        entry = Path(str(self.data.get("images") or "images"))
        return entry if entry.is_absolute() else self.root / entry

    def images(self) -> list[str]:
        """Photo paths relative to the images folder, POSIX style, in natural order."""
        if self._images is None:
            self.rescan()
        assert self._images is not None
        return self._images

    def rescan(self) -> None:
        base = self.images_dir
        if not base.is_dir():
            raise UserError(f"{base}: the project's images folder is missing")
        self._images = sorted(photo_paths(base), key=_natural_key)

    def image_path(self, image: str) -> Path:
        return self.images_dir / safe_relative(image)

    def image_ref(self, image: str) -> ImageRef:
        info = image_info(self.image_path(image), self.max_pixels)
        return ImageRef(image, info.width, info.height)

    # -- annotations ----------------------------------------------------------------------
    def annotation_path(self, author_id: str, image: str) -> Path:
        rel = safe_relative(image)
        return self.root / "annotations" / check_author_id(author_id) / (rel.as_posix() + ".json")

    def mask_path(self, rel: str) -> Path:
        return self.root / safe_relative(rel)

    def authors(self) -> list[str]:
        folder = self.root / "annotations"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def orphan_annotations(self) -> list[Path]:
        """Annotation files whose photo is not in the project (moved, renamed or deleted): no
        figure, export or search sees their cells, so the commands name them."""
        folder = self.root / "annotations"
        if not folder.is_dir():
            return []
        known = {f"{image}.json" for image in self.images()}
        return sorted(p for p in folder.glob("*/**/*.json") if not p.name.startswith(".")
                      and p.relative_to(folder).as_posix().split("/", 1)[1] not in known)

    # -- one window per expert ---------------------------------------------------------------
    def claim(self, author_id: str, *, force: bool = False) -> str | None:
        """Mark ``author_id`` as labeling here now, unless another live window holds that claim:
        then say who (and with ``force``, take the claim all the same).

        Why: two windows of one expert both save that expert's files, and the later save of a
        photo replaced the earlier one's cells (found by QA: a box and its label lost without a
        word). Two experts never share a file, so only the same expert twice is a danger. A
        claim of this machine whose process has ended is stale and taken over.
        """
        path = self._claim_path(author_id)
        other = None
        try:
            held = json.loads(path.read_text(encoding="utf-8"))
            if held.get("pid") != os.getpid() or held.get("host") != socket.gethostname():
                if held.get("host") != socket.gethostname() or _alive(int(held.get("pid", 0))):
                    other = (f"{held.get('user', '?')} on {held.get('host', '?')} (process {held.get('pid', '?')}), "
                             f"since {held.get('since', '?')}")
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # no claim, or one nobody can read: nothing to report
        if other is not None and not force:
            return other
        atomic_write_text(path, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                            "user": getpass.getuser(), "since": now_iso()}), keep_backup=False)
        return other

    def release(self, author_id: str) -> None:
        """Drop this process's claim (a claim another window took over meanwhile stays)."""
        path = self._claim_path(author_id)
        try:
            held = json.loads(path.read_text(encoding="utf-8"))
            if held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
                path.unlink()
        except (OSError, ValueError, AttributeError):
            pass

    def _claim_path(self, author_id: str) -> Path:
        return self.root / "annotations" / check_author_id(author_id) / CLAIM_FILE

    def has_annotations(self, author_id: str) -> bool:
        """Whether the author has saved any annotation here (a claim or an empty folder is none)."""
        folder = self.root / "annotations" / check_author_id(author_id)
        return any(not p.name.startswith(".") for p in folder.rglob("*.json")) if folder.is_dir() else False

    def has_annotation(self, author_id: str, image: str) -> bool:
        return self.annotation_path(author_id, image).exists()

    def load(self, author_id: str, image: str) -> ImageAnnotation | None:
        """The author's annotation of the image, None if there is none; StoreError if broken.

        A file read before and unchanged since (same inode, size and modification time; every
        save makes a new inode) is not parsed again: the photo list, the agreement view and the
        duplicate review read the same thousands of files over and over. Annotations are
        immutable, so handing out the same object is safe; may be called from any thread.
        """
        path = self.annotation_path(author_id, image)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        annotation = load_annotation(path)
        if annotation.image.path != image:
            raise StoreError(path, f"describes {annotation.image.path!r}, not {image!r}", "image.path")
        self._parsed[path] = (stamp, annotation)
        return annotation

    def load_or_new(self, author_id: str, image: str) -> ImageAnnotation:
        return self.load(author_id, image) or ImageAnnotation.empty(self.image_ref(image), author_for(author_id))

    def save(self, annotation: ImageAnnotation, *, overwrite_broken: bool = False) -> Path:
        path = self.annotation_path(annotation.author.id, annotation.image.path)
        save_annotation(path, annotation, overwrite_broken=overwrite_broken)
        return path

    def iter_annotations(self, author_id: str) -> Iterator[tuple[str, ImageAnnotation | None, StoreError | None]]:
        """Every image with the author's annotation (or None), and the error for broken files."""
        for image in self.images():
            try:
                yield image, self.load(author_id, image), None
            except StoreError as exc:
                yield image, None, exc

    def progress(self, author_id: str) -> Progress:
        done = started = labeled = 0
        for _, annotation, _ in self.iter_annotations(author_id):
            if annotation is None:
                continue
            if annotation.status.done:
                done += 1
            elif annotation.cells:
                started += 1
            labeled += annotation.labeled_count()
        return Progress(len(self.images()), done, started, labeled)

