"""Photos: displayed frame (EXIF), reduced decodes, limits, and errors that name the file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core.annotation import Box
from raabin_labeler.core.imageio import (ImageError, crop_square, image_info, open_image,
                                         open_reduced)


def _exif_rotated(path, width=300, height=200):
    """A photo stored landscape with orientation 6: the camera was turned, shown portrait."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:20, :40] = (255, 0, 0)  # a red patch at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


def test_orientation_6_gives_the_displayed_frame(tmp_path):
    path = _exif_rotated(tmp_path / "rot.jpg")
    info = image_info(path)
    assert (info.width, info.height, info.orientation) == (200, 300, 6)
    im = open_image(path)
    assert im.size == (200, 300)
    arr = np.asarray(im)
    # orientation 6 = rotate 90° clockwise to display: the stored top-left lands at the top-right
    assert arr[5:15, -15:-5, 0].mean() > 200 and arr[5:15, -15:-5, 1].mean() < 60
    assert arr[5:15, 5:15].mean() < 60


def test_boxes_on_a_rotated_photo_are_in_the_displayed_frame(tmp_path):
    from raabin_labeler.core.project import Project
    photos = tmp_path / "photos"
    photos.mkdir()
    _exif_rotated(photos / "rot.jpg")
    project = Project.create(tmp_path / "p", images=photos)
    ann = project.load_or_new("expert-a", "rot.jpg")
    assert (ann.image.width, ann.image.height) == (200, 300)
    # a box in the lower part of the portrait frame is valid; in landscape terms it would not be
    from raabin_labeler.core.annotation import Cell
    project.save(ann.with_cell(Cell.new(Box(150, 250, 200, 300), "monocyte")))
    assert project.load("expert-a", "rot.jpg").cells[0].box == Box(150, 250, 200, 300)


def test_reduced_decode_is_smaller_and_reports_its_scale(tmp_path, make_photo):
    path = make_photo(tmp_path / "big.jpg", 1600, 1200, quality=90)
    im, scale = open_reduced(path, 400)
    assert max(im.size) == 400
    assert scale == pytest.approx(0.25)


def test_truncated_photo_names_the_file(tmp_path, make_photo):
    path = make_photo(tmp_path / "cut.jpg", 400, 300, quality=90)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ImageError) as info:
        open_image(path)
    assert "cut.jpg" in str(info.value) and "truncated" in str(info.value)


def test_non_image_and_missing_files_name_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    with pytest.raises(ImageError, match="notes.jpg.*not an image"):
        open_image(text)
    with pytest.raises(ImageError, match="gone.jpg.*not found"):
        open_image(tmp_path / "gone.jpg")


def test_pixel_limit_refuses_huge_photos_before_decoding(tmp_path, make_photo):
    path = make_photo(tmp_path / "huge.png", 400, 300)
    with pytest.raises(ImageError, match="huge.png.*over the limit"):
        open_image(path, max_pixels=100_000)
    assert open_image(path, max_pixels=200_000).size == (400, 300)


def test_square_crop_keeps_border_cells_centred_with_padding():
    photo = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_square(photo, Box(0, 0, 20, 20), size=40)
    assert crop.shape == (40, 40, 3)
    assert (crop[:10, :10] == 0).all() and (crop[20:, 20:] == 200).all()
