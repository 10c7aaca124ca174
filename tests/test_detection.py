"""The colour-filter WBC detector (issue 4): synthetic smears with known cells, and real BCCD photos."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core.detection import (CellScale, ColorModel, LabeledPhoto, Proposal, default_model,
                                           detect_photo, fit_color_model, match_boxes, propose_cells)

BCCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"

BACKGROUND = (200, 202, 190)
RBC = (196, 150, 155)
NUCLEUS = (120, 100, 200)
CYTOPLASM = (190, 172, 205)
PLATELET = (150, 130, 200)
STAIN = (70, 60, 80)
CELL_R = 80  # WBC radius in px: a 160 px cell on a 640×480 photo, as in BCCD


def _smear(cells, rbcs, platelets=(), spots=(), size=(480, 640), seed=0) -> np.ndarray:
    """Draw a smear: red cells with pale centres, then WBCs (cytoplasm disc plus nucleus lobes),
    platelets and stain spots; blurred and noisy like a photo."""
    rng = np.random.default_rng(seed)
    img = np.zeros((*size, 3), np.uint8)
    img[:] = BACKGROUND
    for x, y in rbcs:
        cv2.circle(img, (x, y), 38, RBC, -1)
        cv2.circle(img, (x, y), 14, tuple(int(0.5 * a + 0.5 * b) for a, b in zip(RBC, BACKGROUND)), -1)
    for (x, y), lobes in cells:
        cv2.circle(img, (x, y), CELL_R, CYTOPLASM, -1)
        for dx, dy, r in lobes:
            cv2.circle(img, (x + dx, y + dy), r, NUCLEUS, -1)
    for x, y in platelets:
        cv2.circle(img, (x, y), 11, PLATELET, -1)
    for x, y in spots:
        cv2.circle(img, (x, y), 16, STAIN, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.5).astype(np.int16)
    img += rng.normal(0, 4, img.shape).astype(np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


ROUND = [(0, 0, 50)]  # lymphocyte: one round nucleus
LOBED = [(-38, -15, 22), (0, 18, 22), (38, -12, 22)]  # neutrophil: three lobes with gaps
KIDNEY = [(-15, 0, 42), (20, 10, 35)]  # monocyte-like folded nucleus


def _cell_box(x, y, shape=(480, 640)):
    h, w = shape
    return (max(0, x - CELL_R), max(0, y - CELL_R), min(w, x + CELL_R + 1), min(h, y + CELL_R + 1))


def _found(truth, proposals, min_iou=0.5):
    return len(match_boxes(truth, [p.box for p in proposals if p.kind == "wbc"], min_iou))


@pytest.fixture(scope="module")
def model() -> ColorModel:
    return default_model()


def test_finds_every_kind_of_nucleus_and_no_platelet_or_stain_spot(model):
    cells = [((150, 140), ROUND), ((450, 150), LOBED), ((300, 360), KIDNEY)]
    rgb = _smear(cells, rbcs=[(560, 400), (80, 400), (600, 300), (40, 300), (300, 40)],
                 platelets=[(250, 230), (60, 40), (520, 320), (530, 335), (515, 338)],  # the last three: a clump
                 spots=[(420, 420), (200, 440)])
    proposals = propose_cells(rgb, model, CellScale(2 * CELL_R))
    truth = [_cell_box(x, y) for (x, y), _ in cells]
    wbcs = [p for p in proposals if p.kind == "wbc"]
    assert _found(truth, wbcs, min_iou=0.7) == 3
    assert len(wbcs) == 3, [p.box for p in wbcs]  # platelets and stain spots are not WBCs


def test_lobes_of_one_neutrophil_are_one_cell(model):
    rgb = _smear([((320, 240), LOBED)], rbcs=[(80, 80), (560, 400)])
    wbcs = [p for p in propose_cells(rgb, model, CellScale(2 * CELL_R)) if p.kind == "wbc"]
    assert len(wbcs) == 1
    assert match_boxes([_cell_box(320, 240)], [wbcs[0].box], 0.75)


def test_border_cell_is_proposed_clipped(model):
    rgb = _smear([((40, 240), ROUND), ((400, 440), LOBED)], rbcs=[(300, 100), (560, 100)])
    wbcs = [p for p in propose_cells(rgb, model, CellScale(2 * CELL_R)) if p.kind == "wbc"]
    truth = [_cell_box(40, 240), _cell_box(400, 440)]
    assert _found(truth, wbcs) == 2
    for p in wbcs:
        x1, y1, x2, y2 = p.box
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
    assert min(p.box[0] for p in wbcs) == 0


def test_two_touching_cells_are_two_proposals(model):
    cells = [((230, 240), ROUND), ((230 + 2 * CELL_R, 240), KIDNEY)]
    rgb = _smear(cells, rbcs=[(60, 60), (580, 420)])
    wbcs = [p for p in propose_cells(rgb, model, CellScale(2 * CELL_R)) if p.kind == "wbc"]
    assert _found([_cell_box(x, y) for (x, y), _ in cells], wbcs) == 2
    assert len(wbcs) == 2


def test_scale_is_estimated_from_red_cells_and_boxes_are_in_input_pixels(model):
    cells = [((320, 240), LOBED)]
    rbcs = [(80, 80), (180, 60), (560, 80), (80, 400), (560, 400), (460, 420), (180, 420)]
    rgb = _smear(cells, rbcs=rbcs)
    big = cv2.resize(rgb, (1920, 1440), interpolation=cv2.INTER_CUBIC)  # the same smear, 3× the pixels
    for image, k in ((rgb, 1), (big, 3)):
        wbcs = [p for p in propose_cells(image, model) if p.kind == "wbc"]
        truth = [tuple(k * v for v in _cell_box(320, 240))]
        assert _found(truth, wbcs, 0.7) == 1, [p.box for p in wbcs]


def test_photo_without_cells_gives_nothing(model):
    rgb = _smear([], rbcs=[(100, 100), (300, 200), (500, 300)], platelets=[(200, 300)])
    assert [p for p in propose_cells(rgb, model) if p.kind == "wbc"] == []


def test_proposals_are_typed_and_confident(model):
    rgb = _smear([((320, 240), ROUND)], rbcs=[(80, 80)])
    (p,) = propose_cells(rgb, model, CellScale(2 * CELL_R))
    assert isinstance(p, Proposal) and p.kind == "wbc"
    assert all(isinstance(v, int) for v in p.box)
    assert 0.5 <= p.confidence <= 1


def test_model_round_trips_through_json(tmp_path, model):
    path = tmp_path / "model.json"
    model.save(path)
    again = ColorModel.load(path)
    assert again == model
    assert json.loads(path.read_text())["format"] == "raabin-labeler/colorfilter-1"


def test_broken_model_file_names_the_file(tmp_path):
    from raabin_labeler.errors import FileProblem
    path = tmp_path / "model.json"
    path.write_text('{"format": "raabin-labeler/colorfilter-1", "nucleus": [1, 2]}')
    with pytest.raises(FileProblem, match="model.json"):
        ColorModel.load(path)


def test_fit_from_boxes_only_finds_the_cells(tmp_path):
    """A project without masks: the fit uses the boxes' most purple pixels as nucleus examples."""
    photos = []
    for seed, (a, b) in enumerate([((150, 150), (460, 330)), ((470, 140), (170, 340)), ((320, 240), (90, 90))]):
        cells = [(a, ROUND if seed % 2 else LOBED), (b, KIDNEY)]
        rbcs = [(590, 60), (50, 430), (600, 430), (320, 40)]
        rgb = _smear(cells, rbcs, platelets=[(320, 440), (60, 240)], seed=seed)
        photos.append(LabeledPhoto(rgb, [_cell_box(*c) for c, _ in cells]))
    fitted = fit_color_model(photos, name="synthetic")
    test = _smear([((200, 200), LOBED), ((480, 300), ROUND)], rbcs=[(600, 60), (40, 440)],
                  platelets=[(350, 420)], seed=9)
    wbcs = [p for p in propose_cells(test, fitted, CellScale(2 * CELL_R)) if p.kind == "wbc"]
    assert _found([_cell_box(200, 200), _cell_box(480, 300)], wbcs) == 2
    assert len(wbcs) == 2


def test_bad_input_is_refused(model):
    with pytest.raises(ValueError, match="RGB"):
        propose_cells(np.zeros((10, 10), np.uint8), model)


# --- real photos -------------------------------------------------------------------------------


def _bccd_val(n: int):
    from raabin_labeler.commands.evaluate_detection import load_split
    if not (BCCD / "JPEGImages").is_dir():
        pytest.fail(f"real data missing at {BCCD}")
    photos = load_split(BCCD, "val")
    return photos[:: math.ceil(len(photos) / n)][:n]


def test_real_bccd_val_photos_recall(model):
    photos = _bccd_val(8)
    truth = sum(len(p.boxes) for p in photos)
    found = sum(_found(p.boxes, propose_cells(p.rgb, model)) for p in photos)
    proposed = sum(len(propose_cells(p.rgb, model)) for p in photos)
    assert found >= truth - 1, (found, truth)
    assert proposed <= found + 1


def test_detect_photo_reports_full_size_boxes(tmp_path, model):
    """A large JPEG is decoded reduced; boxes still come back in its full displayed frame."""
    (photo,) = _bccd_val(1)
    big = cv2.resize(photo.rgb, (photo.rgb.shape[1] * 4, photo.rgb.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=92)
    proposals = detect_photo(path, model)
    truth = [tuple(4 * v for v in b) for b in photo.boxes]
    assert _found(truth, proposals) == len(truth)
    assert all(p.box[2] <= big.shape[1] and p.box[3] <= big.shape[0] for p in proposals)


def test_detect_command_writes_only_detector_files(tmp_path, model):
    """`raabin-labeler detect` on a project of real photos: proposals land in annotations/detector/."""
    import argparse
    import shutil

    from raabin_labeler.commands import detect
    from raabin_labeler.core.jobs import SyncRunner
    from raabin_labeler.core.project import Project

    photos = _bccd_val(3)
    images = tmp_path / "photos"
    images.mkdir()
    for p in photos:
        shutil.copy(BCCD / "JPEGImages" / f"{p.name}.jpg", images)
    project = Project.create(tmp_path / "proj", images=images)
    written, errors = detect.detect_project(project, model, project.images(), runner=SyncRunner())
    assert (written, errors) == (3, [])
    for p in photos:
        annotation = project.load("detector", f"{p.name}.jpg")
        assert annotation.author.kind == "detector"
        boxes = [tuple(c.box.as_list()) for c in annotation.cells]
        assert len(match_boxes(p.boxes, boxes)) == len(p.boxes)
        assert all(c.source == "detector:colorfilter-1" for c in annotation.cells)
    assert project.authors() == ["detector"]
    sub = argparse.ArgumentParser().add_subparsers()
    detect.register(sub)
    args = sub.choices["detect"].parse_args([str(project.root)])
    assert args.run(args) == 0  # everything done already: nothing to redo, still succeeds


def test_detecting_a_photo_again_keeps_the_ids_experts_refer_to(tmp_path, model):
    import shutil

    from raabin_labeler.commands import detect
    from raabin_labeler.core.jobs import SyncRunner
    from raabin_labeler.core.project import Project

    (photo,) = _bccd_val(1)
    images = tmp_path / "photos"
    images.mkdir()
    shutil.copy(BCCD / "JPEGImages" / f"{photo.name}.jpg", images)
    project = Project.create(tmp_path / "proj", images=images)
    detect.detect_project(project, model, project.images(), runner=SyncRunner())
    first = {c.id: c.box for c in project.load("detector", f"{photo.name}.jpg").cells}
    detect.detect_project(project, model, project.images(), runner=SyncRunner())
    again = {c.id: c.box for c in project.load("detector", f"{photo.name}.jpg").cells}
    assert first and again == first


# --- scale on a dense field, evaluation on a project's own truth -------------------------------


def test_red_cell_size_holds_on_a_dense_field_of_a_large_photo():
    """Gaps enclosed by touching red cells are not pale centres, however small a fraction of the
    photo they are (a 13 MP photo's red cells are ~5 % of its width, BCCD's ~17 %)."""
    from raabin_labeler.core.detection import rbc_diameter
    rng = np.random.default_rng(3)
    rbcs = [(int(x + rng.normal(0, 3)), int(y + rng.normal(0, 3)))
            for y in range(40, 1200, 68) for x in range(40 + (y // 68 % 2) * 36, 1600, 74)]
    rgb = _smear([], rbcs, size=(1200, 1600))
    diameter = rbc_diameter(rgb)
    assert diameter is not None and 0.8 * 76 <= diameter <= 1.15 * 76, diameter


def _truth_project(tmp_path):
    """A project of one synthetic photo and a "truth" author: three WBCs, a burst cell the
    colour filter cannot see (nothing drawn there), and a stain spot labelled artifact."""
    from raabin_labeler.core.annotation import Box, Cell, ImageAnnotation
    from raabin_labeler.core.project import Project, author_for

    cells = [((150, 140), ROUND), ((450, 150), LOBED), ((300, 360), KIDNEY)]
    rgb = _smear(cells, rbcs=[(560, 400), (80, 400), (600, 300)], spots=[(420, 420)])
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(rgb).save(images / "smear.png")
    project = Project.create(tmp_path / "proj", images=images)
    project.data["cell_diameter_px"] = 2 * CELL_R
    project.save_settings()
    labels = ["lymphocyte.small", "neutrophil.mature", "monocyte"]
    truth = [Cell.new(Box(*_cell_box(x, y)), label) for ((x, y), _), label in zip(cells, labels)]
    truth += [Cell.new(Box(520, 20, 620, 120), "burst"), Cell.new(Box(403, 403, 437, 437), "artifact")]
    project.save(ImageAnnotation(project.image_ref("smear.png"), author_for("truth"), tuple(truth)))
    return Project.open(project.root)


def test_project_evaluation_scores_wbcs_and_burst_and_keeps_artifacts_apart(tmp_path, model):
    from raabin_labeler.commands.evaluate_detection import read_project_truth, score_project
    from raabin_labeler.core.jobs import SyncRunner

    project = _truth_project(tmp_path)
    truth = read_project_truth(project, "truth")
    result = score_project(project, truth, model, runner=SyncRunner())
    assert (result.wbc.truth, result.wbc.matched, result.wbc.proposed) == (4, 3, 3)
    assert result.per_class == {"neutrophil": (1, 1), "lymphocyte": (1, 1), "monocyte": (1, 1), "burst": (0, 1)}
    assert (result.artifacts, result.wbc_on_artifact) == (1, 0)
    assert result.wbc.mean_iou > 0.7


def test_evaluate_detection_command_on_a_project(tmp_path, capsys, model):
    import argparse

    from raabin_labeler.commands import evaluate_detection
    from raabin_labeler.errors import UserError

    project = _truth_project(tmp_path)
    sub = argparse.ArgumentParser().add_subparsers()
    evaluate_detection.register(sub)
    parser = sub.choices["evaluate-detection"]
    args = parser.parse_args(["--project", str(project.root), "--truth", "truth"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "recall 0.7500 (3/4)" in out and "precision 1.0000 (3/3)" in out
    assert "burst 0/1" in out and "artifact cells 1" in out
    args = parser.parse_args(["--project", str(project.root), "--truth", "expert-z"])
    with pytest.raises(UserError, match="expert-z"):
        args.run(args)
    args = parser.parse_args(["--project", str(project.root), "--truth", "truth", "--fit"])
    with pytest.raises(UserError, match="other than 'truth'"):
        args.run(args)  # the truth author's own labels never train the model it scores
