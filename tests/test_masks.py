"""Nucleus / whole-cell masks: the PNG store, the panel's controller, and the masks export.

The controller tests run on a real BCCD photo (a Giemsa-like smear) and its corrected WBC box,
through the real LabelingController and Autosaver, and read back what reached the disk.
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from raabin_labeler.app.autosave import Autosaver
from raabin_labeler.app.labeling import LabelingController
from raabin_labeler.app.nucleus import (NucleusPanelController, edge_at, fill_polygon, method_for, prepare_session,
                                        vertex_at)
from raabin_labeler.core.annotation import Box, Cell
from raabin_labeler.core.formats.exporter import export_annotations
from raabin_labeler.core.imageio import open_image
from raabin_labeler.core.masks import (ADJUSTED, AUTO, FAILED, MaskError, load_cell_mask, mask_rel_path,
                                       read_mask, save_cell_mask)
from raabin_labeler.core.nucleus import FITTED, FITTED_THRESHOLD
from raabin_labeler.core.project import Project
from raabin_labeler.core.store import load_annotation
from raabin_labeler.errors import UserError

from tests.conftest import SyncExecutor
from tests.test_labeling_controller import Clock

EXPERT = "expert-a"
PHOTO = "BloodImage_00000.jpg"
WBC = Box(260, 177, 491, 376)  # wbc_boxes_corrected.csv, BloodImage_00000
OTHER = Box(20, 20, 120, 110)  # a patch of red cells and background


@pytest.fixture
def project(tmp_path, bccd) -> Project:
    photos = tmp_path / "photos"
    photos.mkdir()
    os.symlink(bccd / "JPEGImages" / PHOTO, photos / PHOTO)
    return Project.create(tmp_path / "project", images=photos, experts=[EXPERT])


def labeling(project: Project) -> LabelingController:
    clock = Clock()
    saver = Autosaver(project.save, delay=0.5, clock=clock, executor=SyncExecutor())
    ctl = LabelingController(project, EXPERT, autosaver=saver, clock=clock)
    ctl.open_index(0)
    return ctl


@pytest.fixture
def ctl(project) -> LabelingController:
    ctl = labeling(project)
    ctl.add_cell(WBC, "neutrophil")
    ctl.add_cell(OTHER)
    return ctl


def the_cell(ctl: LabelingController, box: Box = WBC) -> Cell:
    return next(c for c in ctl.cells() if c.box == box)


def panel(ctl: LabelingController, box: Box = WBC) -> NucleusPanelController:
    """As the panel opens a cell: the session on the method its saved threshold belongs to."""
    photo = open_image(ctl.project.image_path(ctl.image))
    cell = the_cell(ctl, box)
    return NucleusPanelController(ctl, cell.id, prepare_session(photo, box, method_for(cell)))


def flushed(ctl: LabelingController):
    assert ctl.autosaver.flush() is None
    return load_annotation(ctl.project.annotation_path(EXPERT, PHOTO))


# -- the store -------------------------------------------------------------------------------
def test_a_mask_round_trips_through_the_store_at_the_format_path(project):
    cell = Cell.new(Box(10, 20, 40, 45))
    mask = np.zeros((25, 30), np.uint8)
    mask[5:20, 5:25] = 128
    mask[8:15, 10:18] = 255
    saved = save_cell_mask(project, EXPERT, "smear07/IMG_0012.jpg", cell, mask, threshold=97,
                           outline=[(5, 5), (24, 5), (24, 19)], status=ADJUSTED)
    assert saved.nucleus_mask == f"masks/{EXPERT}/smear07/IMG_0012.jpg/{cell.id}.png"
    assert saved.extra == {"mask_status": "adjusted", "nucleus_threshold": 97,
                           "cell_outline": [[5, 5], [24, 5], [24, 19]]}
    np.testing.assert_array_equal(load_cell_mask(project, saved), mask)
    # the file is a plain 8-bit grayscale PNG of the box's size; no temporary file is left behind
    path = project.mask_path(saved.nucleus_mask)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "L", (30, 25))
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    # the keys survive the annotation JSON (unknown keys are kept) and a cell without one has no mask
    assert Cell.from_dict(saved.to_dict()) == saved
    assert load_cell_mask(project, cell) is None


def test_a_mask_of_the_wrong_size_or_values_is_refused_before_writing(project):
    cell = Cell.new(Box(0, 0, 30, 20))
    with pytest.raises(ValueError, match="box"):
        save_cell_mask(project, EXPERT, PHOTO, cell, np.zeros((30, 20), np.uint8), threshold=1, outline=None,
                       status=AUTO)
    with pytest.raises(ValueError, match="value 7"):
        save_cell_mask(project, EXPERT, PHOTO, cell, np.full((20, 30), 7, np.uint8), threshold=1, outline=None,
                       status=AUTO)
    assert not (project.root / "masks").exists()


def test_broken_mask_files_give_errors_naming_the_file(project):
    cell = Cell.new(Box(0, 0, 30, 20)).edited(nucleus_mask=mask_rel_path(EXPERT, PHOTO, "c-x"))
    path = project.mask_path(cell.nucleus_mask)
    path.parent.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).choice([0, 128, 255], (20, 30)).astype(np.uint8)).save(path, "PNG")
    noise_png = path.read_bytes()
    cases = {
        "wrong size": (lambda: Image.new("L", (31, 20)).save(path, "PNG"), "31×20 px but the cell's box is 30×20"),
        "wrong values": (lambda: Image.new("L", (30, 20), 17).save(path, "PNG"), "value 17"),
        "colour": (lambda: Image.new("RGB", (30, 20)).save(path, "PNG"), "RGB PNG"),
        "jpeg": (lambda: Image.new("L", (30, 20)).save(path, "JPEG"), "not a PNG"),
        "garbage": (lambda: path.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing"), "not a PNG image"),
        "truncated": (lambda: path.write_bytes(noise_png[:len(noise_png) // 2]), "truncated"),
    }
    for name, (make, problem) in cases.items():
        make()
        with pytest.raises(MaskError) as err:
            load_cell_mask(project, cell)
        assert str(path) in str(err.value) and problem in str(err.value), name
    path.unlink()
    with pytest.raises(MaskError, match="file not found"):
        read_mask(path, (30, 20))


# -- the panel's controller ----------------------------------------------------------------------
def test_the_slider_value_and_outline_persist_across_reopening_and_reloading(ctl, project):
    first = panel(ctl)
    auto = first.session.auto_threshold
    assert first.threshold == auto and first.status() == AUTO
    first.step(+10)
    first.step(+5)
    first.step(-1)
    assert first.threshold == auto + 14 and first.status() == ADJUSTED
    shown = first.mask()
    saved = first.save()
    assert saved.extra["nucleus_threshold"] == auto + 14 and saved.extra["mask_status"] == ADJUSTED
    assert saved.extra["nucleus_channel"] == FITTED.channel
    np.testing.assert_array_equal(load_cell_mask(project, saved), shown)
    # reopen in the same session: the slider and outline come back, so the mask is the same
    again = panel(ctl)
    assert again.threshold == auto + 14 and again.outline == [tuple(p) for p in saved.extra["cell_outline"]]
    np.testing.assert_array_equal(again.mask(), shown)
    # and after the file went to disk and a new session read it
    flushed(ctl)
    later = panel(labeling(project))
    assert later.threshold == auto + 14
    np.testing.assert_array_equal(later.mask(), shown)



def test_higher_threshold_means_a_smaller_nucleus_and_the_buttons_clip(ctl):
    p = panel(ctl)
    sizes = []
    for t in (p.session.auto_threshold - 20, p.session.auto_threshold, p.session.auto_threshold + 20):
        p.set_threshold(t)
        sizes.append(int((p.mask() == 255).sum()))
    assert sizes[0] > sizes[1] > sizes[2] > 0
    p.set_threshold(250)
    p.step(+20)
    assert p.threshold == 255
    p.set_threshold(3)
    p.step(-5)
    assert p.threshold == 0


def test_cytoplasm_is_the_outlined_cell_minus_the_nucleus(ctl):
    p = panel(ctl)
    w, h = p.crop_size
    # a hand-drawn square outline, stroked with the pen
    square = [(20, 20), (w - 20, 20), (w - 20, h - 20), (20, h - 20)]
    p.begin_stroke(*square[0])
    for (x0, y0), (x1, y1) in zip(square, square[1:] + square[:1]):
        for t in np.linspace(0, 1, 12)[1:]:
            p.extend_stroke(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    assert p.end_stroke() and p.outline_by_hand and p.status() == ADJUSTED
    assert len(p.outline) <= 6  # simplified to a handful of handles
    mask = p.mask()
    cell = fill_polygon(p.outline, p.crop_size)
    nucleus = p.session.crop_mask(p.threshold)
    np.testing.assert_array_equal(mask == 255, nucleus & cell)
    np.testing.assert_array_equal(mask == 128, cell & ~nucleus)
    np.testing.assert_array_equal(mask == 0, ~cell)
    assert (mask == 128).sum() > 0 and (mask == 255).sum() > 0
    # the automatic outline holds the automatic nucleus and sits inside the box
    p.use_auto_outline()
    assert not p.outline_by_hand
    auto = p.mask()
    assert (auto == 255).sum() >= 0.95 * p.session.crop_mask(p.threshold).sum()
    assert 0 < (auto > 0).mean() < 0.95


def test_outline_vertices_can_be_moved_inserted_and_deleted(ctl):
    p = panel(ctl)
    p._set_outline([(10.0, 10.0), (100.0, 10.0), (100.0, 100.0), (10.0, 100.0)], by_hand=True)
    assert vertex_at(p.outline, 98, 12, 5) == 1 and vertex_at(p.outline, 55, 55, 5) is None
    assert edge_at(p.outline, 55, 11, 3) == 0 and edge_at(p.outline, 11, 55, 3) == 3
    p.move_vertex(2, 120, 130)
    assert p.outline[2] == (120, 130)
    p.move_vertex(2, 5000, -5)  # dragged past the crop: stays on its edge
    assert p.outline[2] == (p.crop_size[0] - 1, 0)
    assert p.insert_vertex(0, 55, 10) == 1 and len(p.outline) == 5
    assert p.delete_vertex(1) and p.delete_vertex(0) and len(p.outline) == 3
    assert not p.delete_vertex(0) and len(p.outline) == 3  # a polygon keeps three vertices
    # a click or a scribble is no outline: the old one stays
    before = list(p.outline)
    p.begin_stroke(50, 50)
    p.extend_stroke(51, 50)
    assert not p.end_stroke() and p.outline == before


def test_a_basophil_gets_a_whole_cell_mask_of_128_only(ctl, project):
    ctl.select(the_cell(ctl).id)
    ctl.label_selected("basophil")
    p = panel(ctl)
    assert p.whole_cell_only
    saved = p.save()
    mask = load_cell_mask(project, saved)
    assert set(np.unique(mask)) == {0, 128}
    assert (mask == 128).mean() > 0.2
    assert "nucleus_threshold" not in saved.extra and saved.extra["mask_status"] == AUTO
    # the overlay shows no nucleus either
    np.testing.assert_array_equal(p.overlay(), p.session.rgb)


def test_failed_is_recorded_without_a_mask_and_reaches_the_disk(ctl):
    p = panel(ctl)
    p.save()
    failed = p.mark_failed()
    assert failed.nucleus_mask is None and failed.extra == {"mask_status": FAILED}
    on_disk = next(c for c in flushed(ctl).cells if c.id == failed.id)
    assert on_disk.extra == {"mask_status": FAILED} and on_disk.nucleus_mask is None
    # reopening starts from the automatic values again
    assert panel(ctl).threshold == p.session.auto_threshold


def test_a_mask_save_is_one_undoable_step(ctl):
    cell_id = the_cell(ctl).id
    before = the_cell(ctl)
    p = panel(ctl)
    p.step(+5)
    saved = p.save()
    assert the_cell(ctl) == saved
    ctl.undo()
    assert the_cell(ctl) == before and the_cell(ctl).nucleus_mask is None
    assert flushed(ctl).cell(cell_id).nucleus_mask is None
    ctl.redo()
    assert the_cell(ctl).nucleus_mask == saved.nucleus_mask
    assert flushed(ctl).cell(cell_id).extra["nucleus_threshold"] == saved.extra["nucleus_threshold"]


def test_saving_a_proposal_adopts_it_with_the_detectors_id(project):
    from raabin_labeler.core.annotation import ImageAnnotation
    from raabin_labeler.core.project import DETECTOR, author_for
    proposal = Cell.new(WBC, source="detector:colorfilter-1")
    project.save(ImageAnnotation(project.image_ref(PHOTO), author_for(DETECTOR), (proposal,)))
    ctl = labeling(project)
    assert ctl.find(proposal.id)[1]  # still a proposal
    saved = NucleusPanelController(ctl, proposal.id, prepare_session(open_image(project.image_path(PHOTO)),
                                                                     WBC)).save()
    assert ctl.find(proposal.id) == (saved, False) and saved.source == proposal.source


def test_saving_after_the_box_was_moved_or_resized_is_refused(ctl):
    """The panel's mask is of the crop it opened on: on a moved box it would be misaligned."""
    p = panel(ctl)
    ctl.select(p.cell_id)
    ctl.nudge(1, 0)
    with pytest.raises(UserError, match="moved or resized"):
        p.save()
    ctl.set_box(p.cell_id, Box(WBC.x1, WBC.y1, WBC.x2 + 10, WBC.y2))
    with pytest.raises(UserError, match="moved or resized"):
        p.save()


def test_moving_resizing_or_relabeling_across_the_basophil_line_drops_a_saved_mask(ctl, project, tmp_path):
    """The mask no longer fits (found by QA: exported misaligned, or the masks export refused);
    undo brings the box and its mask back together."""
    saved = panel(ctl).save()
    ctl.select(saved.id)
    ctl.nudge(3, 0)
    moved = the_cell(ctl, Box(WBC.x1 + 3, WBC.y1, WBC.x2 + 3, WBC.y2))
    assert moved.nucleus_mask is None and "mask_status" not in moved.extra and "nucleus_threshold" not in moved.extra
    ctl.undo()
    assert the_cell(ctl) == saved
    ctl.begin_edit()  # a drag on a corner handle, as the window does it
    ctl.set_box(saved.id, Box(WBC.x1, WBC.y1, WBC.x2 + 10, WBC.y2))
    ctl.end_edit()
    assert ctl.annotation.cell(saved.id).nucleus_mask is None
    ctl.undo()
    flushed(ctl)
    export_annotations(project, "masks", [EXPERT], tmp_path / "m")  # the export goes through
    ctl.label_selected("neutrophil.band")  # still a nucleus split: the mask stays
    assert ctl.annotation.cell(saved.id).nucleus_mask == saved.nucleus_mask
    ctl.select(saved.id)  # labeling moved on to the next cell to label
    ctl.label_selected("basophil")  # whole-cell only from now on
    assert ctl.annotation.cell(saved.id).nucleus_mask is None


def test_a_second_save_never_overwrites_the_png_an_undo_points_back_at(ctl, project):
    p = panel(ctl)
    first = p.save()
    p.step(+40)
    second = p.save()
    assert second.nucleus_mask != first.nucleus_mask
    shown = load_cell_mask(project, second)
    ctl.undo()
    assert the_cell(ctl).nucleus_mask == first.nucleus_mask
    assert not np.array_equal(load_cell_mask(project, the_cell(ctl)), shown)  # the first mask, as it was
    ctl.redo()
    np.testing.assert_array_equal(load_cell_mask(project, the_cell(ctl)), shown)
    # the same mask saved again is the same file
    again = panel(ctl).save()
    assert again.nucleus_mask == second.nucleus_mask


# -- the masks export ----------------------------------------------------------------------
def test_masks_export_copies_each_png_and_lists_every_cell(ctl, project, tmp_path):
    p = panel(ctl)
    p.step(+3)
    saved = p.save()
    flushed(ctl)
    out = tmp_path / "export"
    report = export_annotations(project, "masks", [EXPERT], out)
    copied = out / "BloodImage_00000" / f"{saved.id}.png"
    assert copied.read_bytes() == project.mask_path(saved.nucleus_mask).read_bytes()
    with open(out / "masks.csv", newline="") as handle:
        rows = {row["cell_id"]: row for row in csv.DictReader(handle)}
    other = the_cell(ctl, OTHER)
    assert rows[saved.id] == {"photo": PHOTO, "cell_id": saved.id, "label": "neutrophil",
                              "x1": "260", "y1": "177", "x2": "491", "y2": "376", "mask_status": "adjusted",
                              "threshold": str(p.threshold), "mask": f"BloodImage_00000/{saved.id}.png"}
    assert rows[other.id]["mask_status"] == "none" and rows[other.id]["mask"] == ""
    assert report.written.startswith("1 mask(s)") and "1 cell(s) without a mask" in report.written


def test_masks_export_stops_on_a_broken_mask_naming_it(ctl, project, tmp_path):
    saved = panel(ctl).save()
    flushed(ctl)
    path = project.mask_path(saved.nucleus_mask)
    Image.new("L", (5, 5)).save(path, "PNG")
    with pytest.raises(UserError) as err:
        export_annotations(project, "masks", [EXPERT], tmp_path / "export")
    assert str(path) in str(err.value) and "5×5" in str(err.value)
    assert not (tmp_path / "export" / "masks.csv").exists()


def test_the_cli_exports_masks(ctl, project, tmp_path):
    from raabin_labeler.cli import main
    panel(ctl).save()
    flushed(ctl)
    assert main(["export", str(project.root), "--format", "masks", "--who", EXPERT,
                 "--out", str(tmp_path / "cli")]) == 0
    assert len(list((tmp_path / "cli" / "BloodImage_00000").glob("*.png"))) == 1


def test_a_threshold_saved_under_the_earlier_default_reopens_on_its_own_scale(ctl, project):
    """Cells adjusted before the per-pixel model became the default keep the expert's mask."""
    photo = open_image(project.image_path(ctl.image))
    old_session = prepare_session(photo, WBC, FITTED_THRESHOLD)
    legacy_threshold = old_session.auto_threshold + 12
    cell = the_cell(ctl)
    # what an earlier version wrote: a threshold, no channel key
    ctl.replace_cell(replace(cell, extra={**cell.extra, "nucleus_threshold": legacy_threshold,
                                          "mask_status": ADJUSTED}))
    reopened = panel(ctl)
    assert reopened.session.method == FITTED_THRESHOLD and reopened.threshold == legacy_threshold
    np.testing.assert_array_equal(reopened.session.mask_for(legacy_threshold), old_session.mask_for(legacy_threshold))
    saved = reopened.save()
    assert saved.extra["nucleus_channel"] == FITTED_THRESHOLD.channel
    # a cell never adjusted opens on the default model
    assert panel(ctl, OTHER).session.method == FITTED
