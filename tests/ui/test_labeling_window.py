"""The expert's day in the real window: draw, move, resize, label with keys, undo, next photo,
then read what reached the disk."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from raabin_labeler.core.annotation import Box
from raabin_labeler.core.project import Project
from raabin_labeler.core.store import load_annotation

from .conftest import REPO, drag, key, screen, wait_until


def _saved(window) -> bool:
    return window.controller.autosaver.state.text == "saved" and not window.controller.autosaver.dirty


def test_draw_move_resize_label_undo_and_next_photo_reach_the_disk(open_window, small_project):
    window = open_window(small_project)
    canvas, c = window.canvas, window.controller
    # draw two boxes
    drag(canvas, screen(window, 100, 100), screen(window, 260, 250))
    drag(canvas, screen(window, 400, 300), screen(window, 520, 420))
    assert len(c.cells()) == 2
    first, second = sorted(c.cells(), key=lambda cell: cell.box.x1)
    # label the selected (second) cell "1" then "2": Band; the first with "3": Monocyte
    assert c.selected == second.id
    key(canvas, "<Key-1>")
    key(canvas, "<Key-2>")
    assert c.find(second.id)[0].label == "neutrophil.band"
    c.select(first.id)
    key(canvas, "<Key-3>")
    assert c.find(first.id)[0].label == "monocyte"
    # move the first box by dragging its inside, resize the second by its south-east handle
    before = c.find(first.id)[0].box
    drag(canvas, screen(window, 180, 170), screen(window, 230, 200))
    moved = c.find(first.id)[0].box
    assert (moved.width, moved.height) == (before.width, before.height)
    assert abs((moved.x1 - before.x1) - 50) <= 2 and abs((moved.y1 - before.y1) - 30) <= 2
    c.select(second.id)
    canvas.update()
    se = c.find(second.id)[0].box
    drag(canvas, screen(window, se.x2, se.y2), screen(window, se.x2 + 60, se.y2 + 40))
    grown = c.find(second.id)[0].box
    assert abs(grown.x2 - (se.x2 + 60)) <= 2 and abs(grown.y2 - (se.y2 + 40)) <= 2
    # undo twice: the resize and the move are gone, labels stay
    key(canvas, "<Control-z>")
    key(canvas, "<Control-z>")
    assert c.find(second.id)[0].box == se and c.find(first.id)[0].box == before
    # next photo: the first photo's JSON holds the state after the undos
    key(canvas, "<Next>")
    assert c.image == "field-2.jpg"
    wait_until(window.root, lambda: _saved(window))
    saved = load_annotation(small_project.annotation_path("expert-a", "field-1.jpg"))
    by_id = {cell.id: cell for cell in saved.cells}
    assert by_id[first.id].label == "monocyte" and by_id[first.id].box == before
    assert by_id[second.id].label == "neutrophil.band" and by_id[second.id].box == se
    # the photo list shows the first photo in progress with 2 cells
    assert window.photo_list.tree.set("field-1.jpg", "status") == "in progress"


def test_parent_only_label_by_enter_and_tab_cycles_cells(open_window, small_project):
    window = open_window(small_project)
    canvas, c = window.canvas, window.controller
    for x in (100, 400):
        drag(canvas, screen(window, x, 100), screen(window, x + 150, 250))
    key(canvas, "<Tab>")
    picked = c.selected
    assert c.find(picked)[0].box.x1 == 100  # reading order: left one first
    key(canvas, "<Key-2>")
    assert c.chord_parent == "lymphocyte"
    key(canvas, "<Return>")
    assert c.find(picked)[0].label == "lymphocyte"
    assert "Not labeled" not in window.root.title()


def test_ctrl_click_places_a_default_size_box_inside_the_photo(open_window, small_project):
    window = open_window(small_project)
    x, y = screen(window, 790, 590)  # near the corner: the 575 px box must be pushed inside
    window.canvas.event_generate("<Control-ButtonPress-1>", x=round(x), y=round(y), state=0x4)
    window.canvas.update()
    (cell,) = window.controller.cells()
    assert cell.box == Box(225, 25, 800, 600)


def test_a_broken_expert_file_is_reported_left_untouched_and_work_goes_on(open_window, small_project, monkeypatch):
    from tkinter import messagebox
    path = small_project.annotation_path("expert-a", "field-2.jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"format": "raabin-labeler/1", "cells": [')
    asked = []
    monkeypatch.setattr(messagebox, "askyesno", lambda *a, **k: asked.append(a) or False)
    window = open_window(small_project)
    key(window.canvas, "<Next>")
    wait_until(window.root, lambda: "field-2.jpg" in window._note.get())
    assert window.controller.problem is not None and "line 1" in str(window.controller.problem)
    drag(window.canvas, screen(window, 100, 100), screen(window, 200, 200))  # not editable: nothing drawn
    assert window.controller.cells() == ()
    key(window.canvas, "<Next>")
    assert window.controller.image == "field-3.jpg"
    assert path.read_text() == '{"format": "raabin-labeler/1", "cells": ['
    assert window._note.get() == ""  # field-2's problem is not field-3's


def test_a_truncated_photo_is_shown_as_unreadable_not_as_the_previous_photo(open_window, small_project):
    """Its header reads (so the size is known) but its pixels do not decode."""
    path = small_project.image_path("field-2.jpg")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    window = open_window(small_project)
    assert window.canvas._photo_item is not None
    key(window.canvas, "<Next>")
    wait_until(window.root, lambda: window.controller.problem is not None)
    window.root.update()
    assert window.controller.image == "field-2.jpg"
    assert window.canvas._photo_item is None and not window.canvas.find_withtag("photo")  # field-1 is gone
    message = window.canvas.find_withtag("message")
    assert any("field-2.jpg" in window.canvas.itemcget(i, "text") for i in message
               if window.canvas.type(i) == "text")
    drag(window.canvas, screen(window, 100, 100), screen(window, 200, 200))  # nothing to label on
    window.canvas.event_generate("<Control-ButtonPress-1>", x=150, y=150, state=0x4)
    assert window.controller.cells() == () and window.controller.open_proposals() == []
    assert window.controller.photo_status("field-2.jpg").state == "unreadable"
    window.controller.autosaver.flush()
    assert not small_project.annotation_path("expert-a", "field-2.jpg").exists()
    key(window.canvas, "<Next>")  # the next photo works as ever
    wait_until(window.root, lambda: window.canvas._photo_item is not None)
    assert window.controller.image == "field-3.jpg" and window.controller.problem is None


def test_marking_a_photo_done_with_cells_left_says_so(open_window, small_project):
    window = open_window(small_project)
    drag(window.canvas, screen(window, 100, 100), screen(window, 200, 200))
    window.run("photo.done")
    assert window.controller.annotation.status.done
    assert "1 cell(s) not labeled yet" in window._note.get()


def test_acquisition_typed_without_apply_is_kept_when_the_photo_changes(open_window, small_project):
    window = open_window(small_project)
    window.acquisition.vars["smear"].set("S09")  # typed, no Apply, no Enter
    key(window.canvas, "<Next>")
    window.controller.autosaver.flush()
    assert load_annotation(small_project.annotation_path("expert-a", "field-1.jpg")).acquisition.smear == "S09"
    assert window.acquisition.vars["smear"].get() == "S09"  # carried to the next photo of the folder


def test_a_second_window_of_the_same_expert_asks_first(tk_root, small_project, monkeypatch):
    """The later save of a photo replaced the other window's cells on it (QA, two processes)."""
    import json
    import socket
    from tkinter import messagebox

    from raabin_labeler.app.settings import Settings
    from raabin_labeler.core.project import CLAIM_FILE
    from raabin_labeler.ui.app import Session

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        claim = small_project.root / "annotations" / "expert-a" / CLAIM_FILE
        claim.parent.mkdir(parents=True, exist_ok=True)
        claim.write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid, "user": "ann", "since": "now"}))
        asked = []
        monkeypatch.setattr(messagebox, "askyesno", lambda *a, **k: asked.append(a[1]) or False)
        assert Session(tk_root, Settings(expert="expert-a")).start(small_project.root, "expert-a") is None
        assert "another window" in asked[0] and json.loads(claim.read_text())["pid"] == other.pid
    finally:
        other.kill()
        other.wait()


def test_labeling_a_real_bccd_photo(open_window, tmp_path, bccd):
    photos = tmp_path / "bccd"
    photos.mkdir()
    (photos / "BloodImage_00000.jpg").symlink_to(bccd / "JPEGImages" / "BloodImage_00000.jpg")
    project = Project.create(tmp_path / "p", images=photos)
    window = open_window(project)
    # the WBC of this photo is at 260,177 – 491,376 (BCCD's own box)
    drag(window.canvas, screen(window, 260, 177), screen(window, 491, 376))
    assert window.magnifier._key is not None  # the magnifier shows the selected cell
    key(window.canvas, "<Key-1>")
    key(window.canvas, "<Key-1>")
    window.controller.autosaver.flush()
    (cell,) = load_annotation(project.annotation_path("expert-a", "BloodImage_00000.jpg")).cells
    assert cell.label == "neutrophil.mature"
    assert max(abs(a - b) for a, b in zip(cell.box.as_list(), [260, 177, 491, 376])) <= 2
    assert window.controller.selected is None  # the photo's only cell is done


KILLED_SESSION = textwrap.dedent("""
    import os, signal, sys, time, tkinter as tk
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from raabin_labeler.app.settings import Settings
    from raabin_labeler.ui.app import Session
    from tests.ui.conftest import drag, key, screen, wait_until
    root = tk.Tk(); root.geometry("1200x800+0+0")
    window = Session(root, Settings(expert="expert-a")).start(Path({project!r}), "expert-a")
    wait_until(root, lambda: window.canvas._photo_item is not None)
    window.canvas.focus_force(); root.update()
    drag(window.canvas, screen(window, 100, 100), screen(window, 300, 260))
    key(window.canvas, "<Key-4>")
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        root.update(); time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_killing_the_process_loses_at_most_the_last_second(small_project, tmp_path):
    script = tmp_path / "session.py"
    script.write_text(KILLED_SESSION.format(repo=str(REPO), project=str(small_project.root)))
    env = {**os.environ, "RAABIN_LABELER_CONFIG": str(tmp_path / "cfg")}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (cell,) = load_annotation(small_project.annotation_path("expert-a", "field-1.jpg")).cells
    assert cell.label == "eosinophil"
