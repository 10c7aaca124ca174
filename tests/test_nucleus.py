"""Easy-GT nucleus masks (issue 6): colour balance, CMYK, Otsu, masks, the batch command."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage.filters import threshold_multiotsu, threshold_otsu

from raabin_labeler.commands import nucleus as nucleus_command
from raabin_labeler.core.jobs import SyncRunner
from raabin_labeler.core.paths import SAMPLE_PROJECT_DIR
from raabin_labeler.core.nucleus import (BATCH_WORK_SIZE, EASY_GT, FITTED, WORK_SIZE, NucleusMethod, NucleusSession,
                                         cell_outline, clean_nucleus, cmyk_magenta,
                                         combined_threshold, compose_mask, gray_world_balance,
                                         nuclear_magenta, nucleus_thresholds, segment_nucleus)
from raabin_labeler.errors import UserError

DATASET1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "segmentation_wbc" / "dataset1"


def crop(number: int) -> np.ndarray:
    return np.asarray(Image.open(DATASET1 / f"{number:03d}.bmp").convert("RGB"))


def truth(number: int) -> np.ndarray:
    return np.asarray(Image.open(DATASET1 / f"{number:03d}.png").convert("L")) == 255


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_gray_world_balance_matches_hand_computed_pixels():
    rgb = np.array([[[0, 0, 0], [255, 255, 255]], [[100, 50, 25], [20, 40, 60]]], np.uint8)
    # channel means 93.75, 86.25, 85; gray 88.33; scales 0.9422, 1.0242, 1.0392
    expected = [[[0, 0, 0], [240, 255, 255]], [[94, 51, 26], [19, 41, 62]]]
    assert gray_world_balance(rgb).tolist() == expected


def test_gray_world_balance_leaves_an_empty_channel_alone():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 90
    assert gray_world_balance(rgb)[..., 0].tolist() == [[30, 30], [30, 30]]
    assert gray_world_balance(rgb)[..., 1:].max() == 0


def test_cmyk_magenta_matches_the_formula_including_black_and_white():
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [200, 100, 50],
                        [50, 100, 200], [0, 255, 0], [10, 0, 5]]], np.uint8)
    # black: K = 1, M defined as 0; white: K = 0, M = 0; (200,100,50): K = 0.216, M = 0.5 -> 128
    assert cmyk_magenta(pixels).tolist() == [[0, 0, 255, 128, 128, 0, 255]]
    # against blue: red eosin (B < G or B = 0) is not magenta any more; violet still is
    assert nuclear_magenta(pixels).tolist() == [[0, 0, 0, 0, 128, 0, 255]]


def test_thresholds_equal_scikit_image():
    channel = cmyk_magenta(gray_world_balance(crop(2)))
    th = nucleus_thresholds(channel)
    assert th.t2 == threshold_otsu(channel)
    assert (th.t3_low, th.t3_up) == tuple(threshold_multiotsu(channel, classes=3))
    assert combined_threshold(th, 0.0) == th.t2
    assert combined_threshold(th, 1.0) == th.t3_up


def test_flat_crop_has_thresholds_and_an_empty_nucleus():
    flat = np.full((40, 30, 3), 128, np.uint8)
    assert nucleus_thresholds(cmyk_magenta(flat)).t2 == 0
    mask = segment_nucleus(flat)
    assert mask.shape == (40, 30) and not mask.any()


def test_alpha_zero_is_the_easy_gt_program_mask():
    rgb = crop(2)
    big = cv2.resize(rgb, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_LINEAR)
    m = cmyk_magenta(gray_world_balance(big))
    expected = NucleusSession(rgb, EASY_GT).mask_for(threshold_otsu(m))
    assert np.array_equal(expected, m > threshold_otsu(m))
    assert NucleusSession(rgb, EASY_GT).auto_threshold == threshold_otsu(m)


def test_higher_threshold_gives_a_smaller_nucleus():
    session = NucleusSession(crop(5))
    areas = [session.mask_for(session.auto_threshold + step).sum() for step in (-20, -5, 0, 5, 20)]
    assert areas == sorted(areas, reverse=True) and areas[0] > areas[-1]
    shifted = segment_nucleus(crop(5), threshold_offset=+20)
    assert shifted.sum() < segment_nucleus(crop(5)).sum()


def test_clean_up_drops_specks_and_fills_holes():
    mask = np.zeros((100, 100), bool)
    mask[20:60, 20:60] = True
    mask[35:45, 35:45] = False  # a hole (pale chromatin)
    mask[80:83, 80:83] = True  # a speck: 9 px, under a tenth of 1600
    mask[5:20, 70:90] = True  # a second lobe: 300 px, kept
    cleaned = clean_nucleus(mask)
    assert cleaned[40, 40] and not cleaned[81, 81] and cleaned[10, 80]
    assert cleaned.sum() == 1600 + 300
    grown = clean_nucleus(mask, dilate=0.05)  # 0.05 * sqrt(1900) = 2 px
    assert grown[18, 40] and not grown[17, 40]


def test_overlay_blends_only_the_nucleus():
    session = NucleusSession(crop(7))
    mask = session.mask_for(session.auto_threshold)
    shown = session.overlay(session.auto_threshold, color=(0, 255, 0), opacity=0.5)
    assert shown.shape == (WORK_SIZE, WORK_SIZE, 3)
    assert np.array_equal(shown[~mask], session.rgb[~mask])
    assert (shown[mask][:, 1].astype(int) >= session.rgb[mask][:, 1]).all()
    assert not np.array_equal(shown[mask], session.rgb[mask])


def test_compose_mask_uses_the_format_values():
    cell = np.zeros((4, 4), bool)
    cell[1:3, 1:4] = True
    nucleus = np.zeros((4, 4), bool)
    nucleus[1, 1] = True
    out = compose_mask(cell, nucleus)
    assert out.dtype == np.uint8 and out[1, 1] == 255 and out[2, 2] == 128 and out[0, 0] == 0
    assert set(np.unique(compose_mask(cell, None))) == {0, 128}  # basophil: whole cell only
    with pytest.raises(ValueError, match="differ in size"):
        compose_mask(cell, np.zeros((3, 3), bool))


def test_bad_parameters_and_images_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        NucleusMethod("nuclear_magenta", alpha=1.5)
    with pytest.raises(ValueError, match="RGB uint8"):
        segment_nucleus(np.zeros((10, 10), np.uint8))


def test_real_crops_reach_a_sane_dice():
    numbers = (1, 2, 3, 51, 101, 151, 201, 251)
    scores = [dice(segment_nucleus(crop(n)), truth(n)) for n in numbers]
    assert np.mean(scores) > 0.9, scores
    cell = cell_outline(crop(1))
    nucleus = segment_nucleus(crop(1))
    assert cell.shape == nucleus.shape and cell.sum() > nucleus.sum()
    assert (cell | ~nucleus).all()  # the cell holds its nucleus


def test_automatic_outline_keeps_pale_cytoplasm():
    # dataset1 cells whose pale cytoplasm the three-class split put with the background
    # (whole-cell Dice 0.72-0.82 then); the four-class background threshold keeps it
    for number in (52, 55, 61, 85):
        cell = np.asarray(Image.open(DATASET1 / f"{number:03d}.png").convert("L")) >= 128
        assert dice(cell_outline(crop(number)), cell) > 0.89, number


@pytest.mark.parametrize("photo, mask", [("cam-b/field-03.jpg", "t-06-3"), ("cam-b/field-02.jpg", "t-04-2"),
                                         ("cam-a/field-03.jpg", "t-05-2")])
def test_automatic_outline_finds_pale_cytoplasm_that_fills_the_box(photo, mask):
    # sample-project cells whose pale cytoplasm fills their box, with almost no background
    # around: the stain threshold alone outlined little more than the nucleus (Dice ≈ 0.46)
    record = json.loads((SAMPLE_PROJECT_DIR / "annotations" / "truth" / f"{photo}.json").read_text())
    cell = next(c for c in record["cells"] if c.get("nucleus_mask", "").endswith(f"/{mask}.png"))
    x1, y1, x2, y2 = cell["box"]
    rgb = np.asarray(Image.open(SAMPLE_PROJECT_DIR / "images" / photo).convert("RGB"))[y1:y2, x1:x2]
    truth = np.asarray(Image.open(SAMPLE_PROJECT_DIR / cell["nucleus_mask"]).convert("L")) >= 128
    assert dice(cell_outline(rgb), truth) > 0.85


@pytest.mark.parametrize("size", [(575, 575), (600, 575), (333, 700), (145, 1000), (1200, 160)])
def test_batch_nucleus_outline_search_misses_nothing(size):
    # The batch searches only a box around the work-size nucleus for the enlarged outline; a
    # full search of the enlarged channel must find the same nucleus, at any crop size.
    for number in (1, 4, 151):
        session = NucleusSession(crop(number), FITTED, BATCH_WORK_SIZE)
        enlarged = cv2.resize(session.channel, size, interpolation=cv2.INTER_LINEAR)
        full = cv2.threshold(enlarged, session.auto_threshold, 1, cv2.THRESH_BINARY)[1]
        expected = clean_nucleus(full)
        assert expected.any()
        assert np.array_equal(session.automatic_mask(size, nucleus_only=True) == 255, expected)


def _crops_folder(folder: Path) -> dict[str, tuple[int, int]]:
    """Three real crops as jpg, png and bmp of different sizes; {stem: (width, height)}."""
    folder.mkdir()
    sizes = {}
    for number, suffix, size in ((1, ".jpg", (120, 120)), (2, ".png", (90, 130)), (3, ".bmp", (600, 575))):
        image = Image.fromarray(crop(number)).resize(size)
        image.save(folder / f"cell{number}{suffix}")
        sizes[f"cell{number}"] = size
    return sizes


def _args(crops: Path, out: Path, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    nucleus_command.register(parser.add_subparsers())
    return parser.parse_args(["nucleus", str(crops), "--out", str(out), *flags])


def test_batch_command_writes_same_stem_masks_of_the_crop_size(tmp_path, capsys):
    sizes = _crops_folder(tmp_path / "crops")
    args = _args(tmp_path / "crops", tmp_path / "masks")
    assert args.run(args) == 0
    written = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert written == ["cell1.png", "cell2.png", "cell3.png"]
    for stem, size in sizes.items():
        mask = Image.open(tmp_path / "masks" / f"{stem}.png")
        assert mask.mode == "L" and mask.size == size
        values = set(np.unique(np.asarray(mask)))
        assert values <= {0, 128, 255} and 255 in values
    assert "3 masks written" in capsys.readouterr().out


def test_a_rerun_keeps_masks_already_there_unless_told_to_overwrite(tmp_path, capsys):
    _crops_folder(tmp_path / "crops")
    masks = tmp_path / "masks"
    masks.mkdir()
    corrected = np.full((120, 120), 128, np.uint8)  # an expert's hand-corrected mask of cell1
    Image.fromarray(corrected).save(masks / "cell1.png")
    args = _args(tmp_path / "crops", masks)
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "2 masks written" in out and "1 crops already had a mask there, kept" in out
    assert np.array_equal(np.asarray(Image.open(masks / "cell1.png")), corrected)
    assert args.run(args) == 0  # nothing left to do: an interrupted run resumes this way
    assert "0 masks written" in capsys.readouterr().out
    args = _args(tmp_path / "crops", masks, "--overwrite")
    assert args.run(args) == 0
    assert "3 masks written" in capsys.readouterr().out
    assert 255 in np.asarray(Image.open(masks / "cell1.png"))


def test_bad_crop_is_named_and_the_others_are_still_done(tmp_path):
    _crops_folder(tmp_path / "crops")
    (tmp_path / "crops" / "broken.jpg").write_bytes(b"not a jpeg at all")
    crops = nucleus_command.find_crops(tmp_path / "crops")
    written, errors = nucleus_command.make_masks(crops, tmp_path / "masks", runner=SyncRunner())
    assert written == 3
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "not an image" in errors[0]
    assert not (tmp_path / "masks" / "broken.png").exists()
    args = _args(tmp_path / "crops", tmp_path / "masks2")
    with pytest.raises(UserError, match="1 of 4 crops failed"):
        args.run(args)


def test_a_greyscale_crop_is_refused_not_given_an_empty_mask(tmp_path):
    """Without colour there is no nucleus to find; an empty mask would pass for a result (and a
    re-run keeps existing masks)."""
    _crops_folder(tmp_path / "crops")
    Image.fromarray(crop(1)).convert("L").save(tmp_path / "crops" / "grey.png")
    Image.fromarray((np.asarray(Image.fromarray(crop(2)).convert("L")).astype(np.uint16) * 257)).save(
        tmp_path / "crops" / "grey16.png")
    crops = nucleus_command.find_crops(tmp_path / "crops")
    written, errors = nucleus_command.make_masks(crops, tmp_path / "masks", runner=SyncRunner())
    assert written == 3 and len(errors) == 2
    assert all("greyscale crop" in e for e in errors)
    assert not (tmp_path / "masks" / "grey.png").exists() and not (tmp_path / "masks" / "grey16.png").exists()


def test_an_output_folder_that_cannot_take_the_masks_is_refused_once(tmp_path):
    _crops_folder(tmp_path / "crops")
    (tmp_path / "taken").write_text("a file, not a folder")
    args = _args(tmp_path / "crops", tmp_path / "taken")
    with pytest.raises(UserError, match="taken: cannot write the masks there"):
        args.run(args)


def test_masks_are_never_written_over_the_crops(tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    Image.fromarray(crop(4)).save(folder / "cell4.png")
    before = (folder / "cell4.png").read_bytes()
    args = _args(folder, folder)  # --out the crops' own folder: cell4.png would become a mask
    with pytest.raises(UserError, match="cell4.png: its mask would be written over the crop itself"):
        args.run(args)
    assert (folder / "cell4.png").read_bytes() == before
    # into another folder: whole files only, no partial left behind
    args = _args(folder, tmp_path / "masks")
    assert args.run(args) == 0
    assert [p.name for p in (tmp_path / "masks").iterdir()] == ["cell4.png"]


def test_two_crops_with_one_stem_are_refused_and_glob_chooses(tmp_path, capsys):
    _crops_folder(tmp_path / "crops")
    Image.fromarray(crop(4)).save(tmp_path / "crops" / "cell1.png")  # e.g. a mask next to its crop
    with pytest.raises(UserError, match=r"cell1.jpg and cell1.png .*--glob '\*.jpg'"):
        nucleus_command.find_crops(tmp_path / "crops")
    args = _args(tmp_path / "crops", tmp_path / "masks", "--glob", "*.jpg")
    assert args.run(args) == 0 and [p.name for p in (tmp_path / "masks").iterdir()] == ["cell1.png"]
    assert "1 masks written" in capsys.readouterr().out
    args = _args(tmp_path / "crops", tmp_path / "masks", "--glob", "*.tif")
    with pytest.raises(UserError, match=r"no image files .* matching \*.tif"):
        args.run(args)


def test_batch_mask_of_a_large_rotated_jpeg_has_the_displayed_size(tmp_path):
    """A 1/2-scale JPEG decode keeps the EXIF frame and the crop's exact size (issue 6, batch)."""
    image = Image.fromarray(crop(1)).resize((700, 601))
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated by 90°: 601 wide, 700 high
    image.save(tmp_path / "cell.jpg", exif=exif, quality=95)
    size, rgb = nucleus_command.read_crop(tmp_path / "cell.jpg", 288)
    assert size == (601, 700) and rgb.shape == (350, 301, 3)  # decoded at half scale
    nucleus_command.write_mask((tmp_path / "cell.jpg", tmp_path, False))
    mask = np.asarray(Image.open(tmp_path / "cell.png"))
    assert mask.shape == (700, 601) and set(np.unique(mask)) == {0, 128, 255}
    expected = segment_nucleus(np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "cell.jpg"))))
    assert dice(mask == 255, expected) > 0.95  # same nucleus as the 575 panel's


@pytest.mark.parametrize("stored, orientation", [((575, 575), 1), ((577, 575), 6), ((574, 575), 6), ((574, 575), 1)])
def test_jpeg_size_is_the_displayed_one_even_when_the_decode_cannot_tell(tmp_path, stored, orientation):
    """574×575 turned decodes to 144×144 at 1/4 scale either way: the size comes from Pillow then."""
    image = Image.fromarray(crop(2)).resize(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "cell.jpg", exif=exif, quality=90)
    shown = ImageOps.exif_transpose(Image.open(tmp_path / "cell.jpg"))
    size, rgb = nucleus_command.read_crop(tmp_path / "cell.jpg", 144)
    assert size == shown.size and rgb.shape[:2] == (-(-shown.height // 4), -(-shown.width // 4))


def _report_opencv_threads(task):
    raise ValueError(f"opencv threads {cv2.getNumThreads()}")


def test_batch_workers_run_opencv_on_one_thread_each_and_the_caller_gets_its_own_back(tmp_path, monkeypatch):
    _crops_folder(tmp_path / "crops")
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)  # as on a 2-core machine; the pool's two processes already fill both cores
    monkeypatch.setattr(nucleus_command, "write_mask", _report_opencv_threads)  # the forked workers see it too
    try:
        written, errors = nucleus_command.make_masks(nucleus_command.find_crops(tmp_path / "crops"), tmp_path / "masks")
        assert written == 0 and len(errors) == 3 and all("opencv threads 1" in e for e in errors), errors
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
