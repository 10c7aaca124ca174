"""The duplicate review's decisions (issue 5, item 5): saved in the author's files, undoable, and
respected by a later search. Runs on a copy of the sample project, whose overlapping fields give
12 true pairs for the "truth" author."""
from __future__ import annotations

import shutil
from concurrent.futures import Future
from dataclasses import replace

import pytest

from raabin_labeler.app.autosave import Autosaver
from raabin_labeler.app.dedup_review import (DedupReviewController, LabelingAnnotations, default_author,
                                             search_job)
from raabin_labeler.app.labeling import LabelingController
from raabin_labeler.core.jobs import ItemDone, Progress, SyncRunner
from raabin_labeler.core.paths import SAMPLE_PROJECT_DIR
from raabin_labeler.core.project import DETECTOR, Project
from raabin_labeler.core.project_dedup import (CONFIRMED, DECISION, EVIDENCE, NOT_DUPLICATE, ProjectDuplicates,
                                               mark_duplicates, marked_groups, split_ref)
from raabin_labeler.errors import UserError

AUTHOR = "truth"


class _Now:
    """An executor that saves on the calling thread, so a test sees files at once."""

    def submit(self, fn, *args):
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait=True):
        pass


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> ProjectDuplicates:
    """One search (paper mode, ~1 s), through the background job as the window runs it."""
    project = Project.open(shutil.copytree(SAMPLE_PROJECT_DIR, tmp_path_factory.mktemp("search") / "sample"))
    job = search_job(project, AUTHOR, "paper", SyncRunner())
    assert job.run().errors == 0
    events = job.drain(limit=1000)
    hashed = [e for e in events if isinstance(e, Progress) and e.item == "crops hashed"]
    assert hashed and hashed[-1].done == hashed[-1].total == 41  # every truth cell cut and hashed
    (done,) = [e for e in events if isinstance(e, ItemDone)]
    return done.outcome.value


@pytest.fixture
def review(tmp_path, found) -> DedupReviewController:
    project = Project.open(shutil.copytree(SAMPLE_PROJECT_DIR, tmp_path / "sample"))
    controller = DedupReviewController(project, AUTHOR)
    assert controller.apply_search(found) == 12
    return controller


def cell(project: Project, ref: str):
    image, cell_id = split_ref(ref)
    return project.load(AUTHOR, image).cell(cell_id)


def test_the_search_marks_groups_with_distances_sharpness_and_redundant_photos(review):
    assert len(review.groups) == 12
    assert sorted((g.keeper.ref, [m.ref for m in g.members]) for g in review.groups) == \
        marked_groups(review.project, AUTHOR)
    group = review.groups[0]
    (member,) = group.members
    assert set(member.evidence) == {"ahash", "phash"} and member.evidence["ahash"] < 11
    assert review.sharpness[group.keeper.ref] >= review.sharpness[member.ref]  # the sharpest is kept
    assert review.redundant_photos == ["cam-b/field-02.jpg", "cam-b/field-07.jpg"]
    assert default_author(review.project, AUTHOR) == AUTHOR
    assert default_author(review.project, "expert-a") == AUTHOR  # no marks of theirs: the author who has


def test_the_review_opens_on_the_author_who_has_marks(review, found):
    """A lead who ran ``dedup --who truth`` opens the review from any window: truth's groups,
    not "detector: no duplicates marked"; the window's expert first once they have marks."""
    project = review.project
    assert default_author(project, None) == AUTHOR
    assert default_author(project, "lead") == AUTHOR  # an expert with no files at all
    image = next(i for i in project.images() if len(getattr(project.load("expert-a", i), "cells", ())) >= 2)
    annotation = project.load("expert-a", image)
    first, second, *rest = annotation.cells
    project.save(annotation.with_cells([first, replace(second, duplicate_of=f"{image}#{first.id}"), *rest]))
    assert marked_groups(project, "expert-a")
    assert default_author(project, "expert-a") == "expert-a"
    assert default_author(project, AUTHOR) == AUTHOR


def test_the_review_opens_on_the_detector_when_nobody_has_marks(tmp_path):
    project = Project.open(shutil.copytree(SAMPLE_PROJECT_DIR, tmp_path / "sample"))
    assert not any(marked_groups(project, a) for a in project.authors())
    assert default_author(project, "expert-a") == DETECTOR


def test_confirm_marks_the_whole_group_and_a_rerun_keeps_it(review, found):
    group = review.groups[3]
    review.confirm(group)
    for ref in group.refs:
        assert cell(review.project, ref).extra[DECISION] == CONFIRMED
    assert review.groups[3].confirmed
    # a later search that no longer finds the pair leaves the confirmed mark alone
    mark_duplicates(review.project, AUTHOR, ProjectDuplicates([], [], 0))
    assert marked_groups(review.project, AUTHOR) == [(group.keeper.ref, [group.members[0].ref])]


def test_split_keeps_the_cell_and_a_rerun_does_not_mark_it_again(review, found):
    group = review.groups[0]
    member = group.members[0]
    review.split(group, member)
    split = cell(review.project, member.ref)
    assert split.duplicate_of is None and split.extra[DECISION] == NOT_DUPLICATE and EVIDENCE not in split.extra
    assert len(review.groups) == 11 and review.group_of(member.ref) is None
    mark_duplicates(review.project, AUTHOR, found)
    assert cell(review.project, member.ref).duplicate_of is None
    assert len(marked_groups(review.project, AUTHOR)) == 11


def test_swap_makes_the_member_the_keeper_and_survives_a_rerun(review, found):
    group = review.groups[1]
    old, new = group.keeper, group.members[0]
    review.swap_keeper(group, new)
    assert cell(review.project, new.ref).duplicate_of is None
    demoted = cell(review.project, old.ref)
    assert demoted.duplicate_of == new.ref and demoted.extra[EVIDENCE] == new.evidence
    assert all(cell(review.project, ref).extra[DECISION] == CONFIRMED for ref in (old.ref, new.ref))
    swapped = review.groups[1]  # in the same place in the list
    assert swapped.keeper.ref == new.ref and [m.ref for m in swapped.members] == [old.ref]
    mark_duplicates(review.project, AUTHOR, found)  # the search would keep the old one: the decision stands
    assert (new.ref, [old.ref]) in marked_groups(review.project, AUTHOR)


def test_undo_restores_the_files_it_changed(review):
    project = review.project
    files = {image: project.annotation_path(AUTHOR, image).read_bytes() for image in project.images()}
    group0, group1 = review.groups[0], review.groups[1]
    review.split(group0, group0.members[0])
    review.swap_keeper(group1, group1.members[0])
    assert review.can_undo()
    review.undo()
    review.undo()
    assert not review.can_undo()
    assert {image: project.annotation_path(AUTHOR, image).read_bytes() for image in project.images()} == files
    assert len(review.groups) == 12


def test_undo_puts_back_only_the_duplicate_fields(review):
    group = review.groups[0]
    member = group.members[0]
    review.split(group, member)
    image, cell_id = split_ref(member.ref)
    annotation = review.project.load(AUTHOR, image)  # meanwhile an expert relabels the cell
    review.project.save(annotation.with_cell(replace(annotation.cell(cell_id), label="lymphocyte")))
    review.undo()
    back = cell(review.project, member.ref)
    assert back.label == "lymphocyte" and back.duplicate_of == group.keeper.ref and DECISION not in back.extra


def test_a_vanished_cell_changes_nothing(review):
    group = review.groups[0]
    image, cell_id = split_ref(group.members[0].ref)
    review.project.save(review.project.load(AUTHOR, image).without_cell(cell_id))
    keeper_file = review.project.annotation_path(AUTHOR, group.keeper.image).read_bytes()
    with pytest.raises(UserError, match=cell_id):
        review.confirm(group)
    assert review.project.annotation_path(AUTHOR, group.keeper.image).read_bytes() == keeper_file
    assert not review.can_undo()


def test_with_the_labeling_window_open_the_current_photo_is_edited_through_its_controller(review):
    """The window's autosave must not overwrite a decision on the photo it shows, nor lose its edits."""
    project = review.project
    group = review.groups[0]
    member = group.members[0]
    labeling = LabelingController(project, AUTHOR, autosaver=Autosaver(project.save, executor=_Now()))
    labeling.open_image(member.image)
    labeling.select(member.cell_id)
    labeling.label_selected("monocyte")  # an unsaved edit in the window
    review = DedupReviewController(project, AUTHOR, LabelingAnnotations(labeling))
    review.reload()  # saves the window's pending edit first
    review.split(review.groups[0], review.groups[0].members[0])
    shown = labeling.find(member.cell_id)[0]
    assert shown.duplicate_of is None and shown.extra[DECISION] == NOT_DUPLICATE and shown.label == "monocyte"
    labeling.undo()  # the split is an ordinary step in the window: its own undo still works
    labeling.redo()
    labeling.autosaver.flush()
    on_disk = cell(project, member.ref)
    assert on_disk.extra[DECISION] == NOT_DUPLICATE and on_disk.label == "monocyte"
    review.undo()
    labeling.autosaver.flush()
    assert cell(project, member.ref).duplicate_of == group.keeper.ref
    assert labeling.find(member.cell_id)[0].duplicate_of == group.keeper.ref
