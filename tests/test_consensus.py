"""Adjudication to a consensus: automatic agreed cells, decide, send back, undo, files on disk."""
from __future__ import annotations

import json
from itertools import count

import pytest

from raabin_labeler.core.agreement import pair_experts
from raabin_labeler.core.annotation import Acquisition, Box, Cell, ImageAnnotation
from raabin_labeler.core.consensus import AdjudicationSession
from raabin_labeler.core.project import CONSENSUS, Project, author_for
from raabin_labeler.errors import UserError


def cell(cid: str, x1: int, label: str | None) -> Cell:
    return Cell(cid, Box(x1, 10, x1 + 40, 50), label)


def save(project: Project, author: str, image: str, cells: list[Cell]) -> None:
    project.save(ImageAnnotation(project.image_ref(image), author_for(author), tuple(cells),
                                 Acquisition(smear="S3")))


@pytest.fixture
def project(tmp_path, make_photo) -> Project:
    project = Project.create(tmp_path / "p", experts=["A", "B"])
    make_photo(project.images_dir / "img1.jpg", 300, 200)
    make_photo(project.images_dir / "img2.jpg", 300, 200, seed=1)
    save(project, "A", "img1.jpg", [cell("agree", 0, "monocyte"), cell("d1", 50, "neutrophil.band"),
                                    cell("only-a", 100, "basophil"), cell("none", 150, None)])
    save(project, "B", "img1.jpg", [cell("agree", 0, "monocyte"), cell("d1", 50, "neutrophil.meta"),
                                    cell("none", 150, None)])
    save(project, "A", "img2.jpg", [cell("d2", 0, "lymphocyte.small"), cell("agree2", 100, "eosinophil")])
    save(project, "B", "img2.jpg", [cell("d2", 0, "lymphocyte.large"), cell("agree2", 100, "eosinophil")])
    return project


def clock():
    ticks = count()
    return lambda: f"2026-12-01T10:00:{next(ticks):02d}Z"


def consensus_cells(project: Project, image: str) -> dict[str, dict]:
    data = json.loads(project.annotation_path(CONSENSUS, image).read_text())
    assert data["author"] == {"kind": "consensus", "id": "consensus"}
    return {c["id"]: c for c in data["cells"]}


def open_session(project: Project) -> AdjudicationSession:
    return AdjudicationSession(project, pair_experts(project, "A", "B"), "A", "B", "lead", clock=clock())


def test_adjudication_round_trip(project):
    session = open_session(project)
    # agreed cells go into the consensus by themselves, marked as such
    agreed = consensus_cells(project, "img1.jpg")["agree"]
    assert agreed["label"] == "monocyte" and agreed["decision"] == "agreed"
    assert agreed["expert_labels"] == {"A": "monocyte", "B": "monocyte"}
    assert consensus_cells(project, "img2.jpg")["agree2"]["label"] == "eosinophil"
    # the queue: disagreements and cells only one expert labeled, not the unlabeled one
    assert [i.cell_id for i in session.items] == ["d1", "only-a", "d2"]
    assert session.progress_text() == "decided 0 / 3" and session.current.cell_id == "d1"
    assert session.items[1].one_expert_only and not session.items[0].one_expert_only

    session.decide("neutrophil.meta")
    d1 = consensus_cells(project, "img1.jpg")["d1"]
    assert (d1["label"], d1["decision"], d1["decided_by"]) == ("neutrophil.meta", "adjudicated", "lead")
    assert d1["decided_at"].startswith("2026-12-01T10:00")
    assert d1["expert_labels"] == {"A": "neutrophil.band", "B": "neutrophil.meta"}
    assert session.current.cell_id == "only-a"

    session.send_back()
    sent = consensus_cells(project, "img1.jpg")["only-a"]
    assert sent["label"] is None and sent["decision"] == "sent_back"
    assert session.current.cell_id == "d2" and session.decided == 2

    assert session.undo().cell_id == "only-a"
    assert "only-a" not in consensus_cells(project, "img1.jpg")
    assert session.current.cell_id == "only-a" and session.decided == 1
    assert session.undo().cell_id == "d1"
    assert set(consensus_cells(project, "img1.jpg")) == {"agree"}
    assert session.undo() is None and not session.can_undo

    session.decide("neutrophil.band")
    session.send_back()
    session.decide("lymphocyte.small")
    assert session.finished and session.current is None
    with pytest.raises(UserError, match="nothing to decide"):
        session.decide("monocyte")


def test_reopened_session_keeps_decisions_and_requeues_changed_sent_back(project):
    session = open_session(project)
    session.decide("neutrophil.meta")
    session.send_back()  # only-a
    again = open_session(project)
    assert again.decided == 2 and again.current.cell_id == "d2"
    # B now labels the sent-back cell like A: it becomes agreed and leaves the queue
    save(project, "B", "img1.jpg", [cell("agree", 0, "monocyte"), cell("d1", 50, "neutrophil.meta"),
                                    cell("only-a", 100, "basophil")])
    third = open_session(project)
    assert [i.cell_id for i in third.items] == ["d1", "d2"]
    assert third.is_decided(0) and third.current.cell_id == "d2"
    cells = consensus_cells(project, "img1.jpg")
    assert cells["only-a"]["decision"] == "agreed" and cells["only-a"]["label"] == "basophil"
    assert cells["d1"]["decision"] == "adjudicated"  # a lead's decision stands
    # a sent-back cell the experts change but still disagree on comes back undecided
    third.select(1)
    third.send_back()  # d2
    save(project, "A", "img2.jpg", [cell("d2", 0, "monocyte"), cell("agree2", 100, "eosinophil")])
    fourth = open_session(project)
    assert fourth.current.cell_id == "d2" and fourth.progress_text() == "decided 1 / 2"


def test_decide_refuses_unknown_label_and_needs_a_lead(project):
    session = open_session(project)
    with pytest.raises(UserError, match="not in the project's taxonomy"):
        session.decide("platelet")
    assert session.decided == 0
    with pytest.raises(UserError, match="who adjudicates"):
        AdjudicationSession(project, [], "A", "B", " ")


def test_agreed_cells_are_not_rewritten_when_nothing_changed(project):
    open_session(project)
    path = project.annotation_path(CONSENSUS, "img1.jpg")
    before = path.stat().st_mtime_ns, path.read_text()
    open_session(project)
    assert (path.stat().st_mtime_ns, path.read_text()) == before


def test_queue_can_put_the_same_disagreement_in_a_row(tmp_path, make_photo):
    """Band-vs-Meta cells from three photos come one after another, the most frequent kind first."""
    project = Project.create(tmp_path / "p", experts=["A", "B"])
    kinds = {"img1.jpg": [("neutrophil.band", "neutrophil.meta"), ("basophil", "eosinophil")],
             "img2.jpg": [("lymphocyte.small", "lymphocyte.large"), ("neutrophil.band", "neutrophil.meta")],
             "img3.jpg": [("neutrophil.band", "neutrophil.meta"), ("lymphocyte.small", "lymphocyte.large")]}
    for seed, (image, pairs) in enumerate(kinds.items()):
        make_photo(project.images_dir / image, 300, 200, seed=seed)
        save(project, "A", image, [cell(f"{image}-{i}", 60 * i, a) for i, (a, _) in enumerate(pairs)])
        save(project, "B", image, [cell(f"{image}-{i}", 60 * i, b) for i, (_, b) in enumerate(pairs)])
    images = pair_experts(project, "A", "B")
    by_photo = AdjudicationSession(project, images, "A", "B", "lead", clock=clock())
    assert [i.image for i in by_photo.items] == ["img1.jpg", "img1.jpg", "img2.jpg", "img2.jpg", "img3.jpg", "img3.jpg"]
    grouped = AdjudicationSession(project, images, "A", "B", "lead", clock=clock(), order="disagreement")
    assert [(i.pair.label_a, i.image) for i in grouped.items] == [
        ("neutrophil.band", "img1.jpg"), ("neutrophil.band", "img2.jpg"), ("neutrophil.band", "img3.jpg"),
        ("lymphocyte.small", "img2.jpg"), ("lymphocyte.small", "img3.jpg"), ("basophil", "img1.jpg")]
    # deciding follows the grouped order
    grouped.decide("neutrophil.band")
    assert grouped.current.image == "img2.jpg" and grouped.current.pair.label_a == "neutrophil.band"
    with pytest.raises(UserError, match="queue order"):
        AdjudicationSession(project, images, "A", "B", "lead", order="random")


def test_consensus_exports_leave_out_sent_back_cells_and_the_experts_duplicates(project, tmp_path):
    """The adjudicated dataset must not hold one physical cell twice, nor an unresolved cell as
    a labeled one (QA: a later `dedup` on the experts' cells, a sent-back cell exported as wbc)."""
    from dataclasses import replace

    from raabin_labeler.core.formats.exporter import export_annotations

    session = open_session(project)
    session.decide("neutrophil.meta")  # d1
    session.send_back()  # only-a
    session.decide("lymphocyte.small")  # d2
    # a later duplicate search on A's cells: img2's agree2 is img1's agree, seen again
    a2 = project.load("A", "img2.jpg")
    project.save(a2.with_cell(replace(a2.cell("agree2"), duplicate_of="img1.jpg#agree")))
    report = export_annotations(project, "coco", [CONSENSUS], tmp_path / "coco")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    exported = sorted(names[a["category_id"]] for a in coco["annotations"])
    assert len(exported) == 3 and "wbc" not in exported  # agree, d1, d2: not only-a, not agree2
    assert report.duplicates == 1
    assert "only-a" in consensus_cells(project, "img1.jpg")  # the consensus file itself is unchanged


def _exported(project: Project, out) -> list[tuple[str, str, str]]:
    """(photo, cell id, label) of every cell a COCO export of the consensus writes."""
    from raabin_labeler.core.formats.exporter import export_annotations

    export_annotations(project, "coco", [CONSENSUS], out)
    coco = json.loads((out / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    photos = {i["id"]: i["file_name"] for i in coco["images"]}
    return sorted((photos[a["image_id"]], a["cell_id"], names[a["category_id"]]) for a in coco["annotations"])


def test_an_agreed_cell_an_expert_relabels_after_the_session_is_not_exported_as_agreed(project, tmp_path):
    """QA: expert A relabeled an agreed monocyte as a basophil after the lead's session; the
    export still wrote "monocyte, agreed" though the experts disagree and nobody decided."""
    open_session(project)
    save(project, "A", "img1.jpg", [cell("agree", 0, "basophil"), cell("d1", 50, "neutrophil.band"),
                                    cell("only-a", 100, "basophil"), cell("none", 150, None)])
    # both experts now call agree2 a basophil: the agreed cell follows them
    save(project, "A", "img2.jpg", [cell("d2", 0, "lymphocyte.small"), cell("agree2", 100, "basophil")])
    save(project, "B", "img2.jpg", [cell("d2", 0, "lymphocyte.large"), cell("agree2", 100, "basophil")])
    assert _exported(project, tmp_path / "coco") == [("img2.jpg", "agree2", "basophil")]


def test_a_decision_on_a_cell_only_b_had_moves_with_it_when_a_draws_it(project, tmp_path):
    """QA: the lead decided a cell only B had; A drew it later (another id, matched by overlap).
    The pair then goes by A's id and the cell was exported twice: the old decision and the new pair."""
    save(project, "B", "img2.jpg", [cell("d2", 0, "lymphocyte.large"), cell("agree2", 100, "eosinophil"),
                                    cell("b-only", 200, "basophil")])
    session = open_session(project)
    session.select([i.cell_id for i in session.items].index("b-only"))
    session.decide("monocyte")
    save(project, "A", "img2.jpg", [cell("d2", 0, "lymphocyte.small"), cell("agree2", 100, "eosinophil"),
                                    Cell("a-new", Box(202, 12, 242, 52), "eosinophil")])
    again = open_session(project)
    assert "a-new" in [i.cell_id for i in again.items]
    assert again.is_decided([i.cell_id for i in again.items].index("a-new"))  # the lead's decision stands
    on_img2 = [c for c in _exported(project, tmp_path / "coco") if c[0] == "img2.jpg"]
    assert on_img2 == [("img2.jpg", "a-new", "monocyte"), ("img2.jpg", "agree2", "eosinophil")]


def test_agreement_cli_carries_every_agreed_cell_into_the_consensus_without_a_session(project, tmp_path, capsys,
                                                                                      make_photo):
    """QA: agreed cells reached the consensus only for photos an adjudication session covered, so
    `export --who consensus` left out photos labeled after the last session, or filtered out of it."""
    from raabin_labeler.cli import main

    assert not project.annotation_path(CONSENSUS, "img1.jpg").exists()  # no session yet: nothing agreed
    session = open_session(project)
    session.decide("neutrophil.meta")  # d1: the lead's decision must survive the update
    make_photo(project.images_dir / "img3.jpg", 300, 200, seed=2)
    save(project, "A", "img3.jpg", [cell("late", 0, "monocyte")])  # labeled after the session
    save(project, "B", "img3.jpg", [cell("late", 0, "monocyte")])
    assert main(["agreement", str(project.root), "--experts", "A", "B", "--update-consensus", "lead"]) == 0
    assert "agreed cells brought up to date, 1 photo file(s) changed" in capsys.readouterr().out
    exported = _exported(Project.open(project.root), tmp_path / "after")  # one that sees img3
    assert ("img3.jpg", "late", "monocyte") in exported and ("img1.jpg", "d1", "neutrophil.meta") in exported
    assert {c for _, c, _ in exported} == {"agree", "d1", "agree2", "late"}
    assert consensus_cells(project, "img3.jpg")["late"]["decided_by"] == "lead"
