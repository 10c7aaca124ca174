"""Duplicates across a project's photos, scored on the sample's exact truth, marked in place."""
from __future__ import annotations

import shutil
from dataclasses import replace
from itertools import combinations

import pytest

from raabin_labeler import cli
from raabin_labeler.core.paths import SAMPLE_PROJECT_DIR
from raabin_labeler.core.project import Project
from raabin_labeler.core.project_dedup import (DECISION, NOT_DUPLICATE, cell_ref, find_project_duplicates,
                                               mark_duplicates, marked_groups)


@pytest.fixture
def sample(tmp_path) -> Project:
    shutil.copytree(SAMPLE_PROJECT_DIR, tmp_path / "sample")
    return Project.open(tmp_path / "sample")


def truth_pairs(project: Project) -> set[frozenset[str]]:
    """The sample renders overlapping fields from one slide: the same physical cell twice."""
    physical = {cell_ref(image, c.id): c.extra["physical_cell"]
                for image in project.images() for c in project.load("truth", image).cells}
    return {frozenset(p) for p in combinations(physical, 2) if physical[p[0]] == physical[p[1]]}


def found_pairs(found) -> set[frozenset[str]]:
    return {frozenset(p) for g in found.groups for p in combinations([g.keep, *g.drop], 2)}


def test_every_overlapping_field_pair_is_found_without_a_wrong_link(sample):
    truth = truth_pairs(sample)
    assert len(truth) == 12
    paper = found_pairs(find_project_duplicates(sample, "truth", mode="paper"))
    robust = found_pairs(find_project_duplicates(sample, "truth", mode="robust"))
    assert paper == truth
    assert robust == truth


def test_marks_point_at_the_kept_copy_survive_reruns_and_respect_decisions(sample):
    found = find_project_duplicates(sample, "truth", mode="paper")
    assert mark_duplicates(sample, "truth", found) == 12
    groups = marked_groups(sample, "truth")
    assert len(groups) == 12 and all(len(drop) == 1 for _, drop in groups)
    keep, (drop,) = groups[0]
    image, cell_id = drop.split("#")
    cell = sample.load("truth", image).cell(cell_id)
    assert cell.duplicate_of == keep and "duplicate_evidence" in cell.extra
    assert mark_duplicates(sample, "truth", found) == 0  # nothing new on a second run
    # the lead decides in the review screen that these are two different cells
    ann = sample.load("truth", image)
    sample.save(ann.with_cell(replace(cell, duplicate_of=None, extra={**cell.extra, DECISION: NOT_DUPLICATE})))
    mark_duplicates(sample, "truth", found)
    assert sample.load("truth", image).cell(cell_id).duplicate_of is None
    assert len(marked_groups(sample, "truth")) == 11


def test_the_cli_marks_and_exports_leave_duplicates_out(sample, tmp_path, capsys):
    assert cli.main(["dedup", str(sample.root), "--who", "truth", "--mode", "paper"]) == 0
    out = capsys.readouterr().out
    assert "12 marked duplicate_of" in out and "redundant photo" in out
    assert cli.main(["export", str(sample.root), "--format", "coco", "--who", "truth",
                     "--out", str(tmp_path / "coco")]) == 0
    assert "12 marked as duplicates" in capsys.readouterr().out


def test_the_cli_asks_whose_cells_when_it_cannot_tell(sample, capsys):
    assert cli.main(["dedup", str(sample.root)]) == 0  # the detector's proposals by default
    shutil.rmtree(sample.root / "annotations" / "detector")
    assert cli.main(["dedup", str(sample.root)]) == 1
    assert "--who" in capsys.readouterr().err


def test_terminal_says_the_comparison_runs_once_hashing_is_done():
    """Minutes of pair checks at 40,000 crops must not look like a bar stuck at 100 %."""
    import io

    from raabin_labeler.commands.dedup import hashing_then_comparing
    from raabin_labeler.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = ProgressBar(1, "hash", stream=screen)
    progress = hashing_then_comparing(bar)
    progress(10, 40)
    assert "10/40" in screen.getvalue() and "comparing" not in screen.getvalue()
    progress(40, 40)
    assert screen.getvalue().rstrip().endswith("40/40 comparing crops…")


def test_a_cell_cut_by_one_photos_border_is_found_through_its_field_and_the_whole_one_kept(tmp_path):
    """Two photos of one stretch of smear, the stage moved 260 px, the second out of focus: in
    the first photo the border leaves a 60-px strip of the cell, too little for the crops to
    show it is the same cell (BCCD rows 172/178); the red cells around it, in both photos, do."""
    from PIL import Image, ImageFilter

    from raabin_labeler.core.annotation import Box, Cell

    with Image.open(SAMPLE_PROJECT_DIR / "images" / "cam-a" / "field-03.jpg") as im:
        photo = im.convert("RGB")
    (tmp_path / "images").mkdir()
    photo.crop((0, 300, 1600, 800)).save(tmp_path / "images" / "a.jpg", quality=92)
    photo.crop((0, 560, 1600, 1060)).filter(ImageFilter.GaussianBlur(4)).save(tmp_path / "images" / "b.jpg", quality=92)
    project = Project.create(tmp_path / "p", images=tmp_path / "images", experts=["x"])
    strip, whole = Cell.new(Box(1044, 440, 1235, 500)), Cell.new(Box(1044, 180, 1235, 369))
    other = Cell.new(Box(200, 40, 340, 170))  # a cell only the first photo shows
    project.save(project.load_or_new("x", "a.jpg").with_cells([strip, other]))
    project.save(project.load_or_new("x", "b.jpg").with_cells([whole]))
    found = find_project_duplicates(project, "x", mode="robust")
    (group,) = found.groups
    assert group.keep == cell_ref("b.jpg", whole.id)  # the whole cell, not the sharper strip
    assert group.drop == [cell_ref("a.jpg", strip.id)]
    evidence = group.evidence["distances"][group.drop[0]]
    assert evidence["photos"] == ["a.jpg", "b.jpg"] and evidence["shift"] == pytest.approx([0, -260], abs=8)
    # the paper's rule stays the paper's: crops only
    assert find_project_duplicates(project, "x", mode="paper").groups == []


def test_an_unreadable_file_is_left_alone_and_named(sample, capsys):
    path = sample.annotation_path("truth", "cam-a/field-01.jpg")
    path.write_text("{ not json")
    found = find_project_duplicates(sample, "truth", mode="paper")
    assert [p.path for p in found.unreadable] == [path]
    assert cli.main(["dedup", str(sample.root), "--who", "truth", "--mode", "paper"]) == 0
    assert f"left out, cannot be read: {path}" in capsys.readouterr().err
    assert path.read_text() == "{ not json"


def test_red_cells_and_platelets_of_an_import_are_not_searched(sample):
    """QA: on BCCD imported with its RBC boxes, 555 red cells were marked as each other's
    duplicates (look-alikes) and exports then left them out: only white cells are searched."""
    truth = truth_pairs(sample)
    first = sorted(truth, key=sorted)[0]
    red = {ref for pair in truth if pair & first for ref in pair}  # one physical cell, seen twice or more
    taxonomy, rbc = sample.taxonomy.with_extra("RBC")
    sample.set_taxonomy(taxonomy)
    for image in sample.images():
        annotation = sample.load("truth", image)
        sample.save(annotation.with_cells([replace(c, label=rbc) if cell_ref(image, c.id) in red else c
                                           for c in annotation.cells]))
    found = find_project_duplicates(sample, "truth", mode="robust")
    assert found_pairs(found) == {pair for pair in truth if not pair & red}
