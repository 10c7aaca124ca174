"""Odd photos, names and folders as a lab has them, and exports into folders that hold other files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from raabin_labeler.cli import main
from raabin_labeler.core.annotation import Box, Cell, ImageAnnotation
from raabin_labeler.core.formats.exporter import export_annotations
from raabin_labeler.core.formats.importer import import_annotations
from raabin_labeler.core.imageio import ImageError, open_image, open_reduced
from raabin_labeler.core.project import Project, author_for
from raabin_labeler.errors import UserError


def annotate(project: Project, author: str, image: str, cells: list[tuple[list[int], str | None]]) -> None:
    annotation = ImageAnnotation.empty(project.image_ref(image), author_for(author))
    project.save(annotation.with_cells([Cell.new(Box(*box), label) for box, label in cells]))


def cells_of(project: Project, author: str, image: str) -> list[tuple[list[int], str | None]]:
    annotation = project.load(author, image)
    return sorted((c.box.as_list(), c.label) for c in annotation.cells) if annotation else []


def test_a_photo_with_a_name_near_the_limit_can_be_saved_and_saved_again(tmp_path, make_photo):
    name = "L" * 240 + ".jpg"  # its annotation file, name + ".json", is 249 bytes: allowed
    make_photo(tmp_path / "photos" / name, 64, 48)
    project = Project.create(tmp_path / "P", tmp_path / "photos")
    annotate(project, "ann", name, [([1, 1, 20, 20], "monocyte")])
    annotate(project, "ann", name, [([2, 2, 30, 30], "basophil")])  # keeps the first as .bak
    assert cells_of(project, "ann", name) == [([2, 2, 30, 30], "basophil")]
    assert project.annotation_path("ann", name).with_name(name + ".json.bak").exists()


def test_a_16_bit_grey_photo_shows_its_grey_levels_not_white(tmp_path):
    levels = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(levels).save(path)
    full = np.asarray(open_image(path))
    assert full.shape == (48, 64, 3)
    assert full[0, 0, 0] == 0 and full[-1, -1, 0] == 255 and 120 < full.mean() < 135
    assert 120 < np.asarray(open_reduced(path, 32)[0]).mean() < 135


def test_an_empty_photo_file_is_called_empty(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"zero\.jpg: is empty \(0 bytes\)"):
        open_image(tmp_path / "zero.jpg")


def test_photos_in_a_linked_folder_are_in_the_project_and_a_link_loop_ends(tmp_path, make_photo):
    make_photo(tmp_path / "photos" / "a.jpg", 32, 24)
    make_photo(tmp_path / "elsewhere" / "smear2" / "b.jpg", 32, 24)
    (tmp_path / "photos" / "smear2").symlink_to(tmp_path / "elsewhere" / "smear2", target_is_directory=True)
    (tmp_path / "elsewhere" / "smear2" / "up").symlink_to(tmp_path / "photos", target_is_directory=True)
    assert Project.create(tmp_path / "P", tmp_path / "photos").images() == ["a.jpg", "smear2/b.jpg"]


@pytest.fixture
def twins(tmp_path, make_photo) -> Project:
    """A folder with a.jpg and a.png (two photos, one stem) and a photo named classes.jpg."""
    for i, name in enumerate(("a.jpg", "a.png", "classes.jpg")):
        make_photo(tmp_path / "photos" / name, 100, 80, seed=i)
    project = Project.create(tmp_path / "P", tmp_path / "photos")
    annotate(project, "e1", "a.jpg", [([1, 1, 20, 20], "monocyte")])
    annotate(project, "e1", "a.png", [([50, 40, 90, 70], "basophil")])
    annotate(project, "e1", "classes.jpg", [([5, 5, 25, 25], "eosinophil")])
    return project


@pytest.mark.parametrize("fmt", ["voc", "raabin"])
def test_photos_sharing_a_stem_keep_their_own_cells_through_export_and_import(twins, tmp_path, fmt):
    export_annotations(twins, fmt, ["e1"], tmp_path / "out")
    report = import_annotations(twins, fmt, tmp_path / "out", ["back"])
    assert not report.unmatched
    for image in ("a.jpg", "a.png", "classes.jpg"):
        assert cells_of(twins, "back", image) == cells_of(twins, "e1", image)


def test_yolo_gives_each_photo_its_own_label_file_beside_classes_txt(twins, tmp_path):
    export_annotations(twins, "yolo", ["e1"], tmp_path / "yolo")
    classes = (tmp_path / "yolo" / "classes.txt").read_text().split()
    files = {p.name: p.read_text().split() for p in (tmp_path / "yolo").glob("*.txt") if p.name != "classes.txt"}
    assert {name: classes[int(rows[0])] for name, rows in files.items()} == {
        "a.jpg.txt": "monocyte", "a.png.txt": "basophil", "classes.jpg.txt": "eosinophil"}


def test_a_file_naming_its_photo_with_the_suffix_is_matched_beside_a_same_stem_photo(twins, tmp_path):
    src = tmp_path / "voc.xml"
    src.write_text("<annotation><filename>a.png</filename><object><name>Band</name><bndbox><xmin>11</xmin>"
                   "<ymin>11</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>")
    import_annotations(twins, "voc", src, ["other"])
    assert cells_of(twins, "other", "a.png") == [([10, 10, 30, 30], "neutrophil.band")]


def test_crops_of_a_photo_with_a_long_name_are_written(tmp_path, make_photo):
    name = "deep/" + "n" * 236 + ".jpg"  # the crop's name would be 260 bytes
    make_photo(tmp_path / "photos" / name, 64, 48)
    project = Project.create(tmp_path / "P", tmp_path / "photos")
    project.data["default_box_size"] = 16
    annotate(project, "e1", name, [([1, 1, 20, 20], "monocyte")])
    report = export_annotations(project, "crops", ["e1"], tmp_path / "crops")
    assert "1 crop(s)" in report.written and len(list((tmp_path / "crops" / "monocyte").glob("*.jpg"))) == 1


@pytest.mark.parametrize("fmt, theirs", [("voc", "a.xml"), ("coco", "annotations.json"), ("yolo", "classes.txt"),
                                         ("raabin", "a.json")])
def test_an_export_never_replaces_a_file_it_did_not_write_without_being_told(tmp_path, make_photo, fmt, theirs):
    make_photo(tmp_path / "photos" / "a.jpg", 100, 80)
    project = Project.create(tmp_path / "P", tmp_path / "photos")
    annotate(project, "e1", "a.jpg", [([1, 1, 20, 20], "monocyte")])
    out = tmp_path / "out"
    out.mkdir()
    (out / theirs).write_text("the original dataset's file")
    (out / "notes.txt").write_text("the user's notes")
    with pytest.raises(UserError, match=f"would replace 1 file.*{theirs}.*nothing was written"):
        export_annotations(project, fmt, ["e1"], out)
    assert (out / theirs).read_text() == "the original dataset's file"
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", theirs])
    export_annotations(project, fmt, ["e1"], out, overwrite=True)  # told: replaced
    assert (out / theirs).read_text() != "the original dataset's file"
    annotate(project, "e1", "a.jpg", [([1, 1, 30, 30], "basophil")])
    export_annotations(project, fmt, ["e1"], out)  # its own files, exported again: no question
    assert "basophil" in "".join(p.read_text() for p in out.glob("*.*") if p.name != "notes.txt").lower()
    assert (out / "notes.txt").read_text() == "the user's notes"


def test_the_cli_refuses_in_one_line_and_overwrite_is_an_option(tmp_path, make_photo, capsys):
    make_photo(tmp_path / "photos" / "a.jpg", 100, 80)
    project = Project.create(tmp_path / "P", tmp_path / "photos")
    annotate(project, "e1", "a.jpg", [([1, 1, 20, 20], "monocyte")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.xml").write_text("<annotation/>")
    args = ["export", str(tmp_path / "P"), "--format", "voc", "--who", "e1", "--out", str(tmp_path / "out")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and "a.xml" in err[0]
    assert main([*args, "--overwrite"]) == 0
    assert "monocyte" in (tmp_path / "out" / "a.xml").read_text()
    assert json.loads((tmp_path / "out" / ".raabin-labeler-export.json").read_text())["files"] == ["a.xml"]


def test_a_hand_edited_label_or_id_cannot_put_a_crop_outside_the_export_folder(tmp_path, make_photo):
    make_photo(tmp_path / "photos" / "a.jpg", 64, 48)
    project = Project.create(tmp_path / "P", tmp_path / "photos")
    project.data["default_box_size"] = 16
    annotate(project, "e1", "a.jpg", [([1, 1, 20, 20], "monocyte")])
    path = project.annotation_path("e1", "a.jpg")
    data = json.loads(path.read_text())
    data["cells"][0].update(label="../../escaped", id="../../../cell")
    path.write_text(json.dumps(data))
    export_annotations(project, "crops", ["e1"], tmp_path / "out" / "crops")
    written = [p for p in tmp_path.rglob("*.jpg") if "photos" not in p.parts]
    assert len(written) == 1 and (tmp_path / "out" / "crops") in written[0].parents
