"""The Easy-GT panel in the real window (issue 6): open on a cell of a real BCCD photo, move the
slider, draw the cell's outline with the mouse, save, reopen — the PNG on disk is what was shown."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core.annotation import Box
from raabin_labeler.core.masks import load_cell_mask
from raabin_labeler.core.nucleus import WORK_SIZE
from raabin_labeler.core.project import Project
from raabin_labeler.core.store import load_annotation
from raabin_labeler.ui.nucleus_panel import open_nucleus_panel

from .conftest import wait_until

PHOTO, OTHER_PHOTO = "BloodImage_00000.jpg", "BloodImage_00001.jpg"
WBC = Box(260, 177, 491, 376)  # wbc_boxes_corrected.csv
SECOND = Box(20, 20, 140, 130)


@pytest.fixture
def bccd_project(tmp_path, bccd) -> Project:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in (PHOTO, OTHER_PHOTO):
        os.symlink(bccd / "JPEGImages" / name, photos / name)
    return Project.create(tmp_path / "project", images=photos, experts=["expert-a"])


def stroke(widget, points) -> None:
    """Press, move through ``points``, release: the pen drawing a freehand outline."""
    (x0, y0), rest = points[0], points[1:]
    widget.event_generate("<ButtonPress-1>", x=round(x0), y=round(y0))
    for x, y in rest:
        widget.event_generate("<B1-Motion>", x=round(x), y=round(y), state=0x100)
    widget.event_generate("<ButtonRelease-1>", x=round(rest[-1][0]), y=round(rest[-1][1]), state=0x100)
    widget.update()


def ring(cx: float, cy: float, r: float, n: int = 40) -> list[tuple[float, float]]:
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, n + 1)]


def shown_pixels(panel) -> np.ndarray:
    """What the canvas' PhotoImage holds, read back from Tk (every 17th pixel: a 34×34 grid)."""
    photo = panel._photo._PhotoImage__photo
    step = WORK_SIZE // 32
    return np.array([[photo.get(x, y) for x in range(0, WORK_SIZE, step)] for y in range(0, WORK_SIZE, step)],
                    dtype=np.uint8)


def open_ready(window):
    panel = open_nucleus_panel(window)
    wait_until(window.root, lambda: panel.ready)
    panel.top.update()
    return panel


def test_slider_pen_save_and_reopen_show_what_is_on_disk(open_window, bccd_project):
    window = open_window(bccd_project)
    c = window.controller
    cell = c.add_cell(WBC, "neutrophil")
    panel = open_ready(window)
    ctl = panel.controller
    assert ctl.cell_id == cell.id and panel.threshold.get() == ctl.session.auto_threshold
    assert round(panel.scale.get()) == ctl.session.auto_threshold  # the slider sits where the value is
    before = shown_pixels(panel)
    # move the slider 25 levels up: the overlay on the canvas changes, the nucleus shrinks
    nucleus_before = int((ctl.mask() == 255).sum())
    panel.scale.set(ctl.session.auto_threshold + 25)
    panel.top.update()
    assert ctl.threshold == ctl.session.auto_threshold + 25 == panel.threshold.get()
    assert (ctl.mask() == 255).sum() < nucleus_before
    assert not np.array_equal(shown_pixels(panel), before)
    # a step button on top of it
    panel.step_buttons[-5].invoke()
    assert ctl.threshold == ctl.session.auto_threshold + 20
    # draw the cell's outline with the mouse: a circle around the crop's centre
    stroke(panel.canvas, ring(WORK_SIZE / 2, WORK_SIZE / 2, 200))
    assert ctl.outline_by_hand and len(panel.canvas.find_withtag("handle")) == len(ctl.outline) >= 6
    assert panel.canvas.itemcget("pen", "state") == "hidden"
    # drag one handle outward; right-click another to delete it; double-click an edge to add one
    sx, sy = WORK_SIZE / ctl.crop_size[0], WORK_SIZE / ctl.crop_size[1]
    hx, hy = ctl.outline[0][0] * sx, ctl.outline[0][1] * sy
    stroke(panel.canvas, [(hx, hy), (hx + 10, hy), (hx + 20, hy + 5)])
    assert abs(ctl.outline[0][0] * sx - (hx + 20)) < 1.5 and abs(ctl.outline[0][1] * sy - (hy + 5)) < 1.5
    count = len(ctl.outline)
    vx, vy = ctl.outline[2][0] * sx, ctl.outline[2][1] * sy
    panel.canvas.event_generate("<ButtonPress-3>", x=round(vx), y=round(vy))
    panel.canvas.update()
    assert len(ctl.outline) == count - 1
    (ax, ay), (bx, by) = ctl.outline[3], ctl.outline[4]
    mx, my = (ax + bx) / 2 * sx, (ay + by) / 2 * sy
    for _ in range(2):  # two quick presses: Tk makes the second a <Double-Button-1>
        panel.canvas.event_generate("<ButtonPress-1>", x=round(mx), y=round(my))
        panel.canvas.event_generate("<ButtonRelease-1>", x=round(mx), y=round(my))
    panel.canvas.update()
    assert len(ctl.outline) == count and len(panel.canvas.find_withtag("handle")) == count
    # what the canvas shows is the controller's overlay (nucleus inside the outline, tinted)
    overlay = ctl.overlay()
    step = WORK_SIZE // 32
    np.testing.assert_array_equal(shown_pixels(panel), overlay[::step, ::step])
    shown_mask, shown_threshold, shown_outline = ctl.mask(), ctl.threshold, list(ctl.outline)
    assert {0, 128, 255} <= set(np.unique(shown_mask))
    panel.save_button.invoke()
    saved = c.find(cell.id)[0]
    assert saved.extra["mask_status"] == "adjusted" and "Saved" in panel.status.get()
    np.testing.assert_array_equal(load_cell_mask(bccd_project, saved), shown_mask)
    # Escape closes; reopening restores slider and outline, and shows the mask that is on disk
    panel.top.focus_force()
    panel.top.update()
    panel.top.event_generate("<Escape>")
    wait_until(window.root, lambda: not panel.exists())
    again = open_ready(window)
    assert again.controller.threshold == shown_threshold == again.threshold.get()
    assert again.controller.outline == shown_outline
    assert len(again.canvas.find_withtag("handle")) == len(shown_outline)
    on_disk = np.asarray(Image.open(bccd_project.mask_path(saved.nucleus_mask)))
    np.testing.assert_array_equal(again.controller.mask(), on_disk)
    np.testing.assert_array_equal(shown_pixels(again), again.controller.overlay()[::step, ::step])
    again.close()


def test_next_cell_saves_and_moves_on_and_failed_is_recorded(open_window, bccd_project):
    window = open_window(bccd_project)
    c = window.controller
    first = c.add_cell(WBC, "neutrophil")
    second = c.add_cell(SECOND, "basophil")
    c.select(first.id)
    panel = open_ready(window)
    panel.next_button.invoke()
    assert c.find(first.id)[0].nucleus_mask is not None  # saved on the way
    wait_until(window.root, lambda: panel.ready and panel.controller.cell_id == second.id)
    # a basophil: the slider is off, the mask is whole-cell only
    assert panel.scale.instate(["disabled"]) and "basophil" in panel.status.get()
    panel.failed_button.invoke()
    assert c.find(second.id)[0].extra["mask_status"] == "failed"
    assert "failed" in panel.status.get()
    # Next on a cell marked failed and untouched keeps it failed
    panel.next_button.invoke()
    assert c.find(second.id)[0].extra["mask_status"] == "failed"
    # undo in the window takes the failed mark back; a new photo closes the panel
    window.run("edit.undo")
    assert "mask_status" not in c.find(second.id)[0].extra
    window.run("photo.next")
    window.root.update()
    assert c.image == OTHER_PHOTO and not panel.exists()


def test_an_adjustment_is_never_dropped_without_a_word(open_window, bccd_project, monkeypatch):
    """Moving to the next photo saves it (issue 6: per-cell adjustments are kept); Escape asks."""
    from tkinter import messagebox

    window = open_window(bccd_project)
    c = window.controller
    first = c.add_cell(WBC, "neutrophil")
    c.select(first.id)
    panel = open_ready(window)
    auto = panel.controller.threshold
    panel.step_buttons[+10].invoke()
    assert panel.controller.changed
    asked = []
    monkeypatch.setattr(messagebox, "askyesnocancel", lambda *a, **k: asked.append(a) or None)
    panel.top.event_generate("<Escape>")
    assert asked and panel.exists()  # Cancel: the panel stays, the adjustment with it
    monkeypatch.setattr(messagebox, "askyesnocancel", lambda *a, **k: True)
    panel.top.event_generate("<Escape>")
    assert not panel.exists() and c.find(first.id)[0].nucleus_mask is not None
    # reopened, adjusted again, then the expert goes on to the next photo: saved on the way
    panel = open_ready(window)
    assert panel.controller.threshold == auto + 10
    panel.step_buttons[-20].invoke()
    panel.top.event_generate("<Next>")  # PageDown with the panel in front
    window.root.update()
    assert c.image == OTHER_PHOTO and not panel.exists()
    window.run("photo.previous")
    c.select(first.id)
    panel = open_ready(window)
    assert panel.controller.threshold == auto - 10


def test_n_again_or_quitting_keeps_an_adjustment(open_window, bccd_project):
    window = open_window(bccd_project)
    c = window.controller
    first = c.add_cell(WBC, "neutrophil")
    c.select(first.id)
    window.run("cell.nucleus")  # `n`
    panel = window.nucleus_panel
    wait_until(window.root, lambda: panel.ready)
    auto = panel.controller.threshold
    panel.step_buttons[+10].invoke()
    window.run("cell.nucleus")  # `n` again on the cell shown: not reset to the automatic threshold
    window.root.update()
    assert panel.controller.threshold == auto + 10 and panel.controller.changed
    window.acquisition.vars["stain"].set("Wright")  # typed, not applied
    window.close()  # quitting: both kept, as on a change of photo
    saved = load_annotation(bccd_project.annotation_path("expert-a", PHOTO))
    assert saved.cell(first.id).extra["nucleus_threshold"] == auto + 10
    assert saved.acquisition.stain == "Wright"


def test_undo_and_redo_of_a_saved_mask_show_in_the_open_panel(open_window, bccd_project):
    """The panel shows what the cell records: an undo in the window brings the earlier slider and
    outline back (not "saved" over a mask that is no longer on the cell), a redo the later ones."""
    window = open_window(bccd_project)
    c = window.controller
    cell = c.add_cell(WBC, "neutrophil")
    panel = open_ready(window)
    ctl = panel.controller
    auto = ctl.threshold
    panel.step_buttons[+10].invoke()
    panel.save_button.invoke()
    first_mask = ctl.mask()
    panel.step_buttons[+20].invoke()
    stroke(panel.canvas, ring(WORK_SIZE / 2, WORK_SIZE / 2, 180))
    panel.save_button.invoke()
    second = (ctl.threshold, list(ctl.outline))
    assert second[0] == auto + 30 and ctl.outline_by_hand
    window.run("edit.undo")
    window.root.update()
    saved = c.find(cell.id)[0]
    assert saved.extra["nucleus_threshold"] == auto + 10
    assert ctl.threshold == auto + 10 == panel.threshold.get() == round(panel.scale.get())
    assert not ctl.outline_by_hand and not ctl.changed
    np.testing.assert_array_equal(ctl.mask(), load_cell_mask(bccd_project, saved))
    np.testing.assert_array_equal(ctl.mask(), first_mask)
    assert "unsaved" not in panel.status.get()
    window.run("edit.redo")
    window.root.update()
    assert (ctl.threshold, ctl.outline) == second and panel.threshold.get() == auto + 30
    np.testing.assert_array_equal(ctl.mask(), load_cell_mask(bccd_project, c.find(cell.id)[0]))
    # an adjustment not saved yet is the expert's newer word: an undo of another edit keeps it
    panel.step_buttons[-1].invoke()
    c.label_selected("lymphocyte")
    window.run("edit.undo")
    window.root.update()
    assert ctl.threshold == auto + 29 and ctl.changed


def test_a_box_moved_with_the_panel_open_gets_its_crop_cut_again(open_window, bccd_project):
    """Nudging the box with the panel open: the panel cuts the new crop and keeps the hand
    outline on the same photo pixels, so Save works (it refused, and `n` did not reopen)."""
    window = open_window(bccd_project)
    c = window.controller
    cell = c.add_cell(WBC, "neutrophil")
    c.select(cell.id)
    panel = open_ready(window)
    panel.step_buttons[+5].invoke()
    stroke(panel.canvas, ring(WORK_SIZE / 2, WORK_SIZE / 2, 200))
    panel.save_button.invoke()
    ctl = panel.controller
    threshold, outline = ctl.threshold, list(ctl.outline)
    for _ in range(3):  # three arrow-key nudges, one after another
        c.nudge(10, 0)
    wait_until(window.root, lambda: panel.ready)
    moved = c.find(cell.id)[0]
    assert moved.box == Box(WBC.x1 + 30, WBC.y1, WBC.x2 + 30, WBC.y2) and moved.nucleus_mask is None
    new = panel.controller
    assert new is not ctl and new.box == moved.box and new.session.crop_size == (moved.box.width, moved.box.height)
    assert new.threshold == threshold and new.outline == [(max(0.0, x - 30), y) for x, y in outline]
    assert "unsaved" in panel.status.get()
    assert panel.save()
    np.testing.assert_array_equal(load_cell_mask(bccd_project, c.find(cell.id)[0]), new.mask())
    # undo back to the old box: the panel follows again, with the mask saved there
    for _ in range(4):
        window.run("edit.undo")
    wait_until(window.root, lambda: panel.ready and panel.controller.box == WBC)
    assert panel.controller.threshold == threshold and panel.controller.outline == outline


def test_a_box_moved_while_its_crop_is_cut_is_cut_again(open_window, bccd_project):
    window = open_window(bccd_project)
    c = window.controller
    cell = c.add_cell(WBC, "neutrophil")
    c.select(cell.id)
    panel = open_nucleus_panel(window)
    c.set_box(cell.id, Box(WBC.x1 + 15, WBC.y1, WBC.x2 + 15, WBC.y2 - 20))  # before the worker is done
    wait_until(window.root, lambda: panel.ready)
    box = c.find(cell.id)[0].box
    assert panel.controller.box == box and panel.controller.session.crop_size == (box.width, box.height)
    assert panel.save()
