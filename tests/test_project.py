from __future__ import annotations

import json

import pytest

from raabin_labeler.core.annotation import Box, Cell
from raabin_labeler.core.project import Project
from raabin_labeler.core.store import StoreError
from raabin_labeler.errors import UserError


def _project(tmp_path, make_photo, names=("b/IMG_10.jpg", "b/IMG_9.jpg", "a.png")):
    photos = tmp_path / "photos"
    for name in names:
        make_photo(photos / name)
    return Project.create(tmp_path / "proj", images=photos, experts=["expert-a"])


def test_images_are_listed_in_natural_order(tmp_path, make_photo):
    project = _project(tmp_path, make_photo)
    assert project.images() == ["a.png", "b/IMG_9.jpg", "b/IMG_10.jpg"]
    reopened = Project.open(tmp_path / "proj")
    assert reopened.images() == project.images() and reopened.experts == ["expert-a"]


def test_each_author_writes_only_their_own_file(tmp_path, make_photo):
    project = _project(tmp_path, make_photo)
    for who in ("expert-a", "expert-b"):
        ann = project.load_or_new(who, "b/IMG_9.jpg")
        project.save(ann.with_cell(Cell.new(Box(1, 1, 50, 50), "monocyte")))
    assert (tmp_path / "proj/annotations/expert-a/b/IMG_9.jpg.json").exists()
    assert (tmp_path / "proj/annotations/expert-b/b/IMG_9.jpg.json").exists()
    assert project.progress("expert-a").cells_labeled == 1
    assert project.authors() == ["expert-a", "expert-b"]


def test_progress_counts_done_and_started_photos(tmp_path, make_photo):
    from dataclasses import replace
    project = _project(tmp_path, make_photo)
    ann = project.load_or_new("expert-a", "a.png")
    ann = ann.with_cell(Cell.new(Box(1, 1, 50, 50), "monocyte")).with_cell(Cell.new(Box(60, 1, 90, 50)))
    project.save(replace(ann, status=replace(ann.status, done=True)))
    project.save(project.load_or_new("expert-a", "b/IMG_9.jpg").with_cell(Cell.new(Box(1, 1, 9, 9), "basophil")))
    progress = project.progress("expert-a")
    assert (progress.images, progress.done, progress.in_progress, progress.cells_labeled) == (3, 1, 1, 2)
    assert progress.summary() == "photos done 1 / 3 · cells labeled 2"


def test_odd_author_names_and_paths_are_refused(tmp_path, make_photo):
    project = _project(tmp_path, make_photo)
    with pytest.raises(UserError, match="author name"):
        project.annotation_path("../evil", "a.png")
    with pytest.raises(ValueError, match="leaves the project"):
        project.annotation_path("expert-a", "../../etc/passwd")


def test_a_file_describing_another_photo_is_reported(tmp_path, make_photo):
    project = _project(tmp_path, make_photo)
    project.save(project.load_or_new("expert-a", "a.png"))
    src = project.annotation_path("expert-a", "a.png")
    dst = project.annotation_path("expert-a", "b/IMG_9.jpg")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(src.read_text())
    with pytest.raises(StoreError, match="describes 'a.png'"):
        project.load("expert-a", "b/IMG_9.jpg")


def test_opening_a_folder_that_is_not_a_project_says_so(tmp_path):
    with pytest.raises(UserError, match="not a raabin-labeler project"):
        Project.open(tmp_path)
    (tmp_path / "project.json").write_text(json.dumps({"format": "raabin-labeler-project/1", "default_box_size": "big"}))
    with pytest.raises(StoreError, match="default_box_size"):
        Project.open(tmp_path)
    (tmp_path / "project.json").write_text(json.dumps({"format": "raabin-labeler-project/9"}))
    with pytest.raises(StoreError, match="a newer raabin-labeler made it: please upgrade"):
        Project.open(tmp_path)
    (tmp_path / "project.json").write_text(json.dumps({"format": "labelme"}))
    with pytest.raises(StoreError, match="got 'labelme'$"):
        Project.open(tmp_path)


def test_an_unchanged_file_is_not_parsed_again_but_any_change_is_seen(tmp_path, make_photo):
    project = _project(tmp_path, make_photo)
    project.save(project.load_or_new("expert-a", "a.png").with_cell(Cell.new(Box(1, 1, 50, 50), "monocyte")))
    first = project.load("expert-a", "a.png")
    assert project.load("expert-a", "a.png") is first  # cached
    project.save(first.with_cell(Cell.new(Box(60, 1, 90, 50), "basophil")))  # our save: a new file
    assert len(project.load("expert-a", "a.png").cells) == 2
    path = project.annotation_path("expert-a", "a.png")
    data = json.loads(path.read_text())
    data["cells"][0]["label"] = "eosinophil"  # someone edits the file in place
    path.write_text(json.dumps(data, indent=2))
    assert project.load("expert-a", "a.png").cells[0].label == "eosinophil"
    path.write_text("{broken")
    with pytest.raises(StoreError):
        project.load("expert-a", "a.png")


def test_annotation_files_whose_photo_is_gone_are_named_by_the_commands(tmp_path, capsys):
    import shutil

    from raabin_labeler import cli
    from raabin_labeler.core.paths import SAMPLE_PROJECT_DIR

    project = Project.open(shutil.copytree(SAMPLE_PROJECT_DIR, tmp_path / "sample"))
    assert project.orphan_annotations() == []
    project.image_path("cam-a/field-01.jpg").unlink()
    project.rescan()
    orphans = project.orphan_annotations()
    assert orphans == sorted(project.annotation_path(a, "cam-a/field-01.jpg")
                             for a in ("detector", "expert-a", "expert-b", "truth"))
    assert cli.main(["export", str(project.root), "--format", "coco", "--who", "expert-a",
                     "--out", str(tmp_path / "coco")]) == 0
    err = capsys.readouterr().err  # the exported author's only: the others' are not this run's business
    assert "1 annotation file(s) have no photo" in err and str(orphans[1]) in err and str(orphans[0]) not in err


def test_one_expert_in_two_windows_is_caught_and_a_crashed_windows_claim_is_not(tmp_path, make_photo):
    import json
    import os
    import socket
    import subprocess
    import sys

    from raabin_labeler.core.project import CLAIM_FILE

    project = _project(tmp_path, make_photo)
    assert project.claim("expert-a") is None
    assert project.claim("expert-a") is None  # this window again: its own claim
    claim = project.root / "annotations" / "expert-a" / CLAIM_FILE
    # another live process of this machine holds it
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        claim.write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid, "user": "ann",
                                     "since": "2026-11-26T03:00:00Z"}))
        said = project.claim("expert-a")
        assert said is not None and "ann" in said and str(other.pid) in said
        assert json.loads(claim.read_text())["pid"] == other.pid  # not taken without asking
        assert project.claim("expert-b") is None  # another expert: other files, no danger
        project.release("expert-a")
        assert claim.exists()  # not ours to drop
    finally:
        other.kill()
        other.wait()
    assert project.claim("expert-a") is None  # that process is gone: a stale claim
    assert json.loads(claim.read_text())["pid"] == os.getpid()
    assert project.orphan_annotations() == []  # the claim is no annotation
    project.release("expert-a")
    assert not claim.exists()
