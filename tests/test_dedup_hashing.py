"""The paper mode's hashes are ImageHash's, bit for bit, on every kind of crop (issue 5)."""
from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from raabin_labeler.core import dedup
from raabin_labeler.errors import FileProblem

BCCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd" / "JPEGImages"
needs_data = pytest.mark.skipif(not BCCD.is_dir(), reason="shared BCCD data not present")


def imagehash_hex(path: Path) -> tuple[str, str]:
    with Image.open(path) as image:
        return str(imagehash.average_hash(image)), str(imagehash.phash(image))


def ours_hex(path: Path) -> tuple[str, str]:
    sig = dedup.crop_signature(path, aligned=False)
    return f"{sig.ahash:016x}", f"{sig.phash:016x}"


def photo_crops(count: int, seed: int) -> list[Image.Image]:
    """Crops of random sizes and shapes (square or not) cut from BCCD photos."""
    rng = np.random.default_rng(seed)
    photos = sorted(BCCD.glob("*.jpg"))
    crops = []
    for _ in range(count):
        with Image.open(photos[rng.integers(len(photos))]) as photo:
            photo = photo.convert("RGB")
        w = int(rng.integers(24, 300))
        h = w if rng.random() < 0.5 else int(rng.integers(24, 300))
        x, y = int(rng.integers(0, photo.width - w)), int(rng.integers(0, photo.height - h))
        crops.append(photo.crop((x, y, x + w, y + h)))
    return crops


@needs_data
@pytest.mark.parametrize("kind, options", [
    ("baseline", {"quality": 90}),
    ("4:4:4", {"quality": 95, "subsampling": 0}),
    ("4:2:2", {"quality": 85, "subsampling": 1}),
    ("progressive", {"quality": 90, "progressive": True}),
])
def test_jpeg_crops_hash_as_imagehash(tmp_path, kind, options):
    for k, crop in enumerate(photo_crops(12, seed=len(kind))):
        path = tmp_path / f"{k}.jpg"
        crop.save(path, **options)
        assert ours_hex(path) == imagehash_hex(path), (kind, crop.size)


@needs_data
def test_clipping_colours_take_pillows_grey_not_the_decoders_luma(tmp_path):
    """Where saturated colours clip, the JPEG luma (draft "L", OpenCV's grey decode) differs from
    Pillow's RGB -> L, which ImageHash hashes: it changed 2 pHashes in 6,000 crops, and this one's."""
    crop = ImageEnhance.Color(photo_crops(2, seed=1001)[1]).enhance(2.0)
    path = tmp_path / "vivid.jpg"
    crop.save(path, quality=90)
    with Image.open(path) as image:
        expected = np.asarray(image.convert("L"))
    with Image.open(path) as image:
        image.draft("L", image.size)
        luma = np.asarray(image.convert("L"))
    assert dedup.image_hashes(luma) != dedup.image_hashes(expected)  # the trap is real here
    np.testing.assert_array_equal(dedup.imagehash_gray(path), expected)
    assert ours_hex(path) == imagehash_hex(path)


@needs_data
def test_grey_png_575_and_exif_rotated_crops_hash_as_imagehash(tmp_path):
    """ImageHash ignores EXIF orientation (Image.open does not apply it); so must we."""
    crop = photo_crops(1, seed=3)[0].resize((575, 575), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to display"
    crop.save(tmp_path / "rotated.jpg", quality=90, exif=exif)
    crop.save(tmp_path / "raabin.jpg", quality=90)
    crop.convert("L").save(tmp_path / "grey.jpg", quality=90)
    crop.crop((0, 0, 301, 187)).save(tmp_path / "odd.png")
    for name in ("rotated.jpg", "raabin.jpg", "grey.jpg", "odd.png"):
        assert ours_hex(tmp_path / name) == imagehash_hex(tmp_path / name), name


@pytest.mark.parametrize("name, gray", [
    ("flat", np.full((100, 100), 128, np.uint8)),
    ("white", np.full((64, 64), 255, np.uint8)),
    ("stripes", np.tile(np.arange(100) % 2 * 255, (100, 1)).astype(np.uint8)),
    ("gradient", np.tile(np.arange(90, dtype=np.uint8), (90, 1))),
    ("flat, not square", np.full((37, 91), 7, np.uint8)),
])
def test_flat_and_symmetric_thumbnails_hash_as_imagehash(name, gray):
    """Their DCT coefficients tie at the median (exactly 0), so rounding noise decides the bits:
    it must be scipy's noise, as in ImageHash."""
    image = Image.fromarray(gray)
    ahash, phash = dedup.image_hashes(gray)
    assert f"{ahash:016x}" == str(imagehash.average_hash(image))
    assert f"{phash:016x}" == str(imagehash.phash(image))


def test_unreadable_crops_are_named(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (200, 120, 180)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.jpg").write_bytes(b"not an image")
    for name in ("truncated.jpg", "text.jpg", "missing.jpg"):
        with pytest.raises(FileProblem, match=name):
            dedup.crop_signature(tmp_path / name, aligned=False)
