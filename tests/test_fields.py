"""Overlapping fields: found from whole photos, at the right shift, and the cells they share."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core import fields
from raabin_labeler.core.annotation import Box
from raabin_labeler.core.paths import SAMPLE_PROJECT_DIR
from raabin_labeler.sample.scene import SampleConfig, plan_sample


def slide(seed: int, width: int = 1400, height: int = 1000) -> np.ndarray:
    """A grey stretch of smear: pale background, darker discs of red cells with paler centres."""
    rng = np.random.default_rng(seed)
    out = np.full((height, width), 215, np.uint8)
    for _ in range(160):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(28, 40))
        cv2.circle(out, (x, y), r, int(rng.integers(120, 160)), -1)
        cv2.circle(out, (x, y), r // 3, int(rng.integers(170, 200)), -1)
    return cv2.GaussianBlur(out, (0, 0), 1.5)


def test_a_refocused_relit_second_field_is_found_at_its_shift():
    smear = slide(1)
    first = smear[0:480, 0:640]
    second = smear[200:680, 300:940]  # the stage moved 300 px right, 200 px down
    second = cv2.convertScaleAbs(cv2.GaussianBlur(second, (0, 0), 3), alpha=0.8, beta=30)  # out of focus, re-lit
    photos = [fields.field_photo("a", first), fields.field_photo("b", second)]
    (found,) = fields.find_overlaps(photos)
    # b shows at (x + dx, y + dy) what a shows at (x, y)
    assert (found.a, found.b) == ("a", "b")
    assert abs(found.dx - -300) <= 4 and abs(found.dy - -200) <= 4
    assert found.ncc >= 0.8 and 0.2 < found.overlap < 0.35


def test_unrelated_fields_and_other_sizes_are_not_linked():
    photos = [fields.field_photo(f"p{k}", slide(10 + k)[:480, :640]) for k in range(4)]
    assert fields.find_overlaps(photos) == []
    # the same stretch at another photo size is another camera or microscope: not compared
    smear = slide(20)
    other = [fields.field_photo("a", smear[:480, :640]), fields.field_photo("b", smear[100:700, 100:900])]
    assert fields.find_overlaps(other) == []


def test_dust_on_the_sensor_links_nothing_and_hides_no_small_move():
    """Ten fields with the same dark specks at the same place of the sensor (the pattern every
    photo shares): no unrelated pair is linked, and a field photographed again after the stage
    moved only a few pixels is still found."""
    dust = np.zeros((480, 640), np.float32)
    rng = np.random.default_rng(5)
    for _ in range(60):
        cv2.circle(dust, (int(rng.integers(0, 640)), int(rng.integers(0, 480))), int(rng.integers(3, 9)), 90, -1)
    smears = [slide(30 + k) for k in range(10)]
    views = [s[100:580, 100:740] for s in smears] + [smears[0][104:584, 106:746]]  # the last: 6 px, 4 px on
    photos = [fields.field_photo(f"p{k}", np.clip(v - dust, 0, 255).astype(np.uint8)) for k, v in enumerate(views)]
    (found,) = fields.find_overlaps(photos)
    assert (found.a, found.b) == ("p0", "p10")
    assert abs(found.dx - -6) <= 4 and abs(found.dy - -4) <= 4


def test_the_sample_projects_overlapping_fields_and_their_shifts():
    plan = plan_sample(SampleConfig())
    expected = {}
    for region in plan.regions:
        if len(region.fields) == 2:
            a, b = sorted(region.fields, key=lambda f: f.image)
            expected[a.image, b.image] = (a.x - b.x, a.y - b.y)
    assert len(expected) == 5
    photos = []
    for path in sorted((SAMPLE_PROJECT_DIR / "images").rglob("*.jpg")):
        with Image.open(path) as im:
            photos.append(fields.field_photo(path.relative_to(SAMPLE_PROJECT_DIR / "images").as_posix(), im))
    found = {(o.a, o.b): (o.dx, o.dy) for o in fields.find_overlaps(photos)}
    assert set(found) == set(expected)
    for pair, (dx, dy) in expected.items():
        assert abs(found[pair][0] - dx) <= 10 and abs(found[pair][1] - dy) <= 10


def test_a_cell_cut_to_a_strip_by_one_border_matches_the_whole_cell():
    overlap = fields.FieldOverlap("a", "b", dx=20, dy=358, ncc=0.95, overlap=0.25)  # BCCD 00242 / 00248
    strip = Box(157, 0, 308, 59)  # the bottom of a cell whose top the border of a cuts off
    other = Box(17, 184, 242, 398)  # outside what b shows
    whole = Box(149, 233, 354, 423)
    elsewhere = Box(400, 380, 520, 470)
    assert [(i, j) for i, j, _ in fields.same_cells(overlap, [strip, other], [whole, elsewhere], (640, 480))] == [(0, 0)]
    # a box beside it, even in the shared part, is another cell
    beside = fields.FieldOverlap("a", "b", dx=220, dy=358, ncc=0.95, overlap=0.25)
    assert fields.same_cells(beside, [strip], [whole], (640, 480)) == []


def test_overlapping_cells_names_photos_cells_and_evidence():
    smear = slide(2)
    photos = [fields.field_photo("a", smear[0:480, 0:640]), fields.field_photo("b", smear[200:680, 300:940])]
    boxes = {"a": [Box(350, 300, 450, 400), Box(10, 10, 90, 90)], "b": [Box(50, 100, 150, 200)]}
    ((a, i, b, j, evidence),) = fields.overlapping_cells(photos, boxes)
    assert (a, i, b, j) == ("a", 0, "b", 0)
    assert evidence["photos"] == ["a", "b"] and evidence["box_iou"] > 0.9
    assert evidence["shift"] == pytest.approx([-300, -200], abs=4)


def test_photos_of_two_recorded_smears_are_not_compared():
    smear = slide(3)
    first, second = smear[0:480, 0:640], smear[200:680, 300:940]

    def found(smear_a, smear_b):
        return fields.find_overlaps([fields.field_photo("a", first, smear=smear_a),
                                     fields.field_photo("b", second, smear=smear_b)])

    assert found("S01", "S02") == []  # a mislabeled pair, or a look-alike: smears never overlap
    assert len(found("S01", "S01")) == 1
    assert len(found("S01", None)) == 1  # a photo that says nothing is compared with all


def test_progress_follows_every_photo_screened():
    smear = slide(4)
    photos = [fields.field_photo("a", smear[0:480, 0:640]), fields.field_photo("b", smear[200:680, 300:940]),
              fields.field_photo("c", smear[:300, :400])]  # another size: screened alone
    seen = []
    fields.find_overlaps(photos, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_a_blank_stretch_of_slide_is_like_nothing():
    """A field with one cell at its edge and a field of bare slide share nothing: the bare part
    has no texture to correlate (it once scored 52 for an NCC bounded by 1)."""
    few = slide(6)[:480, :640].copy()
    few[:, 100:] = 215
    bare = np.full((480, 640), 215, np.uint8)
    assert fields.find_overlaps([fields.field_photo("few", few), fields.field_photo("bare", bare)]) == []
    found = fields.find_overlaps([fields.field_photo(f"p{k}", slide(40 + k)[:480, :640]) for k in range(3)]
                                 + [fields.field_photo("bare", bare)], fields.FieldRule(screen_ncc_at_least=-1, ncc_at_least=-1))
    assert len(found) == 6 and all(-1 <= o.ncc <= 1.001 for o in found)


def test_blocks_of_photos_find_what_one_block_finds(monkeypatch):
    """Thousands of photos are screened and verified a block at a time (bounded memory)."""
    smear = slide(7, 2000, 1400)
    corners = [(0, 0), (300, 200), (1300, 0), (1350, 400), (600, 300), (20, 850), (700, 100), (1000, 500),
               (100, 500)]
    photos = [fields.field_photo(f"p{k}", smear[y:y + 480, x:x + 640]) for k, (x, y) in enumerate(corners)]
    expected = {(f"p{a}", f"p{b}"): (xa - xb, ya - yb)
                for a, (xa, ya) in enumerate(corners) for b, (xb, yb) in enumerate(corners)
                if a < b and max(0, 640 - abs(xa - xb)) * max(0, 480 - abs(ya - yb)) >= 0.15 * 640 * 480}
    whole = {(o.a, o.b): (o.dx, o.dy) for o in fields.find_overlaps(photos)}
    assert len(expected) >= 8 and set(whole) == set(expected)
    assert all(abs(whole[k][0] - expected[k][0]) <= 4 and abs(whole[k][1] - expected[k][1]) <= 4 for k in expected)
    monkeypatch.setattr(fields, "SCREEN_BLOCK", 2)
    monkeypatch.setattr(fields, "VERIFY_BLOCK", 2)
    seen = []
    blocked = {(o.a, o.b): (o.dx, o.dy) for o in fields.find_overlaps(photos, progress=lambda d, t: seen.append(d))}
    assert blocked == whole
    assert seen == list(range(1, 10))
