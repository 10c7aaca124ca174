"""`init`, `import` and `export` from the command line, on BCCD's real VOC files and on errors."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from raabin_labeler import cli
from raabin_labeler.core.project import Project

TRAIN_PHOTOS = 30


def run(*argv: object) -> int:
    return cli.main([str(a) for a in argv])


def voc_boxes(xml: Path) -> list[tuple[str, list[int]]]:
    top = ET.parse(xml).getroot()
    return [(o.findtext("name"), [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")])
            for o in top.findall("object")]


def test_bccd_voc_import_then_coco_export_gives_back_every_box(bccd, tmp_path, capsys):
    # the whole val split, the first train photos, and 00343 whose object 3 is a single point
    stems = (bccd / "val.txt").read_text().split() + (bccd / "train.txt").read_text().split()[:TRAIN_PHOTOS]
    stems.append("BloodImage_00343")
    photos = tmp_path / "photos"
    photos.mkdir()
    for stem in stems:
        (photos / f"{stem}.jpg").symlink_to(bccd / "JPEGImages" / f"{stem}.jpg")
    assert run("init", tmp_path / "P", "--images", photos, "--experts", "a", "b") == 0
    assert run("import", tmp_path / "P", "--format", "voc", bccd / "Annotations", "--as", "truth") == 0
    said = capsys.readouterr().out
    assert f"{len(stems)} photo(s) matched" in said and "RBC → rbc" in said and "Platelets → platelets" in said
    assert f"{292 - len(stems)} file(s) matched no photo" in said
    assert "BloodImage_00343.xml: object 3 (RBC): xmin = xmax" in said
    assert run("export", tmp_path / "P", "--format", "coco", "--who", "truth", "--out", tmp_path / "out") == 0

    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_photo: dict[str, list[tuple[str, list[int]]]] = {}
    file_of = {i["id"]: i["file_name"] for i in coco["images"]}
    for ann in coco["annotations"]:
        by_photo.setdefault(file_of[ann["image_id"]], []).append((names[ann["category_id"]], ann["bbox"]))
    category = {"WBC": "wbc", "RBC": "rbc", "Platelets": "platelets"}
    total = 0
    for stem in stems:
        truth = voc_boxes(bccd / "Annotations" / f"{stem}.xml")
        got = by_photo.get(f"{stem}.jpg", [])
        assert len(got) == len(truth), stem
        unmatched = list(got)
        for name, (xmin, ymin, xmax, ymax) in truth:
            hit = next((g for g in unmatched if g[0] == category[name]
                        and max(abs(g[1][0] - xmin), abs(g[1][1] - ymin),
                                abs(g[1][0] + g[1][2] - xmax), abs(g[1][1] + g[1][3] - ymax)) <= 1), None)
            assert hit is not None, f"{stem}: {name} {[xmin, ymin, xmax, ymax]} not exported"
            unmatched.remove(hit)
        total += len(truth)
    assert total == len(coco["annotations"]) > 1000


def test_raabin_cli_round_trip_with_two_experts(tmp_path, make_photo, capsys):
    make_photo(tmp_path / "photos" / "s1" / "IMG_7.jpg", 640, 480)
    raabin = {"Image": "IMG_7.jpg", "Cell_0": {"Label1": "Meta", "Label2": "Band", "x1": "1", "y1": "2", "x2": "300", "y2": "301"},
              "Cell_1": {"Label1": "Not recognized", "Label2": "", "x1": 350, "y1": 100, "x2": 600, "y2": 350}}
    (tmp_path / "raabin").mkdir()
    (tmp_path / "raabin" / "IMG_7.json").write_text(json.dumps(raabin))
    assert run("init", tmp_path / "P", "--images", tmp_path / "photos") == 0
    assert run("import", tmp_path / "P", "--format", "raabin", tmp_path / "raabin", "--as", "A", "B") == 0
    project = Project.open(tmp_path / "P")
    assert [c.label for c in project.load("A", "s1/IMG_7.jpg").cells] == ["neutrophil.meta", "not_recognized"]
    assert [c.label for c in project.load("B", "s1/IMG_7.jpg").cells] == ["neutrophil.band", None]
    assert run("export", tmp_path / "P", "--format", "raabin", "--who", "A", "B", "--out", tmp_path / "out") == 0
    back = json.loads((tmp_path / "out" / "s1" / "IMG_7.json").read_text())
    assert back["Image"] == "IMG_7.jpg"
    assert back["Cell_0"] == {"Label1": "Meta", "Label2": "Band", "x1": 1, "y1": 2, "x2": 300, "y2": 301}
    assert back["Cell_1"]["Label1"] == "Not recognized" and back["Cell_1"]["Label2"] is None
    capsys.readouterr()
    assert run("import", tmp_path / "P", "--format", "raabin", tmp_path / "raabin", "--as", "A", "B") == 0
    said = capsys.readouterr().out
    assert "kept its 2 cell(s), left out 2 imported cell(s) already there" in said
    assert len(Project.open(tmp_path / "P").load("A", "s1/IMG_7.jpg").cells) == 2


def test_failures_exit_1_with_one_line_naming_the_problem(tmp_path, make_photo, capsys):
    make_photo(tmp_path / "photos" / "a.jpg")
    (tmp_path / "empty").mkdir()
    assert run("init", tmp_path / "P", "--images", tmp_path / "empty") == 1
    assert "no photos" in capsys.readouterr().err
    assert run("init", tmp_path / "P", "--images", tmp_path / "photos") == 0
    assert run("init", tmp_path / "P", "--images", tmp_path / "photos") == 1
    assert "already" in capsys.readouterr().err

    cases = {
        "no such file or folder": ["import", tmp_path / "P", "--format", "voc", tmp_path / "missing", "--as", "x"],
        "no .xml files": ["import", tmp_path / "P", "--format", "voc", tmp_path / "empty", "--as", "x"],
        "matches a photo": ["import", tmp_path / "P", "--format", "voc", tmp_path / "other.xml", "--as", "x"],
        "not valid XML": ["import", tmp_path / "P", "--format", "voc", tmp_path / "a.xml", "--as", "x"],
        "no annotations": ["export", tmp_path / "P", "--format", "coco", "--who", "x", "--out", tmp_path / "o"],
        "not a raabin-labeler project": ["export", tmp_path, "--format", "coco", "--who", "x", "--out", tmp_path / "o"],
    }
    (tmp_path / "other.xml").write_text("<annotation><filename>other.jpg</filename></annotation>")
    (tmp_path / "a.xml").write_text("<annotation><object>")
    for reason, argv in cases.items():
        capsys.readouterr()
        assert run(*argv) == 1, reason
        err = capsys.readouterr().err.strip()
        assert reason in err and "\n" not in err, err
    assert "a.xml" in run_err(capsys, cases["not valid XML"])
    with pytest.raises(SystemExit) as caught:
        run("export", tmp_path / "P", "--format", "png", "--who", "x", "--out", tmp_path / "o")
    assert caught.value.code != 0 and "invalid choice" in capsys.readouterr().err


def run_err(capsys, argv: list) -> str:
    capsys.readouterr()
    run(*argv)
    return capsys.readouterr().err
