"""The synthetic sample project: deterministic, exact ground truth, true duplicates, two
experts whose files load through the store, and a committed copy that matches issue 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core.imageio import file_sha256, image_info
from raabin_labeler.core.project import Project
from raabin_labeler.core.taxonomy import Taxonomy
from raabin_labeler.sample import LABELS, SampleConfig, generate_sample, plan_sample
from raabin_labeler.sample.__main__ import main as sample_main
from raabin_labeler.sample.build import TRUTH
from raabin_labeler.sample.experts import EXPERTS

TINY = SampleConfig(seed=1, photos=3, width=480, height=360, px_per_um=5)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Project:
    out = tmp_path_factory.mktemp("a") / "sample"
    generate_sample(out, TINY)
    return Project.open(out)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tiny, tmp_path):
    again = tmp_path / "sample"
    generate_sample(again, TINY)
    first, second = _files(tiny.root), _files(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_photos(tiny, tmp_path):
    other = tmp_path / "other"
    generate_sample(other, SampleConfig(seed=2, photos=1, width=480, height=360, px_per_um=5))
    assert (other / "images/cam-a/field-01.jpg").read_bytes() != (tiny.root / "images/cam-a/field-01.jpg").read_bytes()


def test_full_sample_plan_has_every_class_of_the_taxonomy():
    wbc_leaves = set(Taxonomy.default().leaves()) - {"not_recognized"}
    assert set(LABELS) == wbc_leaves
    assert plan_sample(SampleConfig()).labels() == wbc_leaves


def test_full_sample_plan_has_2_to_4_cells_per_photo_and_both_cameras():
    plan = plan_sample(SampleConfig())
    assert len(plan.fields()) == 14
    assert {f.camera for _, f in plan.fields()} == {"cam-a", "cam-b"}
    for region, f in plan.fields():
        shown = sum(f.contains(c.cx, c.cy, 0) for c in region.cells)
        assert 2 <= shown <= 4, f.image


def test_project_opens_with_photos_from_two_cameras_and_both_experts(tiny):
    assert tiny.images() == ["cam-a/field-01.jpg", "cam-a/field-02.jpg", "cam-b/field-01.jpg"]
    assert tiny.experts == list(EXPERTS)
    for image in tiny.images():
        info = image_info(tiny.image_path(image))
        assert (info.width, info.height) == (TINY.width, TINY.height)


def test_truth_boxes_lie_inside_and_masks_match_their_boxes(tiny):
    seen_labels = set()
    for image in tiny.images():
        truth = tiny.load(TRUTH, image)
        assert truth is not None and truth.cells
        assert truth.image.sha256 == file_sha256(tiny.image_path(image))
        assert truth.acquisition.stain == "Giemsa" and truth.acquisition.magnification == 100
        for cell in truth.cells:
            assert cell.box.inside(truth.image.width, truth.image.height)
            mask = np.asarray(Image.open(tiny.mask_path(cell.nucleus_mask)))
            assert mask.shape == (cell.box.height, cell.box.width)
            values = set(np.unique(mask).tolist())
            assert values <= {0, 128, 255}
            # the box is tight: the cell touches every side of it
            cell_px = mask > 0
            assert cell_px[0].any() and cell_px[-1].any() and cell_px[:, 0].any() and cell_px[:, -1].any()
            if cell.label in ("basophil", "artifact"):  # whole-cell masks, FORMAT.md
                assert 255 not in values
            else:
                assert 255 in values and 128 in values
            seen_labels.add(cell.label)
    assert seen_labels <= set(LABELS)


def test_overlapping_photos_share_physical_cells_at_the_field_offset(tiny):
    by_region: dict[str, list] = {}
    for image in tiny.images():
        truth = tiny.load(TRUTH, image)
        by_region.setdefault(truth.extra["synthetic_field"]["region"], []).append(truth)
    pairs = [group for group in by_region.values() if len(group) == 2]
    assert pairs, "the tiny sample has an overlapping pair of photos"
    shared = 0
    for first, second in pairs:
        f1, f2 = first.extra["synthetic_field"], second.extra["synthetic_field"]
        dx, dy = f1["x"] - f2["x"], f1["y"] - f2["y"]
        cells2 = {c.extra["physical_cell"]: c for c in second.cells}
        for cell in first.cells:
            twin = cells2.get(cell.extra["physical_cell"])
            if twin is None or cell.extra["visible_fraction"] < 1 or twin.extra["visible_fraction"] < 1:
                continue
            shared += 1
            assert twin.label == cell.label
            assert twin.box.as_list() == [cell.box.x1 + dx, cell.box.y1 + dy, cell.box.x2 + dx, cell.box.y2 + dy]
            m1 = np.asarray(Image.open(tiny.mask_path(cell.nucleus_mask)))
            m2 = np.asarray(Image.open(tiny.mask_path(twin.nucleus_mask)))
            assert np.array_equal(m1, m2)
    assert shared >= 1


def test_experts_files_load_through_the_store_with_taxonomy_labels(tiny):
    taxonomy = tiny.taxonomy
    last_made = plan_sample(TINY).fields()[-1][1].image
    shared_ids = 0
    for image in tiny.images():
        truth = tiny.load(TRUTH, image)
        a, b = (tiny.load(expert, image) for expert in EXPERTS)
        assert a is not None and a.author.id == "expert-a"
        if b is None:  # expert-b has not opened the last photo yet
            assert image == last_made
            continue
        for annotation in (a, b):
            assert annotation.image == truth.image
            for cell in annotation.cells:
                assert cell.label in taxonomy
                assert max((cell.box.iou(t.box) for t in truth.cells), default=0) > 0.5 or cell.source == "hand"
        shared_ids += len({c.id for c in a.cells} & {c.id for c in b.cells})
    assert shared_ids >= 1


def test_expert_labels_show_the_confusions_of_issue_2():
    from raabin_labeler.sample.experts import expert_label

    rng = np.random.default_rng(0)
    pairs = {(label, expert_label(label, rng)) for label in LABELS for _ in range(200)}
    for expected in [("lymphocyte.large", "lymphocyte.small"), ("neutrophil.band", "neutrophil.mature"),
                     ("burst", "artifact"), ("artifact", "burst"), ("monocyte", "not_recognized"),
                     ("neutrophil.mature", "neutrophil")]:
        assert expected in pairs


def test_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert sample_main(["--out", str(tmp_path), "--photos", "1"]) == 1
    assert str(tmp_path) in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_committed_sample_project_matches_issue_2():
    root = REPO / "sample_data"
    project = Project.open(root)
    images = project.images()
    assert len(images) >= 12
    assert {image.split("/")[0] for image in images} == {"cam-a", "cam-b"}
    labels = set()
    physical: dict[str, int] = {}
    for image in images:
        info = image_info(project.image_path(image))
        assert info.width >= 1600 and info.height >= 1200
        truth = project.load(TRUTH, image)
        for cell in truth.cells:
            labels.add(cell.label)
            physical[cell.extra["physical_cell"]] = physical.get(cell.extra["physical_cell"], 0) + 1
        for expert in EXPERTS:
            project.load(expert, image)  # loads, or is absent; never broken
    assert labels == set(LABELS)
    assert max(physical.values()) >= 2  # true duplicates across photos
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 15_000_000
