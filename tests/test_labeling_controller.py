"""The labeling controller without a display: edits, label keys, proposals, undo, navigation.

Every test runs the real Autosaver with a fake clock and a synchronous executor, and checks
what an expert relies on: the JSON on disk (read back with core.store) holds what was done.
"""
from __future__ import annotations


import pytest

from raabin_labeler.app.autosave import Autosaver
from raabin_labeler.app.labeling import IDLE_CAP_SECONDS, LabelingController
from raabin_labeler.core.annotation import Acquisition, Box, Cell
from raabin_labeler.core.project import DETECTOR, Project
from raabin_labeler.core.store import backup_path, load_annotation

from tests.conftest import SyncExecutor, write_photo

EXPERT = "ann"
PHOTOS = {"s1/p0.jpg": (800, 600), "s1/p1.jpg": (800, 600), "s1/p2.jpg": (800, 600),
          "s2/q0.jpg": (400, 300)}  # q0 is smaller than the 575 px default box
D1, D2 = Box(10, 10, 110, 110), Box(300, 10, 400, 110)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Shared by the module's tests, which never write to it (projects keep photos where they are)."""
    folder = tmp_path_factory.mktemp("photos")
    for i, (name, (w, h)) in enumerate(PHOTOS.items()):
        write_photo(folder / name, w, h, seed=i)
    return folder


@pytest.fixture
def project(tmp_path, photos):
    project = Project.create(tmp_path / "p", images=photos, experts=[EXPERT])
    detected = project.load_or_new(DETECTOR, "s1/p0.jpg").with_cells([
        Cell("d-1", D1, source="detector:colorfilter-1"),
        Cell("d-2", D2, label="lymphocyte", source="detector:colorfilter-1")])
    project.save(detected)
    return project


@pytest.fixture
def clock():
    return Clock()


def make_controller(project, clock, **kwargs) -> LabelingController:
    saver = Autosaver(project.save, delay=0.5, clock=clock, executor=SyncExecutor())
    ctl = LabelingController(project, EXPERT, autosaver=saver, clock=clock, **kwargs)
    ctl.open_index(0)
    return ctl


@pytest.fixture
def ctl(project, clock):
    return make_controller(project, clock)


def settle(ctl: LabelingController) -> None:
    """Let the debounce pass so autosave writes, as the window's ``after`` loop would."""
    ctl.clock.now += 1.0
    ctl.autosaver.tick()
    assert not ctl.autosaver.dirty


def on_disk(ctl: LabelingController, image: str = "s1/p0.jpg"):
    return load_annotation(ctl.project.annotation_path(EXPERT, image))


def drag(ctl: LabelingController, cell_id: str, steps: int, dx: float, dy: float) -> None:
    """A mouse drag: press, ``steps`` motion events, release."""
    origin = ctl.find(cell_id)[0].box
    ctl.begin_edit()
    for i in range(1, steps + 1):
        ctl.drag_move(cell_id, origin, dx * i / steps, dy * i / steps)
    ctl.end_edit()


# -- drawing and placing ------------------------------------------------------------------
def test_a_drawn_box_is_selected_and_saved_to_the_experts_file(ctl):
    cell = ctl.draw_box(600, 400, 500, 300)
    assert ctl.selected == cell.id and cell.box == Box(500, 300, 600, 400)
    assert ctl.draw_box(10, 10, 11, 11) is None  # a click is no box
    settle(ctl)
    saved = on_disk(ctl)
    assert [(c.id, c.box, c.source) for c in saved.cells] == [(cell.id, cell.box, f"expert:{EXPERT}")]
    assert saved.author.id == EXPERT


def test_a_placed_box_is_575_px_and_stays_inside_near_the_edge(ctl):
    cell = ctl.place_box(790, 590)
    assert cell.box == Box(225, 25, 800, 600)
    settle(ctl)
    assert on_disk(ctl).cells[0].box == Box(225, 25, 800, 600)


def test_a_placed_box_on_a_photo_smaller_than_575_fits_the_photo(ctl):
    ctl.open_image("s2/q0.jpg")
    cell = ctl.place_box(5, 5)
    assert cell.box == Box(0, 0, 300, 300)


# -- selecting ----------------------------------------------------------------------------
def test_click_selects_the_smallest_cell_or_proposal_under_the_pointer(ctl):
    big = ctl.add_cell(Box(0, 0, 500, 500))
    assert ctl.select_at(50, 50) == "d-1"  # a proposal inside the big box
    assert ctl.select_at(200, 200) == big.id
    assert ctl.select_at(700, 550) is None and ctl.selected is None


def test_tab_cycles_cells_and_proposals_in_reading_order(ctl):
    right = ctl.add_cell(Box(600, 20, 700, 120))
    below = ctl.add_cell(Box(50, 400, 150, 500))
    ctl.select(None)
    seen = []
    for _ in range(5):
        ctl.cycle()
        seen.append(ctl.selected)
    assert seen == ["d-1", "d-2", right.id, below.id, "d-1"]
    ctl.cycle(forward=False)
    assert ctl.selected == below.id


# -- moving and resizing --------------------------------------------------------------------
def test_a_drag_of_many_motion_events_is_one_undo_step_and_saved_once_at_release(ctl):
    cell = ctl.add_cell(Box(100, 200, 200, 300))
    settle(ctl)
    ctl.begin_edit()
    for i in range(1, 41):
        ctl.drag_move(cell.id, cell.box, i, i / 2)
        ctl.clock.now += 1.0
        assert ctl.autosaver.tick().text == "saved"  # nothing half-dragged reaches the disk
    ctl.end_edit()
    assert ctl.annotation.cell(cell.id).box == Box(140, 220, 240, 320)
    settle(ctl)
    assert on_disk(ctl).cell(cell.id).box == Box(140, 220, 240, 320)
    ctl.undo()
    assert ctl.annotation.cell(cell.id).box == Box(100, 200, 200, 300)
    ctl.undo()
    assert ctl.cells() == () and not ctl.can_undo()


def test_a_box_dragged_past_the_edge_stops_at_it(ctl):
    cell = ctl.add_cell(Box(700, 500, 780, 580))
    drag(ctl, cell.id, 10, 400, 400)
    assert ctl.annotation.cell(cell.id).box == Box(720, 520, 800, 600)


def test_resizing_with_a_handle_stays_inside_the_photo_and_is_one_undo_step(ctl):
    cell = ctl.add_cell(Box(100, 100, 200, 200))
    ctl.begin_edit()
    for x in range(200, 1000, 50):
        ctl.drag_resize(cell.id, cell.box, "se", x, x)
    ctl.end_edit()
    assert ctl.annotation.cell(cell.id).box == Box(100, 100, 800, 600)
    ctl.undo()
    assert ctl.annotation.cell(cell.id).box == Box(100, 100, 200, 200)


def test_nudge_moves_the_selected_cell_and_stops_at_the_edge(ctl):
    cell = ctl.add_cell(Box(5, 300, 105, 400))
    ctl.nudge(-10, 0)  # Shift+Left
    assert ctl.annotation.cell(cell.id).box == Box(0, 300, 100, 400)
    ctl.nudge(-1, 0)
    assert ctl.annotation.cell(cell.id).box == Box(0, 300, 100, 400)
    ctl.nudge(0, 1)
    assert ctl.annotation.cell(cell.id).box == Box(0, 301, 100, 401)


def test_moving_a_proposal_adopts_it_with_the_detectors_id(ctl):
    ctl.select("d-1")
    drag(ctl, "d-1", 5, 30, 0)
    assert ctl.find("d-1") == (ctl.annotation.cell("d-1"), False)
    assert ctl.annotation.cell("d-1").box == Box(40, 10, 140, 110)


def test_a_click_with_jitter_on_a_proposal_does_not_accept_it(ctl):
    ctl.select("d-1")
    ctl.begin_edit()
    ctl.drag_move("d-1", D1, 0.3, -0.2)  # rounds to no move
    ctl.end_edit()
    assert "d-1" in [p.id for p in ctl.open_proposals()] and not ctl.can_undo()


# -- undo and redo ----------------------------------------------------------------------------
def test_undo_and_redo_cover_every_kind_of_edit(ctl):
    states = [ctl.annotation]
    cell = ctl.draw_box(500, 300, 600, 400)  # create
    states.append(ctl.annotation)
    drag(ctl, cell.id, 8, 20, 10)  # move
    states.append(ctl.annotation)
    ctl.begin_edit()
    ctl.drag_resize(cell.id, ctl.annotation.cell(cell.id).box, "se", 700, 480)  # resize
    ctl.end_edit()
    states.append(ctl.annotation)
    ctl.select(cell.id)
    ctl.label_key("3")  # label
    states.append(ctl.annotation)
    ctl.select(cell.id)
    ctl.nudge(0, -10)  # nudge
    states.append(ctl.annotation)
    ctl.select("d-1")
    ctl.accept_selected()  # accept
    states.append(ctl.annotation)
    ctl.select("d-2")
    ctl.reject_selected()  # reject
    states.append(ctl.annotation)
    ctl.toggle_done()  # mark photo done
    states.append(ctl.annotation)
    ctl.select(cell.id)
    ctl.delete_selected()  # delete
    states.append(ctl.annotation)
    assert len({id(s) for s in states}) == len(states)

    for expected in reversed(states[:-1]):
        ctl.undo()
        assert ctl.annotation == expected
    assert not ctl.can_undo() and ctl.cells() == ()
    settle(ctl)
    assert on_disk(ctl).cells == ()  # undo is saved too
    for expected in states[1:]:
        ctl.redo()
        assert ctl.annotation == expected
    assert not ctl.can_redo()
    settle(ctl)
    assert on_disk(ctl).cells == states[-1].cells and on_disk(ctl).status.done


def test_a_new_edit_after_undo_drops_the_redo_history(ctl):
    ctl.add_cell(Box(10, 300, 50, 340))
    ctl.undo()
    assert ctl.can_redo()
    ctl.add_cell(Box(100, 300, 150, 340))
    assert not ctl.can_redo() and len(ctl.cells()) == 1


def test_undo_history_is_per_photo(ctl):
    ctl.add_cell(Box(10, 300, 50, 340))
    settle(ctl)
    ctl.next_photo()
    assert not ctl.can_undo()
    ctl.undo()
    assert ctl.cells() == ()


# -- label keys ---------------------------------------------------------------------------
@pytest.fixture
def three_cells(ctl):
    ctl.open_image("s1/p1.jpg")
    cells = [ctl.add_cell(Box(x, 100, x + 100, 200)) for x in (50, 250, 450)]
    ctl.select(cells[0].id)
    return [c.id for c in cells]


def label_of(ctl, cell_id):
    return ctl.annotation.cell(cell_id).label


def test_two_digits_pick_a_sub_type(ctl, three_cells):
    assert ctl.label_key("1") is None and ctl.chord_parent == "neutrophil"
    assert label_of(ctl, three_cells[0]) is None  # waiting for the sub-type
    assert ctl.label_key("2") == "neutrophil.band"
    assert label_of(ctl, three_cells[0]) == "neutrophil.band"


def test_enter_or_the_timeout_keeps_the_parent_only(ctl, three_cells):
    ctl.label_key("1")
    assert ctl.commit_chord() == "neutrophil"
    assert label_of(ctl, three_cells[0]) == "neutrophil" and ctl.chord_parent is None
    assert ctl.commit_chord() is None  # nothing pending: Enter does nothing


def test_a_class_without_sub_types_is_applied_at_once(ctl, three_cells):
    assert ctl.label_key("3") == "monocyte"
    assert label_of(ctl, three_cells[0]) == "monocyte" and ctl.chord_parent is None


def test_a_second_key_that_is_no_sub_type_keeps_the_parent_and_labels_the_next_cell(ctl, three_cells):
    ctl.label_key("1")
    ctl.label_key("4")  # neutrophil has no sub-type 4; 4 is eosinophil
    assert label_of(ctl, three_cells[0]) == "neutrophil"
    assert label_of(ctl, three_cells[1]) == "eosinophil"
    assert ctl.selected == three_cells[2]


def test_reject_after_a_class_key_rejects_the_cell_and_labels_nothing(ctl):
    """1 then x on a proposal: the expert changed their mind. The pending class used to be
    committed when the selection moved on, un-rejecting the cell as a neutrophil."""
    ctl.select("d-1")
    ctl.label_key("1")
    ctl.reject_selected()
    ctl.commit_chord()  # the chord's timeout fires later: nothing may be left to commit
    assert ctl.annotation.cell("d-1").rejected and ctl.annotation.cell("d-1").label is None
    assert ctl.find("d-2")[1] and ctl.find("d-2")[0].label == "lymphocyte"  # still an open proposal
    settle(ctl)
    assert on_disk(ctl).cell("d-1").rejected and on_disk(ctl).cell("d-1").label is None


def test_delete_after_a_class_key_does_not_label_the_next_cell(ctl, three_cells):
    ctl.label_key("2")
    ctl.delete_selected()
    assert ctl.selected == three_cells[1]
    ctl.commit_chord()
    assert [c.label for c in ctl.cells()] == [None, None]


def test_undo_after_a_class_key_takes_back_only_the_key(ctl, three_cells):
    """3 (monocyte, on to the next cell), 1, Ctrl+Z: the undone cell used to end up a neutrophil
    when the chord timed out."""
    ctl.label_key("3")
    ctl.label_key("1")
    assert ctl.can_undo() and ctl.chord_parent == "neutrophil"
    ctl.undo()
    ctl.commit_chord()
    assert label_of(ctl, three_cells[0]) == "monocyte" and label_of(ctl, three_cells[1]) is None
    ctl.undo()
    ctl.commit_chord()
    assert [c.label for c in ctl.cells()] == [None, None, None]


def test_redo_after_a_class_key_does_not_label_the_cell_redo_selects(ctl, three_cells):
    ctl.label_key("3")
    ctl.undo()
    ctl.label_key("1")
    ctl.redo()
    ctl.commit_chord()
    assert [c.label for c in ctl.cells()] == ["monocyte", None, None]


def test_a_box_drawn_after_a_class_key_leaves_it_on_the_cell_it_was_typed_for(ctl, three_cells):
    ctl.label_key("1")
    new = ctl.add_cell(Box(50, 300, 150, 400))
    ctl.commit_chord()
    assert label_of(ctl, three_cells[0]) == "neutrophil" and label_of(ctl, new.id) is None


def test_a_second_key_that_means_nothing_keeps_the_parent(ctl, three_cells):
    ctl.label_key("2")
    assert ctl.label_key("9") == "lymphocyte"
    assert label_of(ctl, three_cells[0]) == "lymphocyte" and label_of(ctl, three_cells[1]) is None


def test_keys_without_a_selection_or_label_do_nothing(ctl, three_cells):
    assert ctl.label_key("9") is None
    ctl.select(None)
    assert ctl.label_key("3") is None and ctl.chord_parent is None
    assert all(label_of(ctl, c) is None for c in three_cells)


def test_a_class_key_typed_before_selecting_another_cell_stands(ctl, three_cells):
    """As after the pause: a keystroke is never dropped without a word."""
    ctl.label_key("1")
    ctl.select(three_cells[2])
    assert ctl.chord_parent is None and ctl.selected == three_cells[2]
    ctl.label_key("2")
    assert ctl.commit_chord() == "lymphocyte"
    assert label_of(ctl, three_cells[0]) == "neutrophil" and label_of(ctl, three_cells[2]) == "lymphocyte"


def test_a_class_key_typed_before_the_next_photo_stands(ctl, three_cells):
    ctl.label_key("1")
    ctl.next_photo()
    ctl.open_image("s1/p1.jpg")
    assert label_of(ctl, three_cells[0]) == "neutrophil"


def test_after_the_last_cell_is_labeled_no_cell_stays_selected(ctl, three_cells):
    for digit in "345":
        ctl.label_key(digit)
    assert [label_of(ctl, c) for c in three_cells] == ["monocyte", "eosinophil", "basophil"]
    assert ctl.selected is None
    ctl.label_key("4")  # typed ahead: changes nothing
    assert [label_of(ctl, c) for c in three_cells] == ["monocyte", "eosinophil", "basophil"]


def test_labeling_advances_to_the_next_unlabeled_cell_in_reading_order(ctl, three_cells):
    ctl.select(three_cells[1])
    ctl.label_key("5")
    ctl.select(three_cells[0])
    ctl.label_key("3")
    assert ctl.selected == three_cells[2]  # skips the labeled middle cell
    ctl.label_key("0")
    assert ctl.selected is None  # nothing left unlabeled: a digit typed ahead changes nothing
    settle(ctl)
    assert [c.label for c in on_disk(ctl, "s1/p1.jpg").cells] == ["monocyte", "basophil", "not_recognized"]


def test_advance_after_label_can_be_turned_off(project, clock):
    ctl = make_controller(project, clock, advance_after_label=False)
    ctl.open_image("s1/p1.jpg")
    first = ctl.add_cell(Box(50, 100, 150, 200))
    ctl.add_cell(Box(250, 100, 350, 200))
    ctl.select(first.id)
    ctl.label_key("3")
    assert ctl.selected == first.id


def test_label_counts_count_sub_types_under_their_parent(ctl, three_cells):
    ctl.label_key("1")
    ctl.label_key("2")
    ctl.label_key("1")
    ctl.commit_chord()
    ctl.label_key("3")
    assert ctl.label_counts() == {"neutrophil.band": 1, "neutrophil": 2, "monocyte": 1}


# -- detector proposals ---------------------------------------------------------------------
def test_proposals_from_the_detectors_file_are_shown_until_the_expert_decides(ctl):
    assert [p.id for p in ctl.open_proposals()] == ["d-1", "d-2"]
    assert {c.id for c in ctl.visible_cells()} == {"d-1", "d-2"}
    assert ctl.find("d-1")[1] is True
    assert ctl.photo_status("s1/p0.jpg").unlabeled == 2


def test_a_tighter_proposal_inside_the_experts_box_counts_as_that_cell(ctl):
    # D1 is 100 px square; the expert boxed the same cell with a margin (IoU 0.44 < 0.5)
    ctl.add_cell(Box(0, 0, 150, 150), "neutrophil")
    assert [p.id for p in ctl.open_proposals()] == ["d-2"]
    assert ctl.photo_status("s1/p0.jpg").unlabeled == 1


def test_accept_keeps_the_detectors_id_box_and_label(ctl, project):
    detector_file = project.annotation_path(DETECTOR, "s1/p0.jpg").read_bytes()
    ctl.select("d-2")
    ctl.accept_selected()
    settle(ctl)
    accepted = on_disk(ctl).cell("d-2")
    assert (accepted.box, accepted.label, accepted.rejected) == (D2, "lymphocyte", False)
    assert accepted.source.startswith("detector")
    assert [p.id for p in ctl.open_proposals()] == ["d-1"]
    assert project.annotation_path(DETECTOR, "s1/p0.jpg").read_bytes() == detector_file


def test_reject_keeps_the_proposal_in_the_experts_file_marked_rejected(ctl, project):
    ctl.select("d-1")
    ctl.reject_selected()
    assert ctl.selected == "d-2"  # moves on
    settle(ctl)
    rejected = on_disk(ctl).cell("d-1")
    assert rejected.rejected and rejected.label is None and rejected.box == D1
    assert "d-1" not in {c.id for c in ctl.visible_cells()}
    assert project.load(DETECTOR, "s1/p0.jpg").cell("d-1").rejected is False
    assert ctl.annotation.labeled_count() == 0


def test_reject_moves_on_to_the_next_cell_still_to_label_not_a_labeled_one(ctl):
    """Reading order wraps: after rejecting the last proposal, the labeled first cell must not
    take the selection (a digit typed next would silently relabel it)."""
    ctl.select("d-1")
    ctl.label_key("3")  # d-1 labeled monocyte; d-2 selected
    assert ctl.selected == "d-2"
    ctl.reject_selected()
    assert ctl.selected is None  # nothing left to do on this photo
    ctl.label_key("4")
    assert ctl.annotation.cell("d-1").label == "monocyte"


def test_delete_on_a_proposal_rejects_it_instead_of_losing_it(ctl):
    ctl.select("d-1")
    ctl.delete_selected()
    assert ctl.annotation.cell("d-1").rejected


def test_delete_removes_an_experts_own_cell_and_selects_the_next(ctl):
    mine = ctl.add_cell(Box(500, 10, 600, 110))
    ctl.delete_selected()
    assert mine.id not in {c.id for c in ctl.cells()} and ctl.selected == "d-1"
    settle(ctl)
    assert on_disk(ctl).cells == ()


def test_labeling_a_proposal_adopts_it_with_the_detectors_id(ctl):
    ctl.select("d-1")
    ctl.label_key("4")
    settle(ctl)
    adopted = on_disk(ctl).cell("d-1")
    assert (adopted.label, adopted.box) == ("eosinophil", D1) and adopted.source.startswith("detector")
    assert ctl.selected == "d-2"  # the next unlabeled one: a proposal


def test_accept_does_nothing_on_the_experts_own_cell(ctl):
    ctl.add_cell(Box(500, 10, 600, 110))
    ctl.accept_selected()
    ctl.reject_selected()
    assert len(ctl.cells()) == 1 and not ctl.cells()[0].rejected
    ctl.undo()  # the only undo step is the drawing
    assert ctl.cells() == () and not ctl.can_undo()


# -- navigation and progress -----------------------------------------------------------------
def test_next_and_previous_stop_at_the_ends(ctl):
    assert not ctl.previous_photo() and ctl.index == 0
    assert ctl.next_photo() and ctl.next_photo() and ctl.next_photo()
    assert ctl.image == "s2/q0.jpg" and not ctl.next_photo() and ctl.index == 3
    assert ctl.previous_photo() and ctl.image == "s1/p2.jpg"


def test_reopening_a_photo_shows_what_was_saved(ctl):
    cell = ctl.place_box(400, 300)
    ctl.label_key("5")
    settle(ctl)
    ctl.next_photo()
    ctl.previous_photo()
    assert [(c.id, c.label) for c in ctl.cells()] == [(cell.id, "basophil")]


def test_going_back_within_the_autosave_delay_loses_nothing(ctl):
    first = ctl.place_box(200, 300)
    ctl.next_photo()
    ctl.previous_photo()  # quicker than the debounce
    second = ctl.add_cell(Box(700, 10, 790, 100))
    settle(ctl)
    assert {c.id for c in on_disk(ctl).cells} == {first.id, second.id}


def test_progress_text_counts_done_photos_and_labeled_cells(ctl):
    assert ctl.progress_text() == "photos done 0 / 4 · cells labeled 0"
    ctl.select("d-1")
    ctl.label_key("3")
    ctl.label_key("4")
    ctl.toggle_done()
    settle(ctl)
    ctl.next_photo()
    ctl.add_cell(Box(10, 10, 100, 100), "basophil")
    ctl.add_cell(Box(200, 10, 300, 100))
    assert ctl.progress_text() == "photos done 1 / 4 · cells labeled 3"
    assert ctl.photo_status("s1/p0.jpg").state == "done"
    assert ctl.photo_status("s1/p1.jpg") == type(ctl.photo_status("s1/p1.jpg"))("in progress", 2, 1, 1)
    assert ctl.photo_status("s1/p2.jpg").state == "not started"


def test_next_unfinished_skips_photos_that_are_done_and_wraps(ctl):
    ctl.open_image("s1/p1.jpg")
    ctl.add_cell(Box(10, 10, 100, 100), "basophil")
    ctl.toggle_done()
    settle(ctl)
    ctl.open_image("s1/p2.jpg")
    ctl.add_cell(Box(10, 10, 100, 100), "basophil")
    ctl.toggle_done()
    settle(ctl)
    ctl.open_image("s1/p0.jpg")
    assert ctl.next_unfinished_photo() and ctl.image == "s2/q0.jpg"
    assert ctl.next_unfinished_photo() and ctl.image == "s1/p0.jpg"  # wraps, skips nothing open


def test_a_photo_marked_done_with_an_open_proposal_is_still_unfinished(ctl):
    ctl.toggle_done()
    settle(ctl)
    for image in ("s1/p1.jpg", "s1/p2.jpg", "s2/q0.jpg"):
        ctl.open_image(image)
        ctl.add_cell(Box(10, 10, 100, 100), "basophil")
        ctl.toggle_done()
        settle(ctl)
    assert ctl.next_unfinished_photo() and ctl.image == "s1/p0.jpg"
    ctl.toggle_done()  # now undone: done → not done
    assert not ctl.annotation.status.done


# -- broken files ---------------------------------------------------------------------------
def test_a_broken_expert_file_is_reported_never_overwritten_and_the_next_photo_works(ctl, project):
    path = project.annotation_path(EXPERT, "s1/p1.jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"format": "raabin-labeler/1", "cells": [', encoding="utf-8")
    before = path.read_bytes()

    assert ctl.open_image("s1/p1.jpg") is False
    assert ctl.problem is not None and ctl.problem.path == path and str(path) in str(ctl.problem)
    assert not ctl.editable()
    assert ctl.draw_box(10, 10, 200, 200) is None and ctl.place_box(100, 100) is None
    ctl.toggle_done()
    ctl.undo()
    assert ctl.photo_status("s1/p1.jpg").state == "unreadable"
    assert ctl.close() is None
    assert path.read_bytes() == before

    ctl.open_image("s1/p0.jpg")
    ctl.set_acquisition(Acquisition(stain="Giemsa"), whole_folder=True)  # skips the broken photo
    settle(ctl)
    assert path.read_bytes() == before
    ctl.open_image("s1/p1.jpg")
    assert ctl.next_photo() and ctl.image == "s1/p2.jpg" and ctl.problem is None and ctl.editable()
    assert "photos done 0 / 4" in ctl.progress_text()


def test_restore_backup_replaces_a_broken_file_and_keeps_the_broken_one_aside(ctl, project):
    ctl.open_image("s1/p1.jpg")
    first = ctl.add_cell(Box(10, 10, 100, 100), "basophil")
    settle(ctl)
    ctl.add_cell(Box(200, 10, 300, 100), "monocyte")
    settle(ctl)  # the second save keeps the first as .bak
    path = project.annotation_path(EXPERT, "s1/p1.jpg")
    assert backup_path(path).exists()
    path.write_text("garbage", encoding="utf-8")

    ctl.next_photo()
    assert not ctl.previous_photo() and ctl.problem is not None
    assert ctl.restore_backup() is True
    assert ctl.problem is None and [c.id for c in ctl.cells()] == [first.id]
    assert [p.read_text() for p in path.parent.glob(path.name + ".broken-*")] == ["garbage"]
    assert load_annotation(path).cell(first.id).label == "basophil"


def test_a_restored_backup_counts_again_after_leaving_the_photo(ctl, project):
    """The photo was "unreadable" until its backup was restored; leaving it kept that status, so
    its labels were missing from "cells labeled" and U skipped it."""
    ctl.open_image("s1/p1.jpg")
    ctl.add_cell(Box(10, 10, 100, 100), "basophil")
    settle(ctl)
    ctl.add_cell(Box(200, 10, 300, 100), "monocyte")
    settle(ctl)
    project.annotation_path(EXPERT, "s1/p1.jpg").write_text("garbage", encoding="utf-8")
    ctl.next_photo()
    ctl.previous_photo()
    assert ctl.restore_backup()
    ctl.next_photo()
    assert ctl.photo_status("s1/p1.jpg").state == "in progress"
    assert "cells labeled 1" in ctl.progress_text()


# -- photo-level edits ----------------------------------------------------------------------
def test_acquisition_for_the_whole_folder_reaches_every_photo_of_that_folder_only(ctl, project):
    acq = Acquisition(smear="S07", stain="Giemsa", magnification=100, camera="Samsung Galaxy S5")
    ctl.place_box(400, 300)
    assert ctl.set_acquisition(acq, whole_folder=True) == 3
    settle(ctl)
    for image in ("s1/p0.jpg", "s1/p1.jpg", "s1/p2.jpg"):
        assert on_disk(ctl, image).acquisition == acq
    assert len(on_disk(ctl).cells) == 1
    assert not project.has_annotation(EXPERT, "s2/q0.jpg")
    ctl.undo()
    assert ctl.annotation.acquisition == Acquisition()


def test_acquisition_for_the_folder_survives_an_unsaved_edit_on_another_photo(ctl):
    ctl.open_image("s1/p1.jpg")
    cell = ctl.place_box(400, 300)
    ctl.open_image("s1/p0.jpg")  # within the autosave delay
    ctl.set_acquisition(Acquisition(stain="Giemsa"), whole_folder=True)
    settle(ctl)
    saved = on_disk(ctl, "s1/p1.jpg")
    assert [c.id for c in saved.cells] == [cell.id] and saved.acquisition.stain == "Giemsa"


def test_a_blank_field_applied_to_the_folder_keeps_what_each_photo_has(ctl):
    ctl.set_acquisition(Acquisition(smear="S07", magnification=100, camera="Canon EOS"))
    ctl.open_image("s1/p1.jpg")
    ctl.set_acquisition(Acquisition(camera="LG G3"), whole_folder=True)
    settle(ctl)
    assert on_disk(ctl, "s1/p0.jpg").acquisition == Acquisition(smear="S07", magnification=100, camera="LG G3")
    assert on_disk(ctl, "s1/p2.jpg").acquisition == Acquisition(camera="LG G3")


def test_a_new_photo_of_the_same_folder_starts_with_the_last_ones_acquisition(ctl):
    ctl.set_acquisition(Acquisition(smear="S07", camera="Canon EOS"))
    ctl.next_photo()
    assert ctl.image == "s1/p1.jpg" and ctl.annotation.acquisition == Acquisition(smear="S07", camera="Canon EOS")
    ctl.open_image("s2/q0.jpg")  # another folder: another slide, perhaps
    assert ctl.annotation.acquisition == Acquisition()


def test_time_spent_counts_gaps_between_edits_up_to_a_cap(ctl):
    ctl.add_cell(Box(10, 300, 50, 340))
    ctl.clock.now += 10
    ctl.add_cell(Box(100, 300, 150, 340))
    assert ctl.annotation.status.seconds_spent == 10
    ctl.clock.now += 1000  # went for lunch
    ctl.add_cell(Box(200, 300, 250, 340))
    assert ctl.annotation.status.seconds_spent == 10 + IDLE_CAP_SECONDS


def test_other_experts_files_are_loaded_apart_for_blind_mode(ctl, project):
    other = project.load_or_new("bob", "s1/p0.jpg").with_cell(Cell.new(Box(1, 1, 50, 50), "monocyte"))
    project.save(other)
    ctl.open_image("s1/p0.jpg")
    assert set(ctl.other) == {"bob"} and ctl.other["bob"].cells[0].label == "monocyte"
    assert ctl.cells() == ()


def test_listeners_hear_what_changed(ctl):
    heard = []
    ctl.listeners.append(heard.append)
    ctl.add_cell(Box(10, 300, 50, 340))
    ctl.select(None)
    ctl.next_photo()
    assert heard == ["cells", "selection", "leaving", "photo"]  # "leaving" while the old photo is still current


def test_opening_a_photo_selects_its_first_unlabeled_cell_so_keys_work_at_once(project, clock):
    ctl = make_controller(project, clock)
    assert ctl.selected == "d-1"  # the detector's first proposal in reading order
    ctl.label_key("3")
    assert ctl.find("d-1")[0].label == "monocyte" and ctl.selected == "d-2"
    quiet = make_controller(project, clock, advance_after_label=False)
    assert quiet.selected is None
