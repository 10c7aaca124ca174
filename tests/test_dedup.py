"""Duplicate-cell removal (issue 5): the paper's rule, the robust mode, groups, the CLI report."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from raabin_labeler.commands import dedup as dedup_cmd
from raabin_labeler.core import dedup
from raabin_labeler.core.jobs import SyncRunner
from raabin_labeler.errors import UserError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BCCD = DATA / "bccd" / "JPEGImages"
needs_data = pytest.mark.skipif(not BCCD.is_dir(), reason="shared BCCD data not present")


def bccd_square(image: str, box: tuple[int, int, int, int], grow: float = 1.0,
                dx: int = 0, dy: int = 0) -> Image.Image:
    with Image.open(BCCD / f"{image}.jpg") as photo:
        photo = photo.convert("RGB")
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * grow
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    return photo.crop((round(cx - side / 2), round(cy - side / 2),
                       round(cx + side / 2), round(cy + side / 2)))


# A neutrophil (BloodImage_00230) and two look-alike lymphocytes from different fields
# (BloodImage_00054 / 00055, rows 45 and 46 of wbc_boxes_corrected.csv: not the same cell).
NEUTROPHIL = ("BloodImage_00230", (196, 57, 413, 272))
LYMPH_A = ("BloodImage_00054", (145, 61, 262, 166))
LYMPH_B = ("BloodImage_00055", (153, 134, 275, 258))


def save(img: Image.Image, path: Path, quality: int = 95) -> Path:
    img.save(path, quality=quality)
    return path


@needs_data
def test_one_cell_shifted_rescaled_blurred_reencoded_relit_is_one_group(tmp_path):
    base = bccd_square(*NEUTROPHIL)
    variants = {
        "base.jpg": base,
        "shifted.jpg": bccd_square(*NEUTROPHIL, dx=14, dy=-10),
        "rescaled.jpg": bccd_square(*NEUTROPHIL, grow=1.15).resize(base.size, Image.Resampling.BICUBIC),
        "blurred.jpg": base.filter(ImageFilter.GaussianBlur(1.2)),
        "brighter.jpg": ImageEnhance.Brightness(base).enhance(1.12),
    }
    paths = [save(img, tmp_path / name) for name, img in variants.items()]
    paths.append(save(base, tmp_path / "reencoded.jpg", quality=60))
    groups = dedup.find_duplicates(paths, [p.name for p in paths], runner=SyncRunner())
    assert len(groups) == 1
    assert sorted([groups[0].keep, *groups[0].drop]) == sorted(p.name for p in paths)
    assert groups[0].keep != "blurred.jpg"


@needs_data
def test_look_alike_cells_from_different_fields_do_not_group(tmp_path):
    paths = [save(bccd_square(*LYMPH_A), tmp_path / "a.jpg"),
             save(bccd_square(*LYMPH_B), tmp_path / "b.jpg"),
             save(bccd_square(*NEUTROPHIL), tmp_path / "n.jpg")]
    assert dedup.find_duplicates(paths, runner=SyncRunner()) == []


@needs_data
def test_paper_hashes_are_imagehash_bit_for_bit():
    """The reference mode hashes the grey decode exactly as ImageHash hashes the photo."""
    for name in ("BloodImage_00230.jpg", "BloodImage_00001.jpg", "BloodImage_00100.jpg"):
        sig = dedup.crop_signature(BCCD / name, aligned=False)
        with Image.open(BCCD / name) as photo:
            assert f"{sig.ahash:016x}" == str(imagehash.average_hash(photo)), name
            assert f"{sig.phash:016x}" == str(imagehash.phash(photo)), name


@needs_data
def test_square_crops_hash_as_imagehash_through_the_matrix_thumbnails(tmp_path):
    """Square crops (Raabin-WBC's are 575 x 575) take the matrix-product thumbnails: same hashes."""
    for k, (image, box) in enumerate((LYMPH_A, LYMPH_B, NEUTROPHIL)):
        for size in (None, 575):
            crop = bccd_square(image, box)
            crop = crop if size is None else crop.resize((size, size), Image.BICUBIC)
            path = save(crop, tmp_path / f"{k}-{size}.jpg")
            sig = dedup.crop_signature(path, aligned=False)
            with Image.open(path) as saved:
                assert f"{sig.ahash:016x}" == str(imagehash.average_hash(saved)), path.name
                assert f"{sig.phash:016x}" == str(imagehash.phash(saved)), path.name


def table_with(ahash: list[int], phash: list[int]) -> dedup.SignatureTable:
    n = len(ahash)
    zeros = np.zeros(n, np.uint64)
    return dedup.SignatureTable([str(k) for k in range(n)], np.array(ahash, np.uint64),
                                np.array(phash, np.uint64), zeros, zeros,
                                np.zeros((n, dedup.PATCH_SIDE ** 2), np.uint8))


def bits(n: int) -> int:
    return (1 << n) - 1


@pytest.mark.parametrize("da, dp, linked", [(10, 13, True), (11, 0, False), (0, 14, False),
                                             (11, 13, False), (10, 14, False)])
def test_paper_rule_is_strict_at_11_and_14(da, dp, linked):
    edges = dedup.paper_edges(table_with([0, bits(da)], [0, bits(dp)]))
    assert (len(edges) == 1) == linked
    if linked:
        assert (int(edges.ahash[0]), int(edges.phash[0])) == (da, dp)


def test_paper_rule_thresholds_are_configurable():
    table = table_with([0, bits(11)], [0, 0])
    assert len(dedup.paper_edges(table, dedup.PaperRule(ahash_below=12))) == 1


def test_block_pair_search_matches_brute_force():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**63, 40, dtype=np.uint64)
    a = np.concatenate([base, base ^ np.uint64(0b1011)])  # planted near-duplicates
    p = np.concatenate([base, base ^ np.uint64(0b1)])
    i, j, da, dp = dedup.hash_pairs(a, p, 11, 14, block=7)
    brute = {(x, y) for x in range(80) for y in range(x + 1, 80)
             if bin(int(a[x] ^ a[y])).count("1") < 11 and bin(int(p[x] ^ p[y])).count("1") < 14}
    assert set(zip(i.tolist(), j.tolist())) == brute
    assert len(brute) >= 40


def test_knn_candidates_are_the_nearest_crops_under_the_limit():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2**63, 60, dtype=np.uint64)
    p = rng.integers(0, 2**63, 60, dtype=np.uint64)
    a[1], p[1] = a[0] ^ np.uint64(0b111), p[0] ^ np.uint64(0b1)  # 4 bits from crop 0
    a[2], p[2] = a[0] ^ np.uint64(0b1111 << 8), p[0] ^ np.uint64(0b11 << 8)  # 6 bits from crop 0
    i, j = dedup.knn_pairs(a, p, 1, 28, block=16)
    pairs = set(zip(i.tolist(), j.tolist()))
    assert (0, 1) in pairs and (0, 2) in pairs  # 2's nearest is 0, 0's nearest is 1
    assert all(bin(int(a[x] ^ a[y])).count("1") + bin(int(p[x] ^ p[y])).count("1") < 28
               for x, y in pairs)
    assert len(pairs) <= 60  # at most one proposal per crop


def test_half_resolution_screen_patches_keep_outside_marked():
    patch = np.full((1, 32, 32), 100, np.uint8)
    patch[0, :, :3] = 0  # outside the crop: the 2x2 cells touching it must stay outside
    half = dedup.half_patches(patch.reshape(1, -1)).reshape(16, 16)
    assert (half[:, :2] == 0).all() and (half[:, 2:] == 100).all()


def test_components_follow_chains_by_bfs():
    comps = dedup.connected_components(7, [(0, 1), (1, 2), (2, 3), (5, 6)])
    assert comps == [[0, 1, 2, 3], [4], [5, 6]]


def test_sharpest_is_kept_and_chain_members_unlike_the_keeper_are_split():
    sharp = {0: 1.0, 1: 5.0, 2: 3.0, 3: 2.0}
    assert dedup.keeper_groups([[0, 1, 2, 3]], sharp) == [(1, [2, 3, 0])]
    # 1~2~3 chain, 0~1; crop 3 only resembles 2, not the keeper 1
    like = {frozenset(p) for p in [(0, 1), (1, 2), (2, 3)]}
    groups = dedup.keeper_groups([[0, 1, 2, 3]], sharp, lambda k, m: frozenset((k, m)) in like)
    assert groups == [(1, [2, 0])]


def test_a_whole_cell_is_kept_over_a_sharper_one_the_photo_border_cuts():
    sharp = {0: 1.0, 1: 5.0, 2: 3.0}
    assert dedup.keeper_groups([[0, 1, 2]], sharp, cut={1}) == [(2, [0, 1])]
    assert dedup.keeper_groups([[0, 1, 2]], sharp, cut={0, 1, 2}) == [(1, [2, 0])]  # all cut: the sharpest


def test_long_chains_are_tested_near_the_keeper_only_and_split_into_pieces():
    # 0-1-2-3-4-5 chain, sharpest first; every crop resembles its chain neighbours only
    sharp = {k: 10.0 - k for k in range(6)}
    adjacency = {k: {m for m in (k - 1, k + 1) if 0 <= m < 6} for k in range(6)}
    asked = []

    def accepts_pairs(pairs):
        asked.extend(pairs)
        return [abs(k - m) == 1 for k, m in pairs]

    groups = dedup.keeper_groups([list(range(6))], sharp, accepts_pairs=accepts_pairs, adjacency=adjacency)
    assert groups == [(0, [1]), (2, [3]), (4, [5])]
    assert all(abs(k - m) <= 2 for k, m in asked)  # never the far end of the chain


def test_sharpness_prefers_the_focused_image():
    rng = np.random.default_rng(1)
    img = (rng.random((64, 64)) * 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2)))
    assert dedup.sharpness(img) > dedup.sharpness(blurred)


def test_redundant_photo_rule():
    photo_cells = {"p1": ["a", "b"], "p2": ["c"], "p3": ["d", "e"], "p4": []}
    duplicate_of = {"c": "a", "d": "b", "a": "x"}  # e is no duplicate, x is not in any photo
    assert dedup.redundant_photos(photo_cells, duplicate_of) == ["p2"]
    # a cell dropped for a cell of the same photo does not make the photo redundant
    assert dedup.redundant_photos({"p": ["a", "b"]}, {"a": "b", "b": "a"}) == []


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    dedup_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["dedup", *argv])
    return args.run(args)


@needs_data
def test_cli_writes_the_report(tmp_path, capsys):
    crops = tmp_path / "crops"
    (crops / "sub").mkdir(parents=True)
    base = bccd_square(*NEUTROPHIL)
    save(base, crops / "a.jpg")
    save(base.filter(ImageFilter.GaussianBlur(1.5)), crops / "sub" / "b.jpg")
    save(bccd_square(*LYMPH_A), crops / "c.jpg")
    report = tmp_path / "out" / "report.json"
    assert run_cli("--crops", str(crops), "--report", str(report)) == 0
    data = json.loads(report.read_text())
    assert [(g["keep"], g["drop"]) for g in data] == [("a.jpg", ["sub/b.jpg"])]
    assert set(data[0]["evidence"]["distances"]["sub/b.jpg"]) >= {"ahash", "phash", "ncc"}
    assert "1 cells seen more than once" in capsys.readouterr().out
    # masks kept beside the crops stay out with --glob
    save(base, crops / "a.png")
    assert run_cli("--crops", str(crops), "--report", str(report), "--glob", "*.jpg") == 0
    assert [(g["keep"], g["drop"]) for g in json.loads(report.read_text())] == [("a.jpg", ["sub/b.jpg"])]


def test_cli_errors_speak_to_the_user(tmp_path):
    with pytest.raises(UserError, match="needs a PROJECT folder, or --crops DIR and --report FILE"):
        run_cli("--crops", str(tmp_path))
    with pytest.raises(UserError, match="no crops found"):
        run_cli("--crops", str(tmp_path), "--report", str(tmp_path / "r.json"))
    with pytest.raises(UserError, match=r"no crops found .* matching \*.bmp"):
        run_cli("--crops", str(tmp_path), "--report", str(tmp_path / "r.json"), "--glob", "*.bmp")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="bad.jpg") as caught:
        run_cli("--crops", str(tmp_path), "--report", str(tmp_path / "r.json"))
    assert str(caught.value).count("bad.jpg") == 1  # named once
    with pytest.raises(UserError, match="is a folder"):  # before any work, not after it
        run_cli("--crops", str(tmp_path), "--report", str(tmp_path))
    with pytest.raises(UserError, match="not both"):
        run_cli(str(tmp_path), "--crops", str(tmp_path), "--report", str(tmp_path / "r.json"))
