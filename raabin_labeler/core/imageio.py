"""Decoding smear photos: EXIF orientation, reduced-size decode, pixel limits, crops.

Box coordinates mean what the expert saw, so every decode here applies the EXIF orientation
(FORMAT.md: boxes are in the displayed frame). Errors name the file and the problem instead
of surfacing PIL's exceptions or a decompression-bomb warning.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import FileProblem
from .annotation import Box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
#: About 100 MP: well above a 16 MP phone photo or a 40 MP camera, far below a bomb.
DEFAULT_MAX_PIXELS = 100_000_000
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
# The pixel limit is ours (per project, with a clear message), so PIL's own is switched off.
Image.MAX_IMAGE_PIXELS = None


class ImageError(FileProblem):
    """A photo that cannot be used: missing, not an image, truncated, too large."""


@dataclass(frozen=True)
class ImageInfo:
    width: int  # as displayed, after EXIF orientation
    height: int
    orientation: int


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _open(path: Path, max_pixels: int) -> Image.Image:
    try:
        im = Image.open(path)
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image") from None
    except PermissionError:
        raise ImageError(path, "cannot be read: permission denied") from None
    except UnidentifiedImageError:
        if _empty(path):  # a copy that failed or is still running: say so, not "not an image"
            raise ImageError(path, "is empty (0 bytes): a copy that failed or has not finished?") from None
        raise ImageError(path, "is not an image this tool can read (JPEG, PNG, TIFF or BMP)") from None
    except OSError as exc:
        raise ImageError(path, f"cannot be opened: {exc}") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageError(path, f"has {w}×{h} = {w * h / 1e6:.0f} MP, over the limit of "
                               f"{max_pixels / 1e6:.0f} MP (raise it in the project settings if this is real)")
    return im


def _empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # broken EXIF blocks are common on phone photos; treat as upright
        return 1
    return value if 1 <= value <= 8 else 1


def image_info(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """The displayed size without decoding pixels (reads the header only)."""
    path = Path(path)
    with _open(path, max_pixels) as im:
        orient = _orientation(im)
        w, h = im.size
    return ImageInfo(h, w, orient) if orient in _TRANSPOSED else ImageInfo(w, h, orient)


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB. Grey of 16 (or 32) bits is scaled by its bit depth: PIL's own conversion clips
    every level above 255 to white, so a 16-bit grey photo showed as a white page (found by QA)."""
    if im.mode == "RGB":
        return im
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) <= 65535 else float(arr.max())
        grey = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return im.convert("RGB")


def _finish(path: Path, im: Image.Image) -> Image.Image:
    try:
        im.load()
        return _to_rgb(ImageOps.exif_transpose(im))
    except (OSError, SyntaxError, ValueError) as exc:
        text = str(exc)
        if "truncated" in text or "broken data stream" in text or "image file is" in text:
            raise ImageError(path, "is truncated or damaged (the file ends before the picture does)") from None
        raise ImageError(path, f"cannot be decoded: {text}") from None


def open_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The whole photo as RGB, upright as displayed."""
    path = Path(path)
    return _finish(path, _open(path, max_pixels))


def open_reduced(path: Path, max_side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, float]:
    """A smaller decode for previews and hashing, and its scale (displayed px per full px).

    For JPEG, PIL's ``draft`` asks the decoder for a 1/2, 1/4 or 1/8 size image directly,
    which is several times faster than decoding in full and shrinking.
    """
    path = Path(path)
    im = _open(path, max_pixels)
    full_w, full_h = im.size
    if im.format == "JPEG" and max(full_w, full_h) > max_side:
        im.draft("RGB", (max(1, full_w * max_side // max(full_w, full_h)),
                         max(1, full_h * max_side // max(full_w, full_h))))
    im = _finish(path, im)
    if max(im.size) > max_side:
        ratio = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * ratio)), max(1, round(im.height * ratio))), Image.BILINEAR)
    full_long = max(full_w, full_h)
    return im, max(im.size) / full_long


def to_array(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"))


def crop_square(image: Image.Image | np.ndarray, box: Box, size: int | None = None,
                fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """A square crop centred on ``box`` (side ``size``, or the box's longer side).

    Parts outside the photo are padded with ``fill``, so crops of border cells keep the cell
    centred and every crop has the same size (the Raabin crops are 575×575).
    """
    arr = np.asarray(image)
    side = size or max(box.width, box.height)
    cx, cy = box.center
    x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    out = np.empty((side, side, 3), dtype=np.uint8)
    out[:] = fill
    h, w = arr.shape[:2]
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x1 + side), min(h, y1 + side)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = arr[sy1:sy2, sx1:sx2, :3]
    return out


def crop_box(image: Image.Image | np.ndarray, box: Box) -> np.ndarray:
    arr = np.asarray(image)
    return arr[box.y1:box.y2, box.x1:box.x2, :3].copy()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
