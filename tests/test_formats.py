"""Import and export formats on tiny synthetic projects: round trips, matching, merging, errors."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from PIL import Image

from raabin_labeler.core.annotation import Box, Cell, ImageAnnotation
from raabin_labeler.core.formats.common import ImageMatcher, merge_cells, place_box
from raabin_labeler.core.formats.exporter import export_annotations
from raabin_labeler.core.formats.importer import import_annotations
from raabin_labeler.core.project import Project, author_for
from raabin_labeler.errors import FileProblem, UserError

SIZES = {"a.jpg": (320, 240), "smear2/b.png": (200, 150)}


@pytest.fixture
def project(tmp_path, make_photo) -> Project:
    for i, (name, (w, h)) in enumerate(SIZES.items()):
        make_photo(tmp_path / "photos" / name, w, h, seed=i)
    return Project.create(tmp_path / "P", tmp_path / "photos")


def annotate(project: Project, author: str, image: str, cells: list[tuple[list[int], str | None]]) -> ImageAnnotation:
    annotation = ImageAnnotation.empty(project.image_ref(image), author_for(author))
    annotation = annotation.with_cells([Cell.new(Box(*box), label) for box, label in cells])
    project.save(annotation)
    return annotation


def boxes(project: Project, author: str, image: str) -> list[tuple[list[int], str | None]]:
    annotation = project.load(author, image)
    assert annotation is not None
    return sorted((c.box.as_list(), c.label) for c in annotation.cells)


CELLS_A = [([0, 0, 40, 30], "neutrophil.band"), ([100, 50, 160, 120], None),
           ([280, 200, 320, 240], "lymphocyte.small"), ([10, 100, 11, 101], "monocyte")]
CELLS_B = [([5, 5, 60, 60], "eosinophil")]


def _annotate_both(project: Project) -> None:
    annotate(project, "expert-a", "a.jpg", CELLS_A)
    annotate(project, "expert-a", "smear2/b.png", CELLS_B)


# -- matching, clipping, merging -------------------------------------------------------------
def test_photos_match_by_relative_path_then_stem_and_ambiguity_is_named():
    matcher = ImageMatcher(["x/IMG_1.jpg", "y/IMG_1.jpg", "IMG_2.JPG", "deep/IMG_3.png"])
    assert matcher.match(["y/IMG_1.xml"]).image == "y/IMG_1.jpg"
    assert matcher.match(["../JPEGImages/img_2.jpg"]).image == "IMG_2.JPG"
    assert matcher.match(["IMG_3.jpg.json"]).image == "deep/IMG_3.png"
    ambiguous = matcher.match(["IMG_1.xml"])
    assert ambiguous.image is None and "x/IMG_1.jpg" in ambiguous.problem
    assert matcher.match(["nothing.xml"]) == type(ambiguous)(None)
    # a file that names one of the project's folders means a photo there, not one elsewhere
    cams = ImageMatcher(["cam-b/field-01.jpg", "cam-a/field-02.jpg"])
    wrong = cams.match(["cam-a/field-01.json"])
    assert wrong.image is None and "cam-b/field-01.jpg" in wrong.problem
    assert cams.match(["labels/field-01.txt"]).image == "cam-b/field-01.jpg"  # a tool's own folder


def test_boxes_past_the_edge_are_clipped_and_empty_ones_explained():
    assert place_box((-5, 10, 50.4, 300), 320, 240).box == Box(0, 10, 50, 240)
    assert place_box((-5, 10, 50, 300), 320, 240).clipped
    assert "no area" in place_box((30, 10, 20, 40), 320, 240).problem
    assert "outside" in place_box((400, 10, 450, 40), 320, 240).problem


def test_merge_keeps_existing_cells_and_skips_only_same_box_same_label(project):
    existing = annotate(project, "ann", "a.jpg", [([10, 10, 50, 50], "monocyte")])
    old = existing.cells[0]
    incoming = [Cell.new(Box(10, 10, 50, 51), "monocyte"),           # the same cell: skipped
                Cell.new(Box(10, 10, 50, 50), "basophil"),           # same box, other label: added
                replace(old, box=Box(100, 100, 140, 140)),           # id in use: gets a new id
                Cell.new(Box(10, 10, 50, 50), "monocyte")]           # skipped too
    result = merge_cells(existing, incoming)
    assert (result.added, result.duplicates, result.relabeled) == (2, 2, 1)
    assert result.annotation.cells[0] == old
    assert len({c.id for c in result.annotation.cells}) == 3


def test_import_onto_existing_work_keeps_every_cell_and_says_so(project, tmp_path):
    mine = annotate(project, "expert-a", "a.jpg", [([0, 0, 40, 30], "neutrophil.band"), ([60, 60, 90, 90], "monocyte")])
    src = tmp_path / "a.xml"
    src.write_text("<annotation><filename>a.jpg</filename>"
                   "<object><name>Band</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>"
                   "<object><name>Basophil</name><bndbox><xmin>201</xmin><ymin>101</ymin><xmax>230</xmax><ymax>130</ymax></bndbox></object>"
                   "</annotation>")
    report = import_annotations(project, "voc", src, ["expert-a"])
    after = project.load("expert-a", "a.jpg")
    assert after.cells[:2] == mine.cells
    assert [(c.box.as_list(), c.label) for c in after.cells[2:]] == [([200, 100, 230, 130], "basophil")]
    assert "kept its 2 cell(s), left out 1 imported cell(s) already there" in "\n".join(report.lines())


# -- round trips -------------------------------------------------------------------------------
def test_voc_round_trip_is_exact_and_uses_one_based_inclusive_coordinates(project, tmp_path):
    _annotate_both(project)
    export_annotations(project, "voc", ["expert-a"], tmp_path / "voc")
    xml = (tmp_path / "voc" / "a.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<xmax>40</xmax>" in xml and "<name>wbc</name>" in xml
    assert (tmp_path / "voc" / "smear2" / "b.xml").exists()
    report = import_annotations(project, "voc", tmp_path / "voc", ["copy"])
    assert report.photos == {"a.jpg", "smear2/b.png"} and report.clipped == 0
    assert boxes(project, "copy", "a.jpg") == sorted(CELLS_A)
    assert boxes(project, "copy", "smear2/b.png") == sorted(CELLS_B)


def test_coco_round_trip_keeps_boxes_labels_and_cell_ids(project, tmp_path):
    _annotate_both(project)
    rejected = annotate(project, "expert-a", "a.jpg", CELLS_A)
    cells = list(rejected.cells)
    cells.append(Cell.new(Box(200, 10, 240, 50), "basophil").edited(rejected=True))
    cells.append(Cell.new(Box(200, 60, 240, 100), "basophil").edited(duplicate_of=cells[0].id))
    project.save(rejected.with_cells(cells))
    report = export_annotations(project, "coco", ["expert-a"], tmp_path / "coco")
    assert (report.cells, report.rejected, report.duplicates) == ({"expert-a": 5}, 1, 1)
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert {names[a["category_id"]] for a in data["annotations"]} == {
        "neutrophil.band", "wbc", "lymphocyte.small", "monocyte", "eosinophil"}
    assert [0, 0, 40, 30] in [a["bbox"] for a in data["annotations"]]
    import_annotations(project, "coco", tmp_path / "coco" / "annotations.json", ["copy"])
    assert boxes(project, "copy", "a.jpg") == sorted(CELLS_A)
    original_ids = {c.id for c in cells[:4]}
    assert {c.id for c in project.load("copy", "a.jpg").cells} == original_ids


def test_yolo_export_normalises_centres_and_lists_classes(project, tmp_path):
    _annotate_both(project)
    export_annotations(project, "yolo", ["expert-a"], tmp_path / "yolo")
    classes = (tmp_path / "yolo" / "classes.txt").read_text().split()
    assert classes[-1] == "wbc" and "neutrophil.band" in classes
    rows = [line.split() for line in (tmp_path / "yolo" / "a.txt").read_text().splitlines()]
    got = sorted(([round((float(cx) - float(w) / 2) * 320), round((float(cy) - float(h) / 2) * 240),
                   round((float(cx) + float(w) / 2) * 320), round((float(cy) + float(h) / 2) * 240)],
                  classes[int(k)]) for k, cx, cy, w, h in rows)
    assert got == sorted((box, label or "wbc") for box, label in CELLS_A)


def test_crops_are_square_per_label_with_provenance(project, tmp_path):
    project.data["default_box_size"] = 64
    _annotate_both(project)
    annotation = project.load("expert-a", "a.jpg")
    project.save(replace(annotation, acquisition=replace(annotation.acquisition, smear="S07", camera="Galaxy S5")))
    export_annotations(project, "crops", ["expert-a"], tmp_path / "crops")
    with open(tmp_path / "crops" / "crops.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(CELLS_A) + len(CELLS_B)
    band = next(r for r in rows if r["label"] == "neutrophil.band")
    assert band["crop"].startswith("neutrophil.band/") and band["smear"] == "S07" and band["camera"] == "Galaxy S5"
    assert [band["x1"], band["y1"], band["x2"], band["y2"]] == ["0", "0", "40", "30"]
    crop = Image.open(tmp_path / "crops" / band["crop"])
    assert crop.size == (64, 64)
    photo = Image.open(project.image_path("a.jpg")).convert("RGB")
    # the 40×30 box at the corner: centre (20, 15), crop spans -12..52 × -17..47, padded black
    assert max(crop.getpixel((2, 2))) < 12  # padding (JPEG blurs the edge a little)
    assert crop.getpixel((12 + 20, 17 + 15)) == pytest.approx(photo.getpixel((20, 15)), abs=40)
    assert (tmp_path / "crops" / "wbc").is_dir()
    assert any(r["crop"].startswith("eosinophil/smear2__b__") for r in rows)
    # relabeled, then exported again: the cell's crop is only under its new class
    relabeled = replace(band_cell := project.load("expert-a", "a.jpg").cell(band["cell_id"]), label="monocyte")
    project.save(project.load("expert-a", "a.jpg").with_cell(relabeled))
    (tmp_path / "crops" / "mine.txt").write_text("the user's own file")
    report = export_annotations(project, "crops", ["expert-a"], tmp_path / "crops")
    assert not (tmp_path / "crops" / band["crop"]).exists() and "1 crop(s) of the previous export" in " ".join(report.lines())
    assert (tmp_path / "crops" / band["crop"].replace("neutrophil.band/", "monocyte/")).exists()
    assert (tmp_path / "crops" / "mine.txt").exists() and band_cell.id == band["cell_id"]


# -- Raabin JSON -------------------------------------------------------------------------------
RAABIN = {
    "Cell Numbers": "4", "Smear": {"stain": "Giemsa", "id": 7},
    "Cell_0": {"Label1": "Neutrophil", "Label2": "Band", "x1": "10", "y1": "12", "x2": "70", "y2": "80"},
    "Cell_1": {"Label1": "Small Lymph", "Label2": "Large Lymph", "x1": 100, "y1": 20, "x2": 160, "y2": 90,
               "note": "pale"},
    "Cell_2": {"Label1": "", "Label2": None, "x1": 200, "y1": 100, "x2": 260, "y2": 170},
    "Cell_3": {"Label1": "Burst", "x1": 280, "y1": 190, "x2": 340, "y2": 260},  # past the right/bottom edge
}


def test_raabin_splits_label1_and_label2_into_two_authors_with_shared_ids(project, tmp_path):
    (tmp_path / "raabin").mkdir()
    (tmp_path / "raabin" / "a.json").write_text(json.dumps(RAABIN))
    report = import_annotations(project, "raabin", tmp_path / "raabin", ["e1", "e2"])
    assert report.clipped == 1
    one, two = project.load("e1", "a.jpg"), project.load("e2", "a.jpg")
    assert [c.label for c in one.cells] == ["neutrophil.mature", "lymphocyte.small", None, "burst"]
    assert [c.label for c in two.cells] == ["neutrophil.band", "lymphocyte.large", None, None]
    assert [c.id for c in one.cells] == [c.id for c in two.cells]
    assert one.cells[0].box == Box(10, 12, 70, 80) and one.cells[3].box == Box(280, 190, 320, 240)


def test_raabin_round_trip_keeps_other_keys_and_original_boxes(project, tmp_path):
    (tmp_path / "raabin").mkdir()
    (tmp_path / "raabin" / "a.json").write_text(json.dumps(RAABIN))
    import_annotations(project, "raabin", tmp_path / "raabin", ["e1", "e2"])
    export_annotations(project, "raabin", ["e1", "e2"], tmp_path / "out")
    back = json.loads((tmp_path / "out" / "a.json").read_text())
    assert back["Cell Numbers"] == "4" and back["Smear"] == {"stain": "Giemsa", "id": 7}
    assert back["Cell_0"] == {"Label1": "Neutrophil", "Label2": "Band", "x1": 10, "y1": 12, "x2": 70, "y2": 80}
    assert back["Cell_1"]["note"] == "pale" and back["Cell_1"]["Label2"] == "Large Lymph"
    assert back["Cell_2"]["Label1"] is None and back["Cell_2"]["Label2"] is None
    assert [back["Cell_3"][k] for k in ("x1", "y1", "x2", "y2")] == [280, 190, 340, 260]
    single = export_annotations(project, "raabin", ["e1"], tmp_path / "one")
    assert single.cells == {"e1": 4}
    assert "Label2" not in json.loads((tmp_path / "one" / "a.json").read_text())["Cell_0"]


def test_raabin_round_trip_keeps_a_sub_type_unsure_label(project, tmp_path):
    """Raabin's "Neutrophil" is the mature one: a parent-only label must not come back as that."""
    annotate(project, "e1", "a.jpg", [([10, 10, 60, 60], "neutrophil"), ([100, 10, 160, 60], "lymphocyte"),
                                      ([200, 10, 260, 60], "neutrophil.mature")])
    export_annotations(project, "raabin", ["e1"], tmp_path / "out")
    import_annotations(project, "raabin", tmp_path / "out", ["back"])
    labels = sorted(c.label for c in project.load("back", "a.jpg").cells)
    assert labels == ["lymphocyte", "neutrophil", "neutrophil.mature"]


def test_an_export_names_labels_the_taxonomy_does_not_know(project, tmp_path):
    annotate(project, "e1", "a.jpg", [([10, 10, 60, 60], "foo.bar"), ([100, 10, 160, 60], "monocyte")])
    report = export_annotations(project, "coco", ["e1"], tmp_path / "coco")
    assert report.unknown_labels == {"foo.bar": 1}
    assert "labels not in the project's taxonomy, exported under that name: 'foo.bar' (1)" in report.lines()[-1]


def test_raabin_with_one_author_says_label2_was_left_and_refuses_other_json(project, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(RAABIN))
    report = import_annotations(project, "raabin", tmp_path / "a.json", ["e1"])
    assert report.unused_labels == 2 and any("Label2" in line for line in report.lines())
    (tmp_path / "b.json").write_text(json.dumps({"shapes": [], "imagePath": "b.png"}))
    with pytest.raises(FileProblem, match="no Cell_N entries"):
        import_annotations(project, "raabin", tmp_path / "b.json", ["e1"])


def test_raabin_export_pairs_cells_the_two_experts_drew_separately(project, tmp_path):
    annotate(project, "e1", "a.jpg", [([10, 10, 60, 60], "monocyte"), ([200, 10, 240, 50], "basophil")])
    annotate(project, "e2", "a.jpg", [([12, 8, 62, 58], "lymphocyte.large"), ([100, 150, 140, 190], "burst")])
    export_annotations(project, "raabin", ["e1", "e2"], tmp_path / "out")
    back = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = sorted((c["Label1"] or "", c["Label2"] or "", c["x1"]) for c in back.values())
    assert rows == [("", "Burst", 100), ("Basophil", "", 200), ("Monocyte", "Large Lymph", 10)]


# -- labelme -----------------------------------------------------------------------------------
def test_labelme_rectangles_polygons_and_circles_become_boxes(project, tmp_path):
    shapes = [{"label": "Monocyte", "points": [[50, 40], [10, 5]], "shape_type": "rectangle"},
              {"label": "eosinophil", "points": [[100, 100], [140, 90], [130, 150]], "shape_type": "polygon"},
              {"label": "WBC", "points": [[200, 100], [210, 100]], "shape_type": "circle"},
              {"label": "Platelets", "points": [[5, 5], [9, 9]], "shape_type": "rectangle"},
              {"label": "mark", "points": [[3, 3]], "shape_type": "point"}]
    src = tmp_path / "lm" / "elsewhere.json"
    src.parent.mkdir()
    src.write_text(json.dumps({"version": "5.0.1", "shapes": shapes, "imagePath": "..\\photos\\a.jpg",
                               "imageData": None, "imageWidth": 320, "imageHeight": 240}))
    report = import_annotations(project, "labelme", src, ["lm"])
    assert boxes(project, "lm", "a.jpg") == sorted([([10, 5, 50, 40], "monocyte"),
                                                    ([100, 90, 140, 150], "eosinophil"),
                                                    ([190, 90, 210, 110], None), ([5, 5, 9, 9], "platelets")])
    assert any("shapes[4]" in note and "point" in note for note in report.notes)
    assert report.extra_labels == {"Platelets": "platelets"}
    reopened = Project.open(project.root)
    assert reopened.taxonomy.get("platelets").extra


# -- errors --------------------------------------------------------------------------------------
def test_corrupt_xml_names_the_file_and_saves_nothing(project, tmp_path):
    src = tmp_path / "voc"
    src.mkdir()
    (src / "a.xml").write_text("<annotation><object><name>WBC</name><bndbox><xmin>1</xmin>"
                               "<ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    (src / "b.xml").write_text("<annotation><object><name>WBC</name>\n<bndbox></annotation>")
    with pytest.raises(FileProblem) as caught:
        import_annotations(project, "voc", src, ["x"])
    assert caught.value.path == src / "b.xml" and "line 2" in str(caught.value)
    assert not project.has_annotation("x", "a.jpg")


def test_inverted_voc_box_is_reported_by_file_and_object(project, tmp_path):
    src = tmp_path / "a.xml"
    src.write_text("<annotation><size><width>320</width><height>240</height></size>"
                   "<object><name>WBC</name><bndbox><xmin>50</xmin><ymin>1</ymin><xmax>20</xmax><ymax>9</ymax></bndbox></object>"
                   "<object><name>WBC</name><bndbox><xmin>300</xmin><ymin>1</ymin><xmax>400</xmax><ymax>9</ymax></bndbox></object>"
                   "</annotation>")
    report = import_annotations(project, "voc", src, ["x"])
    assert len(report.skipped) == 1 and report.skipped[0].startswith("a.xml: object 0 (WBC): box")
    assert report.clipped == 1 and boxes(project, "x", "a.jpg") == [([299, 0, 320, 9], None)]


def test_wrong_photo_size_and_wrong_author_count_are_refused(project, tmp_path):
    src = tmp_path / "a.xml"
    src.write_text("<annotation><size><width>240</width><height>320</height></size></annotation>")
    with pytest.raises(FileProblem, match="EXIF orientation"):
        import_annotations(project, "voc", src, ["x"])
    with pytest.raises(UserError, match="one author"):
        import_annotations(project, "voc", src, ["x", "y"])
    with pytest.raises(UserError, match="no annotations"):
        export_annotations(project, "coco", ["nobody"], tmp_path / "out")
