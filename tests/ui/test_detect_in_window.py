"""Detect cells from the window: the job runs off the Tk thread, proposals appear dashed, and
accepting one writes it into the expert's file with the detector's id."""
from __future__ import annotations

from raabin_labeler.core.jobs import SyncRunner
from raabin_labeler.core.project import Project
from raabin_labeler.core.store import load_annotation

from .conftest import key, wait_until


def test_detect_this_photo_then_accept_and_reject(open_window, tmp_path, bccd):
    photos = tmp_path / "bccd"
    photos.mkdir()
    for stem in ("BloodImage_00000", "BloodImage_00001"):
        (photos / f"{stem}.jpg").symlink_to(bccd / "JPEGImages" / f"{stem}.jpg")
    project = Project.create(tmp_path / "p", images=photos)
    window = open_window(project)
    window.job_runner = lambda n: SyncRunner()
    window.run("detect.photo")
    wait_until(window.root, lambda: not window.jobs.busy)
    assert "done, 1 / 1" in window.jobs.text.get()
    c = window.controller
    proposals = c.open_proposals()
    assert proposals, "the WBC of BloodImage_00000 is proposed"
    assert window.canvas.find_withtag(f"cell:{proposals[0].id}")
    assert window.canvas.itemcget(f"cell:{proposals[0].id}:rect", "dash")  # proposals are dashed
    assert load_annotation(project.annotation_path("detector", "BloodImage_00000.jpg")).cells
    assert not project.has_annotation("expert-a", "BloodImage_00000.jpg")  # a job never writes an expert's file
    assert c.selected == proposals[0].id  # selected as it arrives: digits and `a` work at once
    key(window.canvas, "<Key-a>")
    window.controller.autosaver.flush()
    (accepted,) = load_annotation(project.annotation_path("expert-a", "BloodImage_00000.jpg")).cells
    assert accepted.id == proposals[0].id and accepted.source.startswith("detector")
    key(window.canvas, "<Control-z>")
    key(window.canvas, "<Key-x>")
    window.controller.autosaver.flush()
    (rejected,) = load_annotation(project.annotation_path("expert-a", "BloodImage_00000.jpg")).cells
    assert rejected.id == proposals[0].id and rejected.rejected
    assert not c.open_proposals()
