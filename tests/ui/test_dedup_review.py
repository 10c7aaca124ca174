"""Tools → Duplicate cells… under Xvfb (issue 5, item 5): search, groups with the keeper highlighted,
split, swap, undo, and a crop that opens its cell in the labeling window."""
from __future__ import annotations

import shutil
import tkinter as tk

import pytest

from raabin_labeler.core.jobs import SyncRunner
from raabin_labeler.core.paths import SAMPLE_PROJECT_DIR
from raabin_labeler.core.project import DETECTOR, Project
from raabin_labeler.core.project_dedup import DECISION, NOT_DUPLICATE, split_ref
from raabin_labeler.ui.dedup_review import KEPT_COLOUR, TILE_WIDTH

from .conftest import wait_until

AUTHOR = "truth"


@pytest.fixture
def sample(tmp_path) -> Project:
    return Project.open(shutil.copytree(SAMPLE_PROJECT_DIR, tmp_path / "sample"))


def buttons(widget: tk.Misc, text: str) -> list[tk.Misc]:
    found = [widget] if widget.winfo_class() == "TButton" and widget.cget("text") == text else []
    for child in widget.winfo_children():
        found += buttons(child, text)
    return found


def files(project: Project) -> dict[str, bytes]:
    return {image: project.annotation_path(AUTHOR, image).read_bytes() for image in project.images()}


def open_review(open_window, sample):
    """The window on the sample, and its duplicate review once loaded (searches run in line)."""
    window = open_window(sample, AUTHOR)
    window.job_runner = lambda n: SyncRunner()
    window.run("dedup.review")
    view = window.dedup_review
    wait_until(window.root, lambda: view.loaded)
    return window, view


def show_author(window, view) -> None:
    view.author.set(AUTHOR)
    view.author_box.event_generate("<<ComboboxSelected>>")
    wait_until(window.root, lambda: view.loaded and view.ctl.author == AUTHOR)


def test_find_review_split_swap_undo_and_open_a_cell(open_window, sample):
    window, view = open_review(open_window, sample)
    assert view.author.get() == DETECTOR  # nobody has marks yet: the detector's proposals are offered
    window.run("dedup.review")
    assert window.dedup_review is view  # reused, not opened twice

    show_author(window, view)
    view.mode.set("paper")
    said: list[str] = []
    view.status.trace_add("write", lambda *_: said.append(view.status.get()))
    view.find_button.invoke()
    wait_until(window.root, lambda: view.job is None and len(view.ctl.groups) == 12)
    # after the last crop is hashed the status says the comparison runs, then what it found
    assert any(text.endswith("crops hashed; comparing them…") for text in said), said
    assert "groups found" in said[-1]
    assert len(view.rows) == 12 and "12 cell(s) seen more than once" in view.summary.get()
    assert "cam-b/field-02.jpg" in view.redundant.get()
    before = files(sample)

    wait_until(window.root, lambda: view.crops_loaded, timeout=20)
    first = view.ctl.groups[0]
    kept_tile = view._crop_buttons[first.keeper.ref][0].master
    assert kept_tile.cget("highlightthickness") == 5 and kept_tile.cget("highlightbackground") == KEPT_COLOUR
    assert all("…" not in var.get() for vars_ in view._sharp_labels.values() for var in vars_)

    # "Not the same cell" on the first group: the photo the labeling window shows is in it
    member = first.members[0]
    assert window.controller.image in (first.keeper.image, member.image)
    buttons(view.rows[0], "Not the same cell")[0].invoke()
    assert len(view.rows) == 11
    window.controller.autosaver.flush()
    image, cell_id = split_ref(member.ref)
    assert sample.load(AUTHOR, image).cell(cell_id).extra[DECISION] == NOT_DUPLICATE

    # "Keep this one" on what is now the first group
    group = view.ctl.groups[0]
    chosen = group.members[0]
    buttons(view.rows[0], "Keep this one")[0].invoke()
    assert view.ctl.groups[0].keeper.ref == chosen.ref
    assert view._crop_buttons[chosen.ref][0].master.cget("highlightthickness") == 5

    view.top.focus_force()
    window.root.update()
    for _ in range(2):
        view.top.event_generate("<Control-z>")
        window.root.update()
    window.controller.autosaver.flush()
    assert len(view.rows) == 12 and files(sample) == before

    # a click on a duplicate's crop shows that cell in the labeling window
    target = view.ctl.groups[5].members[0]
    crop = view._crop_buttons[target.ref][0]
    view.list_canvas.yview_moveto((crop.winfo_rooty() - view.list_frame.winfo_rooty()) / view.list_frame.winfo_height())
    window.root.update()
    crop.event_generate("<ButtonPress-1>", x=10, y=10)
    crop.event_generate("<ButtonRelease-1>", x=10, y=10)
    wait_until(window.root, lambda: window.controller.image == target.image)
    assert window.controller.selected == target.cell_id


def test_robust_search_says_it_compares_the_photos_then_finds_every_pair(open_window, sample):
    window, view = open_review(open_window, sample)
    show_author(window, view)
    assert view.mode.get() == "robust"
    said: list[str] = []
    view.status.trace_add("write", lambda *_: said.append(view.status.get()))
    view.find_button.invoke()
    wait_until(window.root, lambda: view.job is None and len(view.ctl.groups) == 12, timeout=30)
    compared = [text for text in said if "photos compared for overlapping fields" in text]
    assert compared and compared[-1].endswith("14 / 14 photos compared for overlapping fields")
    assert any("crops hashed" in text for text in said[said.index(compared[-1]):])
    evidence = [m.evidence for g in view.ctl.groups for m in g.members]
    assert sum("field_ncc" in e for e in evidence) == 12  # each pair's photos overlap
    # the layout counts TILE_WIDTH a tile: wider evidence text once pushed buttons off screen
    window.root.update()
    tiles = [buttons_[0].master for buttons_ in view._crop_buttons.values()]
    assert tiles and max(t.winfo_reqwidth() for t in tiles) <= TILE_WIDTH


def test_each_tile_says_why_the_cell_was_grouped():
    """Hash distances and correlations, for shifted or border-cut copies the registration, and
    for cells found through their overlapping photos, the shift between them."""
    from raabin_labeler.app.dedup_review import Member
    from raabin_labeler.ui.dedup_review import evidence_text

    def member(evidence: dict) -> Member:
        return Member("a.jpg#c1", "a.jpg", "c1", None, evidence)

    correlated = member({"ahash": 3, "phash": 8, "ncc": 0.97, "texture_ncc": 0.61})
    assert evidence_text(correlated) == "aHash 3 · pHash 8\nNCC 0.970 · texture 0.610"
    registered = member({"ahash": 21, "phash": 30, "ncc": 0.41, "texture_ncc": 0.1,
                         "inliers": 23, "scale": 0.97, "reg_ncc": 0.962})
    assert evidence_text(registered).splitlines()[-2:] == ["23 keypoints agree · scale 0.97", "overlap NCC 0.962"]
    field = member({"ahash": 30, "phash": 32, "ncc": 0.2, "texture_ncc": 0.05, "photos": ["a.jpg", "b.jpg"],
                    "shift": [20, -358], "field_ncc": 0.9491, "field_overlap": 0.25, "box_iou": 0.93})
    assert evidence_text(field).splitlines()[-2:] == ["same field · NCC 0.949", "photos +20, -358 px apart"]
    assert evidence_text(member({})) == "distance to the keeper\nnot measured"


def tile_texts(view, ref: str) -> list[str]:
    """The texts under a crop: "kept" or the evidence, sharpness, photo and cell."""
    tile = view._crop_buttons[ref][0].master
    return [child.cget("text") for child in tile.winfo_children() if child.winfo_class() == "TLabel"]


def test_a_decision_redraws_only_its_group_and_undo_puts_the_screen_back(open_window, sample):
    """Rebuilding every row of a page froze the window 1.3-2.1 s a decision (QA, BCCD)."""
    from raabin_labeler.ui.dedup_review import evidence_text

    window, view = open_review(open_window, sample)
    show_author(window, view)
    view.mode.set("paper")
    view.find_button.invoke()
    wait_until(window.root, lambda: view.job is None and len(view.ctl.groups) == 12)
    wait_until(window.root, lambda: view.crops_loaded, timeout=20)
    view.list_canvas.yview_moveto(0.25)
    window.root.update()
    where = view.list_canvas.yview()[0]
    assert where > 0
    first = list(view.rows)
    groups = list(view.ctl.groups)

    def decide(index: int, text: str) -> None:
        buttons(view.rows[index], text)[-1].invoke()
        window.root.update()

    def others_kept(changed: set[int]) -> None:
        assert [row for i, row in enumerate(view.rows) if i not in changed] == \
            [row for i, row in enumerate(first) if i not in changed]
        assert view.list_canvas.yview()[0] == pytest.approx(where)  # the list did not jump

    decide(3, "Confirm group")
    others_kept({3})
    assert view.rows[3] is first[3]  # only its title changes
    assert view.rows[3].cget("text") == " 4. 2 photos of one cell · ✓ confirmed "
    assert "1 group(s) confirmed" in view.summary.get()

    old_keeper, chosen = groups[4].keeper, groups[4].members[0]
    decide(4, "Keep this one")
    others_kept({4})
    assert view.rows[4] is not first[4]
    assert view.ctl.groups[4].keeper.ref == chosen.ref
    assert tile_texts(view, chosen.ref)[0] == "kept"
    assert view._crop_buttons[chosen.ref][0].master.cget("highlightthickness") == 5
    assert tile_texts(view, old_keeper.ref)[0] == evidence_text(chosen)  # distances are symmetric

    split = groups[5].members[0]
    decide(5, "Not the same cell")
    assert len(view.rows) == 11 and split.ref not in view._crop_buttons
    assert view.rows[:5] == [first[0], first[1], first[2], view.rows[3], view.rows[4]]
    assert view.rows[5:] == first[6:]  # the groups after it are renumbered, not rebuilt
    assert view.rows[5].cget("text").startswith(" 6. ")
    assert "11 cell(s) seen more than once" in view.summary.get()

    view.top.focus_force()
    window.root.update()
    view.top.event_generate("<Control-z>")  # the split
    window.root.update()
    assert len(view.rows) == 12 and view.rows[6:] == first[6:] and view.rows[6].cget("text").startswith(" 7. ")
    assert [g.refs for g in view.ctl.groups] == [g.refs if i != 4 else [chosen.ref, old_keeper.ref]
                                                  for i, g in enumerate(groups)]
    assert tile_texts(view, split.ref)[0] == evidence_text(split)
    view.top.event_generate("<Control-z>")  # the keeper
    window.root.update()
    assert tile_texts(view, old_keeper.ref)[0] == "kept" and tile_texts(view, chosen.ref)[0] == evidence_text(chosen)
    view.top.event_generate("<Control-z>")  # the confirmation
    window.root.update()
    assert view.ctl.groups == groups and view.rows[3].cget("text").endswith("· not reviewed ")
    assert [row for i, row in enumerate(view.rows) if i not in {3, 4, 5}] == \
        [row for i, row in enumerate(first) if i not in {3, 4, 5}]
    assert view.list_canvas.yview()[0] == pytest.approx(where)
    assert "0 group(s) confirmed" in view.summary.get()
