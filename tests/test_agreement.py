"""Two-expert agreement: matching, the Table 4 matrix, kappa, the report files, the double-labeled set."""
from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score

from raabin_labeler.app.agreement import AgreementController
from raabin_labeler.commands import agreement as agreement_command
from raabin_labeler.core.agreement import (
    CellPair, agreement_figures, confusion_matrix, export_double_labeled, kappa_with_ci, match_cells,
    pair_experts)
from raabin_labeler.core.annotation import Acquisition, Box, Cell, ImageAnnotation
from raabin_labeler.core.formats.importer import import_annotations
from raabin_labeler.core.project import Project, author_for
from raabin_labeler.errors import UserError

TABLE4 = ["Artifact", "Band", "Basophil", "Burst", "Eosinophil", "Large lymph.", "Meta", "Monocyte",
          "Neutrophil", "Small lymph.", "Not recognized", "Not labeled"]
PARENTS = ["Artifact", "Basophil", "Burst", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil",
           "Not recognized", "Not labeled"]
W, H = 400, 300


def make_project(root: Path, make_photo, photos: dict[str, int] = {"img1.jpg": 0, "img2.jpg": 1}) -> Project:
    project = Project.create(root, experts=["A", "B"])
    for name, seed in photos.items():
        make_photo(project.images_dir / name, W, H, seed=seed)
    return project


def cell(cid: str, x1: int, y1: int = 0, size: int = 40, label: str | None = None, **kw) -> Cell:
    return Cell(cid, Box(x1, y1, x1 + size, y1 + size), label, **kw)


def save(project: Project, author: str, image: str, cells: list[Cell], **acq) -> None:
    ann = ImageAnnotation(project.image_ref(image), author_for(author), tuple(cells), Acquisition(**acq))
    project.save(ann)


# Raabin label pairs (Label1, Label2) and the matrix cells they must land in.
RAABIN_PAIRS = [("Neutrophil", "Neutrophil"), ("Neutrophil", "Neutrophil"), ("Neutrophil", "Band"),
                ("Band", "Meta"), ("Small Lymph", "Large Lymph"), ("Large Lymph", "Large Lymph"),
                ("Monocyte", "Monocyte"), ("Eosinophil", "Basophil"), ("Burst", "Artifact"),
                ("Not recognized", None), (None, "Basophil"), ("Artifact", "Artifact")]
NAME = {"Small Lymph": "Small lymph.", "Large Lymph": "Large lymph.", None: "Not labeled"}


@pytest.fixture
def raabin_project(tmp_path, make_photo) -> Project:
    """Two photos whose Raabin JSON (imported with --as A B) gives the matrix of RAABIN_PAIRS."""
    project = make_project(tmp_path / "p", make_photo)
    src = tmp_path / "raabin"
    src.mkdir()
    halves = {"img1": RAABIN_PAIRS[:6], "img2": RAABIN_PAIRS[6:]}
    for stem, pairs in halves.items():
        data = {"image_info": {"kept": True}}
        for i, (l1, l2) in enumerate(pairs):
            x = 10 + 60 * i
            data[f"Cell_{i}"] = {"Label1": l1, "Label2": l2, "x1": x, "y1": "20", "x2": x + 50, "y2": 70}
        (src / f"{stem}.json").write_text(json.dumps(data))
    import_annotations(project, "raabin", src, ["A", "B"])
    return project


def test_raabin_import_gives_the_known_table4_matrix(raabin_project):
    images = pair_experts(raabin_project, "A", "B")
    matrix = confusion_matrix(images, raabin_project.taxonomy, "A", "B")
    assert matrix.names == TABLE4
    expected = np.zeros((12, 12), dtype=int)
    for l1, l2 in RAABIN_PAIRS:
        expected[TABLE4.index(NAME.get(l1, l1)), TABLE4.index(NAME.get(l2, l2))] += 1
    assert matrix.counts.tolist() == expected.tolist()
    assert all(p.matched_by == "id" for img in images for p in img.pairs)
    # the gallery of a matrix cell lists exactly the cells counted there
    row, col = TABLE4.index("Neutrophil"), TABLE4.index("Neutrophil")
    gallery = matrix.pairs_at(row, col)
    assert len(gallery) == 2 and all(p.label_a == p.label_b == "neutrophil.mature" for p in gallery)


def test_matching_by_id_then_by_maximum_total_iou():
    a = [cell("shared", 300, label="monocyte"),
         cell("a1", 105, size=100, label="basophil"),   # IoU .905 with b1, .6 with b2
         cell("a2", 70, size=100, label="eosinophil"),  # IoU .538 with b1, .25 with b2
         cell("a-lone", 250, 150, label="burst")]
    b = [cell("b1", 100, size=100, label="eosinophil"), cell("b2", 130, size=100, label="basophil"),
         cell("shared", 302, label=None), cell("b-lone", 0, 200, label="artifact")]
    pairs = match_cells("x.jpg", a, b)
    by_a = {p.a.id: p for p in pairs if p.a}
    assert by_a["shared"].matched_by == "id" and by_a["shared"].b.id == "shared"
    # greedy (a1-b1 first) would leave a2 alone; the maximum total IoU pairs a1-b2 and a2-b1
    assert by_a["a1"].b.id == "b2" and by_a["a2"].b.id == "b1"
    assert by_a["a1"].matched_by == "iou" and by_a["a1"].iou == pytest.approx(75 / 125)
    assert by_a["a-lone"].b is None and by_a["a-lone"].label_b is None
    assert [p.b.id for p in pairs if p.a is None] == ["b-lone"]
    assert len(pairs) == 5  # every cell exactly once


def test_iou_below_half_does_not_pair():
    pairs = match_cells("x.jpg", [cell("a", 0, size=100)], [cell("b", 50, size=100)])  # IoU 1/3
    assert [(p.a and p.a.id, p.b and p.b.id) for p in pairs] == [("a", None), (None, "b")]


def test_rejected_counts_as_not_labeled_and_unlabeled_pairs_are_left_out(tmp_path, make_photo):
    project = make_project(tmp_path / "p", make_photo, {"img1.jpg": 0})
    project.set_taxonomy(project.taxonomy.with_extra("RBC")[0])  # as a BCCD import adds it
    save(project, "A", "img1.jpg", [cell("c1", 0, label=None, rejected=True), cell("c2", 50, label="monocyte"),
                                    cell("c3", 100, label=None), cell("u", 200, label=None),
                                    cell("r", 250, label="rbc")])
    save(project, "B", "img1.jpg", [cell("c1", 0, label="basophil"), cell("c2", 50, label="monocyte"),
                                    cell("c3", 100, label=None, rejected=True), cell("r", 250, label="rbc")])
    images = pair_experts(project, "A", "B")
    matrix = confusion_matrix(images, project.taxonomy, "A", "B")
    assert matrix.total == 2  # c3, u (neither labeled) and the RBC (extra label, ignored) left out
    assert "RBC" not in matrix.names and matrix.names == TABLE4
    assert matrix.counts[TABLE4.index("Not labeled"), TABLE4.index("Basophil")] == 1
    assert matrix.pairs_at(TABLE4.index("Not labeled"), TABLE4.index("Basophil"))[0].rejected_a


def test_parent_rollup_and_unsure_subtype(tmp_path, make_photo):
    project = make_project(tmp_path / "p", make_photo, {"img1.jpg": 0})
    labels = [("neutrophil.band", "neutrophil.mature"), ("neutrophil", "neutrophil.mature"),
              ("lymphocyte", "lymphocyte.small"), ("lymphocyte.large", "lymphocyte.small"),
              ("monocyte", "neutrophil")]
    save(project, "A", "img1.jpg", [cell(f"c{i}", 50 * i, label=la) for i, (la, _) in enumerate(labels)])
    save(project, "B", "img1.jpg", [cell(f"c{i}", 50 * i, label=lb) for i, (_, lb) in enumerate(labels)])
    images = pair_experts(project, "A", "B")
    leaf = confusion_matrix(images, project.taxonomy, "A", "B", "leaf")
    assert leaf.names == [*TABLE4[:9], "Neutrophil (sub-type unsure)", "Small lymph.",
                          "Lymphocyte (sub-type unsure)", "Not recognized", "Not labeled"]
    assert leaf.counts[leaf.index("Neutrophil (sub-type unsure)"), leaf.index("Neutrophil")] == 1
    assert leaf.counts[leaf.index("Monocyte"), leaf.index("Neutrophil (sub-type unsure)")] == 1
    assert np.trace(leaf.counts) == 0
    parent = confusion_matrix(images, project.taxonomy, "A", "B", "parent")
    assert parent.names == PARENTS
    assert parent.counts[parent.index("Neutrophil"), parent.index("Neutrophil")] == 2
    assert parent.counts[parent.index("Lymphocyte"), parent.index("Lymphocyte")] == 2
    assert parent.counts[parent.index("Monocyte"), parent.index("Neutrophil")] == 1
    assert agreement_figures(parent).observed == pytest.approx(4 / 5)


def test_kappa_hand_worked_example():
    # n = 50; po = 35/50 = .7; margins rows (25, 25), columns (30, 20): pe = (750 + 500)/2500 = .5
    # kappa = (.7 - .5)/(1 - .5) = .4. Fleiss-Cohen-Everitt: A = .4(1 - 1.1·.6)² + .3(1 - .9·.6)² = .10972,
    # B = .36·(.1·1.1² + .2·.9²) = .10188, C = (.4 - .5·.6)² = .01; var = .2016/(50·.25) = .016128
    po, pe, kappa, se = kappa_with_ci(np.array([[20, 5], [10, 15]]))
    assert (po, pe, kappa) == pytest.approx((0.7, 0.5, 0.4))
    assert se == pytest.approx(np.sqrt(0.016128))
    assert kappa - 1.96 * se == pytest.approx(0.1511, abs=1e-4)


def test_kappa_se_matches_statsmodels_reference():
    # statsmodels.stats.inter_rater.cohens_kappa(table).std_kappa (same FCE 1969 formula), run once
    table = np.array([[14, 15, 22, 28, 1, 4], [24, 28, 7, 9, 26, 12], [8, 24, 7, 12, 19, 16],
                      [2, 0, 25, 22, 25, 16], [24, 9, 13, 23, 3, 9], [3, 13, 29, 4, 11, 12]])
    _, _, kappa, se = kappa_with_ci(table)
    assert (kappa, se) == pytest.approx((-0.002815757532486, 0.019498229082127))


def test_kappa_matches_scikit_learn_and_perfect_agreement():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 500)
    b = np.where(rng.random(500) < 0.6, a, rng.integers(0, 6, 500))
    counts = np.zeros((6, 6), dtype=int)
    np.add.at(counts, (a, b), 1)
    assert kappa_with_ci(counts)[2] == pytest.approx(cohen_kappa_score(a, b))
    po, _, kappa, se = kappa_with_ci(np.diag([5, 7, 9]))
    assert (po, kappa, se) == pytest.approx((1.0, 1.0, 0.0))


def test_figures_from_project_match_scikit_learn(raabin_project):
    images = pair_experts(raabin_project, "A", "B")
    figures = agreement_figures(confusion_matrix(images, raabin_project.taxonomy, "A", "B"))
    pairs = [p for img in images for p in img.pairs]
    la = [str(p.label_a) for p in pairs]
    lb = [str(p.label_b) for p in pairs]
    assert figures.kappa == pytest.approx(cohen_kappa_score(la, lb))
    assert figures.observed == pytest.approx(5 / 12)
    assert figures.ci_low < figures.kappa < figures.ci_high
    neut = next(c for c in figures.classes if c.name == "Neutrophil")
    assert (neut.count_a, neut.count_b, neut.agreed) == (3, 2, 2)
    assert neut.specific_agreement == pytest.approx(2 * 2 / 5)


def run_cli(*argv: str) -> int:
    import argparse
    parser = argparse.ArgumentParser()
    agreement_command.register(parser.add_subparsers())
    args = parser.parse_args(["agreement", *argv])
    return args.run(args)


def test_cli_prints_and_writes_csv_png_json(raabin_project, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(str(raabin_project.root), "--experts", "A", "B", "--csv", str(out / "m.csv"),
                   "--png", str(out / "m.png"), "--json", str(out / "m.json"))
    assert code == 0
    text = capsys.readouterr().out
    assert "Cohen's kappa" in text and "Small lymph." in text
    rows = list(csv.reader((out / "m.csv").open()))
    assert rows[0][1:] == TABLE4 and [r[0] for r in rows[1:]] == TABLE4
    assert rows[1 + TABLE4.index("Neutrophil")][1 + TABLE4.index("Band")] == "1"
    assert (out / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "m.json").read_text())
    assert report["parent"]["names"] == PARENTS
    with pytest.raises(UserError, match="C: no annotations"):
        run_cli(str(raabin_project.root), "--experts", "A", "C")


def test_cli_names_every_unreadable_file_instead_of_figures_over_part_of_the_photos(raabin_project):
    broken = [raabin_project.annotation_path("B", image) for image in raabin_project.images()[:2]]
    for path in broken:
        path.write_text("{ not json")
    with pytest.raises(UserError, match="2 annotation file") as caught:
        run_cli(str(raabin_project.root), "--experts", "A", "B")
    assert all(str(path) in str(caught.value) for path in broken)
    assert all(path.read_text() == "{ not json" for path in broken)


def test_controller_filters_gallery_and_thumbnails(tmp_path, make_photo):
    project = make_project(tmp_path / "p", make_photo, {"cam1/a.jpg": 0, "cam2/b.jpg": 1})
    for image, camera, label_b in (("cam1/a.jpg", "S5", "monocyte"), ("cam2/b.jpg", "LG", "basophil")):
        save(project, "A", image, [cell("c1", 10, label="monocyte")], camera=camera)
        save(project, "B", image, [cell("c1", 10, label=label_b)])
    ctl = AgreementController(project, "A", "B")
    ctl.load()
    assert ctl.choices()["camera"] == ["LG", "S5"] and ctl.choices()["folder"] == ["cam1", "cam2"]
    assert ctl.matrix.total == 2
    ctl.set_filter(camera="LG")
    assert ctl.matrix.total == 1
    where = ctl.cell_at(ctl.matrix.index("Basophil") + 0.3, ctl.matrix.index("Monocyte") - 0.2)
    assert where == (ctl.matrix.index("Monocyte"), ctl.matrix.index("Basophil"))
    [pair] = ctl.gallery(*where)
    assert ctl.open_target(pair) == ("cam2/b.jpg", "c1")
    assert ctl.thumbnail(pair, 64).size == (64, 64)
    ctl.set_filter(camera=None, folder="cam1")
    ctl.set_level("parent")
    assert ctl.matrix.names == PARENTS and ctl.matrix.counts.trace() == 1
    assert ctl.cell_at(None, 1.0) is None and ctl.cell_at(99.0, 0.0) is None


def test_double_labeled_export(tmp_path, make_photo):
    project = make_project(tmp_path / "p", make_photo, {"img1.jpg": 0, "img2.jpg": 1})
    project.data["default_box_size"] = 64
    project.save_settings()
    a1 = [cell("n1", 10, label="neutrophil.mature"), cell("n2", 60, label="neutrophil.mature"),
          cell("band", 110, label="neutrophil.band"), cell("l1", 160, label="lymphocyte.small"),
          cell("edge", W - 30, H - 30, size=30, label="eosinophil"),
          cell("dupA", 210, label="monocyte", duplicate_of="x"), cell("dupD", 260, label="monocyte"),
          cell("mis", 310, label="basophil")]
    b1 = [cell("n1", 10, label="neutrophil.mature"), cell("n2", 60, label="neutrophil.mature"),
          cell("band", 110, label="neutrophil.band"), cell("l1", 160, label="lymphocyte.large"),
          cell("edge", W - 30, H - 30, size=30, label="eosinophil"),
          cell("dupA", 210, label="monocyte"), cell("dupD", 260, label="monocyte"),
          cell("mis", 310, label="monocyte")]
    save(project, "A", "img1.jpg", a1, smear="S1", camera="S5", microscope="CX18")
    save(project, "B", "img1.jpg", b1)
    save(project, "detector", "img1.jpg", [cell("dupD", 260, duplicate_of="n1")])
    save(project, "A", "img2.jpg", [cell("m1", 50, label="monocyte")], smear="S2")
    save(project, "B", "img2.jpg", [cell("other-id", 52, label="monocyte")])  # paired by IoU
    out = tmp_path / "double"
    report = export_double_labeled(project, pair_experts(project, "A", "B"), out)
    assert report.per_class == {"Neutrophil": 2, "Lymphocyte": 1, "Monocyte": 1, "Eosinophil": 1, "Basophil": 0}
    assert report.left_out_duplicates == 2
    crops = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert len(crops) == 5 and not any("dup" in c for c in crops)
    for path in out.rglob("*.jpg"):
        assert Image.open(path).size == (64, 64)
    edge = np.asarray(Image.open(out / "Eosinophil" / "img1__edge.jpg"))
    assert edge[-5:, -5:].max() < 30  # padded black beyond the photo's corner
    rows = list(csv.DictReader((out / "double_labeled.csv").open()))
    assert len(rows) == 5
    n1 = next(r for r in rows if r["cell_id"] == "n1")
    assert (n1["photo"], n1["class"], n1["smear"], n1["camera"], n1["microscope"]) == \
        ("img1.jpg", "Neutrophil", "S1", "S5", "CX18")
    assert [n1["x1"], n1["y1"], n1["x2"], n1["y2"]] == ["10", "0", "50", "40"]


def test_same_expert_twice_is_refused(raabin_project):
    with pytest.raises(UserError, match="two different experts"):
        pair_experts(raabin_project, "A", "A")


def test_cell_pair_prefers_expert_a_record():
    a, b = cell("a", 0, label="monocyte"), cell("b", 2, label="basophil")
    pair = CellPair("x.jpg", a, b, "iou", 0.9)
    assert pair.cell_id == "a" and pair.box == a.box and not pair.agreed


def test_reopening_reuses_pairs_until_an_expert_saves(raabin_project):
    """The view reopens from kept pairs, yet an edit in the labeling window shows up at once."""
    first = {p.image: p for p in pair_experts(raabin_project, "A", "B")}
    ann = raabin_project.load("B", "img1.jpg")
    relabeled = next(c.id for c in ann.cells if c.label == "neutrophil.mature")
    raabin_project.save(ann.with_cells(tuple(replace(c, label="monocyte") if c.id == relabeled else c
                                             for c in ann.cells)))
    second = {p.image: p for p in pair_experts(raabin_project, "A", "B")}
    assert second["img2.jpg"] is first["img2.jpg"]  # unchanged files: not paired again
    assert second["img1.jpg"] is not first["img1.jpg"]
    changed = next(p for p in second["img1.jpg"].pairs if p.cell_id == relabeled)
    assert changed.label_b == "monocyte"
    summary = AgreementController(raabin_project, "A", "B")
    summary.load()
    matrix = summary.matrix
    assert matrix.counts[TABLE4.index("Neutrophil"), TABLE4.index("Monocyte")] == 1
    assert summary.summary().by_id == len(RAABIN_PAIRS)
