"""The agreement window under Xvfb (issue 7, items 4-5): heatmap, click → gallery → labeling window,
adjudication with the label keys, exports."""
from __future__ import annotations

import csv
import json

import pytest

from raabin_labeler.core.formats.importer import import_annotations
from raabin_labeler.core.project import CONSENSUS, Project
from raabin_labeler.app.agreement import THUMBNAIL
from tests.conftest import write_photo

from .conftest import key, wait_until

# (Label1, Label2) per cell of each photo, as in a Raabin JSON file: expert A, expert B
PHOTOS = {
    "img1": [("Neutrophil", "Neutrophil"), ("Neutrophil", "Band"), ("Band", "Meta"),
             ("Small Lymph", "Large Lymph"), ("Large Lymph", "Large Lymph")],
    "img2": [("Neutrophil", "Neutrophil"), ("Monocyte", "Monocyte"), ("Eosinophil", "Basophil"),
             ("Neutrophil", "Band"), (None, "Basophil")],
}
# matrix disagreements the lead must decide on: every pair above whose labels differ
DISAGREEMENTS = sum(a != b for pairs in PHOTOS.values() for a, b in pairs)


@pytest.fixture
def two_expert_project(tmp_path) -> Project:
    """Two photos labeled by experts A and B through the Raabin importer (``import --as A B``)."""
    project = Project.create(tmp_path / "project", experts=["A", "B"])
    src = tmp_path / "raabin"
    src.mkdir()
    for seed, (stem, pairs) in enumerate(PHOTOS.items()):
        write_photo(project.images_dir / f"{stem}.jpg", 900, 600, seed=seed, quality=85)
        data = {"image_info": {"kept": True}}
        for i, (l1, l2) in enumerate(pairs):
            x = 40 + 160 * i
            data[f"Cell_{i}"] = {"Label1": l1, "Label2": l2, "x1": x, "y1": 200, "x2": x + 90, "y2": 290}
        (src / f"{stem}.json").write_text(json.dumps(data))
    import_annotations(project, "raabin", src, ["A", "B"])
    return project


def _open_view(open_window, project):
    window = open_window(project, "A")
    window.settings.blind = False  # expert A looking at the agreement: blind mode would ask first
    window.run("agreement.open")
    view = window.agreement_view
    wait_until(window.root, lambda: view.loaded)
    view.top.update()
    return window, view


def _click_matrix_cell(view, row: int, col: int) -> None:
    """A real mouse click on the heatmap at the centre of matrix cell (row, col)."""
    widget = view.canvas.get_tk_widget()
    view.canvas.draw()
    x, y = view._heat_axes.transData.transform((col, row))
    height = view.figure.bbox.height
    widget.event_generate("<ButtonPress-1>", x=round(x), y=round(height - y))
    widget.event_generate("<ButtonRelease-1>", x=round(x), y=round(height - y))
    widget.update()


def test_heatmap_click_shows_the_cells_crops_and_a_crop_opens_the_photo_at_that_cell(
        open_window, two_expert_project):
    project = two_expert_project
    window, view = _open_view(open_window, project)
    assert (view.expert_a.get(), view.expert_b.get()) == ("A", "B")
    matrix = view.ctl.matrix
    neutro, band = matrix.index("Neutrophil"), matrix.index("Band")
    # the heatmap writes the counts into the cells: 2 neutrophils agreed, 2 neutrophil-vs-band
    counts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
              for t in view._heat_axes.texts}
    assert counts[(neutro, neutro)] == "2" and counts[(neutro, band)] == "2"
    assert sum(int(v) for v in counts.values()) == sum(len(p) for p in PHOTOS.values())
    assert "Cohen's kappa" in view.figures_text.get("1.0", "end")

    # the cells A calls Neutrophil and B calls Band, found from the files themselves
    expected = set()
    for image in project.images():
        a = {c.id: c.label for c in project.load("A", image).cells}
        b = {c.id: c.label for c in project.load("B", image).cells}
        expected |= {(image, cid) for cid in a if a[cid] == "neutrophil.mature" and b.get(cid) == "neutrophil.band"}
    assert len(expected) == 2

    # a first click on another cell, then the one we want: the first gallery's thumbnails are dropped
    _click_matrix_cell(view, neutro, neutro)
    _click_matrix_cell(view, neutro, band)
    wait_until(window.root, lambda: view.gallery_loaded and len(view._gallery_photos) == len(view.gallery_buttons))
    assert {(p.image, p.cell_id) for p in view.gallery_pairs} == expected
    assert len(view.gallery_buttons) == 2
    for button in view.gallery_buttons:
        photo = view.top.nametowidget(button).cget("image")
        assert view.top.tk.call("image", "width", photo) == THUMBNAIL
    assert "Neutrophil" in view.gallery_title.get() and "Band" in view.gallery_title.get()

    # clicking the second crop opens its photo in the labeling window with that cell selected
    target = view.gallery_pairs[1]
    view.gallery_buttons[1].invoke()
    window.root.update()
    assert window.controller.image == target.image
    assert window.controller.selected == target.cell_id
    cx, cy = target.box.center
    sx, sy = window.canvas.view.to_screen(cx, cy)
    assert 0 <= sx <= window.canvas.winfo_width() and 0 <= sy <= window.canvas.winfo_height()

    # the level switch redraws at parent level: Band and Neutrophil become one class
    view.level.set("parent")
    view._level_changed()
    assert "Band" not in view.ctl.matrix.names and view.gallery_pairs == []


def _consensus(project: Project) -> dict[tuple[str, str], dict]:
    """What annotations/consensus/ holds on disk: (photo, cell id) → label and decision record."""
    out = {}
    for image in project.images():
        annotation = project.load(CONSENSUS, image)
        for cell in annotation.cells if annotation else ():
            out[(image, cell.id)] = {"label": cell.label, **cell.extra}
    return out


def test_adjudicate_with_label_keys_undo_and_send_back_reach_the_consensus_file(
        open_window, two_expert_project, tmp_path):
    project = two_expert_project
    window, view = _open_view(open_window, project)
    view.lead.set("lead-1")
    view.start_button.invoke()
    wait_until(window.root, lambda: view.session is not None)
    session = view.session
    assert session.total == DISAGREEMENTS == len(view.queue_view.get_children())
    agreed = [c for c in _consensus(project).values() if c["decision"] == "agreed"]
    assert len(agreed) == 4  # cells both experts gave the same label go in by themselves

    keys = view.keys_widget
    keys.focus_force()
    first = session.current
    assert first.pair.label_a == "neutrophil.mature" and first.pair.label_b == "neutrophil.band"
    # 1 then 2: Neutrophil → Band, as in the labeling window
    key(keys, "<Key-1>")
    key(keys, "<Key-2>")
    cells = _consensus(project)
    decided = cells[(first.image, first.cell_id)]
    assert decided["label"] == "neutrophil.band" and decided["decision"] == "adjudicated"
    assert decided["decided_by"] == "lead-1" and decided["expert_labels"] == {
        "A": "neutrophil.mature", "B": "neutrophil.band"}
    assert view.adjudication_progress.get() == f"decided 1 / {DISAGREEMENTS}"
    assert view.queue_view.item("0", "values")[-1] == "Band"
    assert session.current is not first

    # Ctrl+Z takes it back: the cell leaves the consensus file and is on screen again
    key(keys, "<Control-z>")
    assert (first.image, first.cell_id) not in _consensus(project)
    assert session.current is first and view.adjudication_progress.get() == f"decided 0 / {DISAGREEMENTS}"

    # s sends it back to the experts
    key(keys, "<Key-s>")
    assert _consensus(project)[(first.image, first.cell_id)]["decision"] == "sent_back"
    assert _consensus(project)[(first.image, first.cell_id)]["label"] is None
    # the next cell (Band vs Meta): 1 then Enter keeps "Neutrophil, sub-type unsure"
    second = session.current
    assert (second.pair.label_a, second.pair.label_b) == ("neutrophil.band", "neutrophil.meta")
    key(keys, "<Key-1>")
    key(keys, "<Return>")
    assert _consensus(project)[(second.image, second.cell_id)]["label"] == "neutrophil"
    assert view.adjudication_progress.get() == f"decided 2 / {DISAGREEMENTS}"
    # the crop of the cell on screen is shown
    wait_until(window.root, lambda: view._crop_photo is not None and not view.tasks.busy("crop"))
    assert view._crop_photo.width() == 224

    # exports: the matrix CSV, the heatmap PNG, the double-labeled set as a background job
    view.write_csv(tmp_path / "out" / "matrix.csv")
    rows = list(csv.reader((tmp_path / "out" / "matrix.csv").open()))
    assert rows[0][0] == "A \\ B" and rows[0][1:] == view.ctl.matrix.names
    view.write_png(tmp_path / "out" / "heatmap.png")
    assert (tmp_path / "out" / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    view.export_double_labeled(tmp_path / "double")
    wait_until(window.root, lambda: not view.tasks.busy("export"))
    assert "double-labeled crops: 5" in view.status.get()
    # agreed on one of the five classes: 2 mature neutrophils, small vs large lymph. and large vs
    # large (both Lymphocyte), a monocyte
    classes = sorted(p.parent.name for p in (tmp_path / "double").rglob("*.jpg"))
    assert classes == ["Lymphocyte", "Lymphocyte", "Monocyte", "Neutrophil", "Neutrophil"]


def test_a_broken_expert_file_is_named_and_left_out_and_the_rest_is_compared(open_window, two_expert_project):
    project = two_expert_project
    broken = project.annotation_path("B", "img2.jpg")
    broken.write_text("{ not json")
    window = open_window(project, "A")
    window.settings.blind = False
    window.run("agreement.open")
    view = window.agreement_view
    wait_until(window.root, lambda: not view.tasks.busy("load"))
    # the other photos are compared; the broken file is named, its photo left out, not counted
    assert view.loaded and [p.image for p in view.ctl.images] == [i for i in project.images() if i != "img2.jpg"]
    assert view.ctl.matrix.total > 0
    assert "1 unreadable file(s) left out" in view.status.get()
    assert str(broken) in view.figures_text.get("1.0", "end")
    assert broken.read_text() == "{ not json"
    # choosing the same expert twice asks for two different ones instead of reading anything
    view.expert_b.set("A")
    view.reload()
    assert "two different experts" in view.status.get() and not view.tasks.busy("load")


def test_back_from_labeling_the_view_shows_the_new_label(open_window, two_expert_project):
    """Relabel a cell in the labeling window, return to the agreement window: the matrix follows."""
    project = two_expert_project
    window, view = _open_view(open_window, project)
    ctl = window.controller
    ctl.open_image("img1.jpg")
    first = next(c for c in ctl.cells() if c.box.x1 == 40)  # Cell_0: A and B both said Neutrophil
    ctl.select(first.id)
    ctl.label_selected("monocyte")
    assert ctl.autosaver.flush() is None
    neutro, mono = view.ctl.matrix.index("Neutrophil"), view.ctl.matrix.index("Monocyte")
    assert view.ctl.matrix.counts[neutro, neutro] == 2
    before = view.ctl
    view.top.event_generate("<FocusIn>")
    wait_until(window.root, lambda: view.ctl is not before and view.loaded)
    matrix = view.ctl.matrix
    assert matrix.counts[neutro, neutro] == 1 and matrix.counts[mono, neutro] == 1
    assert "latest edits" in view.status.get()
    # focusing again with nothing changed keeps what is shown (and the gallery the lead looks at)
    _click_matrix_cell(view, mono, neutro)
    assert len(view.gallery_pairs) == 1
    now = view.ctl
    view.top.event_generate("<FocusIn>")
    wait_until(window.root, lambda: not view.tasks.busy("refresh"))
    window.root.update()
    assert view.ctl is now and len(view.gallery_pairs) == 1


def test_double_labeled_export_can_be_cancelled(open_window, two_expert_project, tmp_path, monkeypatch):
    import threading

    from raabin_labeler.core import imageio

    project = two_expert_project
    window, view = _open_view(open_window, project)
    first_photo, go_on = threading.Event(), threading.Event()
    real_open = imageio.open_image

    def slow_open(*args, **kwargs):  # the first photo is being cropped while the lead cancels
        first_photo.set()
        go_on.wait(10)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(imageio, "open_image", slow_open)
    assert str(view.cancel_export_button.cget("state")) == "disabled"
    view.export_double_labeled(tmp_path / "double")
    assert str(view.cancel_export_button.cget("state")) == "normal"
    assert first_photo.wait(10)
    view.cancel_export_button.invoke()
    go_on.set()
    wait_until(window.root, lambda: not view.tasks.busy("export"))
    assert "cancelled" in view.status.get() and str(tmp_path / "double") in view.status.get()
    assert str(view.cancel_export_button.cget("state")) == "disabled"
    # the photo being cropped was finished; the second was never started, and no CSV claims a full set
    crops = list((tmp_path / "double").rglob("*.jpg"))
    assert 0 < len(crops) < 5 and not (tmp_path / "double" / "double_labeled.csv").exists()


def test_queue_ordered_by_disagreement_shows_like_cases_together(open_window, two_expert_project):
    window, view = _open_view(open_window, two_expert_project)
    view.lead.set("lead-1")
    view.queue_order.set("same disagreement in a row")
    view.start_button.invoke()
    wait_until(window.root, lambda: view.session is not None)
    rows = [view.queue_view.item(i, "values") for i in view.queue_view.get_children()]
    # Neutrophil vs Band happens on both photos: those two come first, one after the other
    assert [(r[0], r[2], r[3]) for r in rows[:2]] == [("img1.jpg", "Neutrophil", "Band"),
                                                      ("img2.jpg", "Neutrophil", "Band")]
    assert len(rows) == DISAGREEMENTS and view.session.current.image == "img1.jpg"


def test_a_lead_sent_to_a_cell_sees_it_marked(open_window, two_expert_project):
    """The lead has no cells of their own (and blind mode hides the experts'): the place is
    marked, not an unmarked blob in the middle of the photo."""
    project = two_expert_project
    window = open_window(project, "lead")
    image = project.images()[1]
    cell = project.load("A", image).cells[0]
    window.show_cell(image, [cell.id], cell.box)
    window.root.update()
    assert window.controller.image == image and window.controller.selected is None
    (pointed,) = window.canvas.find_withtag("pointed")
    x1, y1, x2, y2 = window.canvas.coords(pointed)
    sx1, sy1, sx2, sy2 = window.canvas.screen_box(cell.box)
    assert x1 < sx1 and y1 < sy1 and x2 > sx2 and y2 > sy2
    window.run("photo.previous")
    window.root.update()
    assert not window.canvas.find_withtag("pointed")


def test_blind_mode_asks_an_expert_before_showing_the_other_experts_labels(open_window, two_expert_project,
                                                                          monkeypatch):
    from tkinter import messagebox
    asked = []
    monkeypatch.setattr(messagebox, "askyesno", lambda *a, **k: asked.append(a[0]) or False)
    window = open_window(two_expert_project, "A")
    assert window.settings.blind
    window.run("agreement.open")
    assert asked == ["Blind mode is on"] and window.agreement_view is None
    lead = open_window(two_expert_project, "lead")  # no labels of their own: nothing to protect
    lead.run("agreement.open")
    assert asked == ["Blind mode is on"] and lead.agreement_view is not None


def test_s_after_a_class_key_sends_back_the_cell_shown_and_ctrl_z_takes_back_only_the_key(
        open_window, two_expert_project):
    """1 then s: the lead changed their mind about the cell on screen. It used to be decided
    Neutrophil and the next cell sent back instead."""
    project = two_expert_project
    window, view = _open_view(open_window, project)
    view.lead.set("lead-1")
    view.start_button.invoke()
    wait_until(window.root, lambda: view.session is not None)
    session, keys = view.session, view.keys_widget
    keys.focus_force()
    first = session.current
    key(keys, "<Key-1>")
    key(keys, "<Key-s>")
    second = session.current
    cells = _consensus(project)
    assert cells[(first.image, first.cell_id)]["decision"] == "sent_back"
    assert (second.image, second.cell_id) not in cells
    # 1 then Ctrl+Z: the key is taken back, the send-back stands, nothing is decided later
    key(keys, "<Key-1>")
    key(keys, "<Control-z>")
    view._commit_chord()  # the chord's timeout
    assert session.current is second and (second.image, second.cell_id) not in _consensus(project)
    assert _consensus(project)[(first.image, first.cell_id)]["decision"] == "sent_back"
