"""Duplicate cells: image hashes, the near-duplicate graph, components, the sharpest kept.

Neighbouring microscope fields overlap, so one white cell is often photographed twice (issue 5).
The paper's rule: two crops are the same cell when their aHash (8x8) distance is < 11 and their
pHash (DCT) distance is < 14 (ImageHash semantics); connected components of that graph by
breadth-first search; in each component the sharpest crop (mean Sobel gradient magnitude) is
kept and the rest dropped.

That rule misses shifted or rescaled crops of one cell and, at tens of thousands of crops, chains
unlike cells into mega-groups through single false edges. The default ``robust`` mode therefore
(1) hashes each crop again after aligning it on its nucleus (centroid and size of the purple,
dark region), (2) confirms each candidate pair with normalised cross-correlation of the aligned
grey patches, and (3) lets a crop join a group only if it resembles the group's keeper itself,
not just some neighbour (issue 5, "a member should resemble the keeper").

Everything here is pure computation: no Tk, no project files. Hashing runs in processes through
:mod:`raabin_labeler.core.jobs`; pair search is vectorised popcount over packed 64-bit hashes in
square blocks, so memory stays bounded as the number of crops grows.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from raabin_labeler.core.jobs import PoolRunner, Runner, SyncRunner
from raabin_labeler.errors import FileProblem

Mode = Literal["paper", "robust"]

#: ImageHash's sizes: aHash on an 8x8 LANCZOS thumbnail, pHash on the 8x8 low-frequency DCT
#: block of a 32x32 LANCZOS thumbnail.
HASH_SIDE = 8
PHASH_SIDE = 32
#: The reduced JPEG decode keeps at least this many pixels on the short side; checked against a
#: full decode in benchmarks/dedup_speed.py (issue 5: "same hashes within 1 bit").
DRAFT_MIN_SIDE = 96
#: Side of the nucleus-aligned grey patch kept for cross-correlation (bytes per crop = square).
PATCH_SIDE = 32
#: The aligned window spans this many nucleus radii on each side of the nucleus centroid: the
#: cell and the red cells around it, which tell two look-alike lymphocytes apart. Pixels outside
#: the crop are marked 0 and left out of the correlation.
ALIGN_RADII = 3.5
#: Residual misalignment searched by the pair test, in patch pixels each way.
SHIFT = 2
#: Gaussian sigma (patch pixels) of the blur subtracted for the texture correlation.
TEXTURE_SIGMA = 2.0
#: Pairs are compared in square blocks of this many crops (memory ~ 9 bytes * BLOCK**2).
BLOCK = 2048


@dataclass(frozen=True)
class PaperRule:
    """The paper's thresholds; strict inequalities as in the paper (< 11 and < 14)."""

    ahash_below: int = 11
    phash_below: int = 14


@dataclass(frozen=True)
class RobustRule:
    """Candidate pairs from nucleus-aligned hashes, confirmed by cross-correlation.

    The aligned-hash thresholds only propose pairs; the two correlations
    decide: of the grey patches (shape) and of their high-pass (texture, red-cell edges), each the
    best over small shifts. Thresholds chosen on the hand-checked BCCD pairs
    (benchmarks/dedup_accuracy.py): blurry look-alike lymphocytes reach 0.975 grey but < 0.92
    texture correlation.
    """

    ahash_below: int = 12
    phash_below: int = 16
    ncc_at_least: float = 0.95
    texture_at_least: float = 0.93


@dataclass(frozen=True)
class Signature:
    """What one crop contributes to the search; arrays of these live in :class:`SignatureTable`."""

    ahash: int
    phash: int
    aligned_ahash: int
    aligned_phash: int
    patch: np.ndarray  # uint8 (PATCH_SIDE, PATCH_SIDE), nucleus-aligned grey


@dataclass
class SignatureTable:
    """Packed signatures of N crops, row i belonging to ``names[i]``."""

    names: list[str]
    ahash: np.ndarray          # uint64 (N,)
    phash: np.ndarray          # uint64 (N,)
    aligned_ahash: np.ndarray  # uint64 (N,)
    aligned_phash: np.ndarray  # uint64 (N,)
    patches: np.ndarray        # uint8 (N, PATCH_SIDE**2)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_signatures(cls, names: Sequence[str], sigs: Sequence[Signature]) -> "SignatureTable":
        def col(attr: str) -> np.ndarray:
            return np.fromiter((getattr(s, attr) for s in sigs), dtype=np.uint64, count=len(sigs))

        patches = (np.stack([s.patch.reshape(-1) for s in sigs]) if sigs
                   else np.zeros((0, PATCH_SIDE * PATCH_SIDE), np.uint8))
        return cls(list(names), col("ahash"), col("phash"), col("aligned_ahash"),
                   col("aligned_phash"), patches)


@dataclass(frozen=True)
class DuplicateGroup:
    """One cell seen several times: ``keep`` stays, ``drop`` are its duplicates.

    ``evidence`` maps each dropped name to its distances to the keeper
    (``ahash``, ``phash`` and, in robust mode, ``ncc`` and ``texture_ncc``) and gives every member's ``sharpness``.
    """

    keep: str
    drop: list[str]
    evidence: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- hashing

def pack_bits(bits: np.ndarray) -> int:
    """64 booleans (row-major, as ImageHash flattens them) -> int; hex equals ``str(ImageHash)``."""
    return int.from_bytes(np.packbits(np.asarray(bits, bool).reshape(-1)).tobytes(), "big")


def _dct_matrix(n: int, keep: int) -> np.ndarray:
    # scipy.fftpack.dct type II, unnormalised: y[k] = 2 sum_n x[n] cos(pi k (2n+1) / 2N)
    k = np.arange(keep)[:, None]
    x = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * n))


_DCT = _dct_matrix(PHASH_SIDE, HASH_SIDE)


def image_hashes(gray: Image.Image) -> tuple[int, int]:
    """(aHash, pHash) of a grey PIL image, bit for bit as ImageHash computes them."""
    small = np.asarray(gray.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS), np.float64)
    ahash = pack_bits(small > small.mean())
    pixels = np.asarray(gray.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS), np.float64)
    low = _DCT @ pixels @ _DCT.T
    phash = pack_bits(low > np.median(low))
    return ahash, phash


def open_reduced(path: str | Path, min_side: int = DRAFT_MIN_SIDE) -> Image.Image:
    """Decode an RGB crop at the smallest JPEG scale keeping ``min_side`` pixels (PIL ``draft``).

    Non-JPEG files decode in full. Raises :class:`FileProblem` naming the file if it is unreadable.
    """
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                w, h = im.size
                f = max(1.0, min(w, h) / min_side)
                im.draft("RGB", (int(w / f), int(h / f)))
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FileProblem(path, f"cannot read this crop as an image ({exc})") from exc


def nucleus_frame(rgb: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) and equivalent radius of the nucleus in an RGB crop, in its pixels.

    The nucleus is the purple, dark part: high ``(R+B)/2 - G`` combined with darkness, split
    from everything else by Otsu's threshold. A crop with no such region is framed by its centre
    and a radius of a quarter of its short side, so the crop still gets a signature.
    """
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    score = np.clip((r + b) / 2 - g, 0, None) + np.clip(200 - g, 0, None)
    score8 = cv2.normalize(score, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(score8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    h, w = mask.shape
    area = float(mask.sum())
    if area < 0.005 * h * w or score.max() - score.min() < 20:
        return w / 2, h / 2, min(w, h) / 4
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean()), float(np.sqrt(area / np.pi))


def aligned_patch(rgb: np.ndarray, side: int = PATCH_SIDE) -> np.ndarray:
    """Grey ``side`` x ``side`` uint8 window centred on the nucleus and scaled to its size.

    Grey levels are 1..255; 0 marks window pixels that fall outside the crop.
    """
    cx, cy, radius = nucleus_frame(rgb)
    half = ALIGN_RADII * max(radius, 2.0)
    scale = side / (2 * half)
    m = np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]], np.float32)
    gray = np.maximum(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 1)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.warpAffine(gray, m, (side, side), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones_like(gray), m, (side, side), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.where(inside > 0, patch, 0).astype(np.uint8)


def crop_signature(path: str | Path, aligned: bool = True) -> Signature:
    """Hashes of one crop as decoded (paper) and, if ``aligned``, on its nucleus (robust).

    Without ``aligned`` (the paper's mode needs none of it) the aligned fields are zeros.
    """
    im = open_reduced(path)
    ahash, phash = image_hashes(im.convert("L"))
    if not aligned:
        return Signature(ahash, phash, 0, 0, np.zeros((PATCH_SIDE, PATCH_SIDE), np.uint8))
    patch = aligned_patch(np.asarray(im))
    filled = np.where(patch > 0, patch, np.uint8(np.median(patch[patch > 0]) if patch.any() else 128))
    a_ahash, a_phash = image_hashes(Image.fromarray(filled))
    return Signature(ahash, phash, a_ahash, a_phash, patch)


def _signature_chunk(item: tuple[int, Sequence[str], bool]) -> list[Signature]:
    return [crop_signature(p, item[2]) for p in item[1]]


def compute_signatures(paths: Sequence[str | Path], names: Sequence[str] | None = None, *,
                       runner: Runner | None = None, chunk: int = 128,
                       progress: Callable[[int, int], None] | None = None,
                       cancel: threading.Event | None = None, aligned: bool = True) -> SignatureTable:
    """Signatures of many crops, in processes over all cores by default (see :func:`crop_signature`).

    Paths go to workers in chunks (one process round trip per ``chunk`` crops). An unreadable
    crop stops the run with a :class:`FileProblem` naming it; a cancel raises InterruptedError.
    """
    paths = [str(p) for p in paths]
    names = list(names) if names is not None else paths
    chunks = [(i, paths[i:i + chunk], aligned) for i in range(0, len(paths), chunk)]
    runner = runner or (PoolRunner(processes=True) if len(chunks) > 1 else SyncRunner())
    by_start: dict[int, list[Signature]] = {}
    done = 0
    for outcome in runner.imap(_signature_chunk, chunks, cancel or threading.Event()):
        if outcome.error is not None:
            raise FileProblem(_first_unreadable(outcome.item[1]), outcome.error.split(": ", 1)[-1])
        by_start[outcome.item[0]] = outcome.value
        done += len(outcome.value)
        if progress:
            progress(done, len(paths))
    if len(by_start) < len(chunks):
        raise InterruptedError("hashing was cancelled")
    sigs = [s for start in sorted(by_start) for s in by_start[start]]
    return SignatureTable.from_signatures(names, sigs)


def _first_unreadable(paths: Sequence[str]) -> str:
    for p in paths:
        try:
            crop_signature(p)
        except Exception:
            return p
    return paths[0]


# ----------------------------------------------------------------------------- pairs

def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _LUT[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1, dtype=np.uint8)


_LUT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def hash_pairs(first: np.ndarray, second: np.ndarray, first_below: int, second_below: int,
               block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with popcount(first_i ^ first_j) < first_below and likewise for second.

    Returns (i, j, first distance, second distance). Works block by block over the upper
    triangle, so memory is O(block**2 + pairs found) whatever N is.
    """
    n = len(first)
    out_i, out_j, out_a, out_b = [], [], [], []
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        for c0 in range(r0, n, block):
            c1 = min(n, c0 + block)
            da = _popcount(first[r0:r1, None] ^ first[None, c0:c1])
            ok = da < first_below
            if c0 == r0:
                ok &= np.triu(np.ones_like(ok), 1)
            ii, jj = np.nonzero(ok)
            if not len(ii):
                continue
            ii += r0
            jj += c0
            db = _popcount(second[ii] ^ second[jj])
            keep = db < second_below
            out_i.append(ii[keep])
            out_j.append(jj[keep])
            out_a.append(da[ii[keep] - r0, jj[keep] - c0])
            out_b.append(db[keep])
    if not out_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty.astype(np.uint8), empty.astype(np.uint8)
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_a), np.concatenate(out_b))


def _masked_ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    n = np.maximum(m.sum((1, 2)), 1.0)
    ma, mb = (a * m).sum((1, 2)) / n, (b * m).sum((1, 2)) / n
    da, db = (a - ma[:, None, None]) * m, (b - mb[:, None, None]) * m
    den = np.sqrt((da * da).sum((1, 2)) * (db * db).sum((1, 2)))
    return np.where(den > 0, (da * db).sum((1, 2)) / np.maximum(den, 1e-12), -1.0)


def _high_pass(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    # blur normalised by the valid area, so the crop's edge does not read as texture
    blur = ndimage.gaussian_filter(x * valid, (0, TEXTURE_SIGMA, TEXTURE_SIGMA), mode="nearest")
    weight = ndimage.gaussian_filter(valid, (0, TEXTURE_SIGMA, TEXTURE_SIGMA), mode="nearest")
    return x - blur / np.maximum(weight, 1e-3)


def patch_ncc(patches: np.ndarray, i: np.ndarray, j: np.ndarray,
              chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(grey, texture) correlation of aligned patches for the pairs (i[k], j[k]).

    Each is the best normalised cross-correlation over shifts of up to ``SHIFT`` pixels,
    computed only where both patches lie inside their crops (and on at least half the smaller
    inside area).
    """
    side = int(round(np.sqrt(patches.shape[1])))
    grey = np.full(len(i), -1.0, np.float32)
    texture = np.full(len(i), -1.0, np.float32)
    for s in range(0, len(i), chunk):
        a = patches[i[s:s + chunk]].reshape(-1, side, side).astype(np.float32)
        b = patches[j[s:s + chunk]].reshape(-1, side, side).astype(np.float32)
        va, vb = (a > 0).astype(np.float32), (b > 0).astype(np.float32)
        ha, hb = _high_pass(a, va), _high_pass(b, vb)
        least = 0.5 * np.minimum(va.sum((1, 2)), vb.sum((1, 2)))
        g_best, t_best = grey[s:s + chunk], texture[s:s + chunk]
        for dy in range(-SHIFT, SHIFT + 1):
            for dx in range(-SHIFT, SHIFT + 1):
                ya, yb, xa, xb = max(0, dy), max(0, -dy), max(0, dx), max(0, -dx)
                h, w = side - abs(dy), side - abs(dx)
                sa = (slice(None), slice(ya, ya + h), slice(xa, xa + w))
                sb = (slice(None), slice(yb, yb + h), slice(xb, xb + w))
                m = va[sa] * vb[sb]
                enough = m.sum((1, 2)) >= least
                g = np.where(enough, _masked_ncc(a[sa], b[sb], m), -1.0)
                t = np.where(enough, _masked_ncc(ha[sa], hb[sb], m), -1.0)
                np.maximum(g_best, g, out=g_best)
                np.maximum(t_best, t, out=t_best)
    return grey, texture


# ----------------------------------------------------------------------------- graph

def connected_components(n: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Components of the undirected graph on 0..n-1 by breadth-first search (the paper's BFS).

    Every node is in exactly one component; components are listed by their smallest node.
    """
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adjacency[a].append(b)
        adjacency[b].append(a)
    seen = np.zeros(n, bool)
    components = []
    for start in range(n):
        if seen[start]:
            continue
        seen[start] = True
        queue, members = deque([start]), [start]
        while queue:
            for nxt in adjacency[queue.popleft()]:
                if not seen[nxt]:
                    seen[nxt] = True
                    queue.append(nxt)
                    members.append(nxt)
        components.append(sorted(members))
    return components


def sharpness(gray: np.ndarray) -> float:
    """Mean Sobel gradient magnitude (OpenCV), the paper's focus measure: higher is sharper."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return float(cv2.magnitude(gx, gy).mean())


def file_sharpness(path: str | Path) -> float:
    """:func:`sharpness` of a crop file, decoded in full (focus lives in the fine detail)."""
    try:
        with Image.open(path) as im:
            gray = np.asarray(im.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FileProblem(path, f"cannot read this crop as an image ({exc})") from exc
    return sharpness(gray)


def _sharpness_chunk(item: tuple[Sequence[int], Sequence[str]]) -> list[float]:
    return [file_sharpness(p) for p in item[1]]


def group_sharpness(paths: Sequence[str], members: Sequence[int], *,
                    runner: Runner | None = None) -> dict[int, float]:
    """Sharpness of only the crops that are in some group, in processes when there are many."""
    members = list(members)
    chunks = [(members[i:i + 256], [paths[k] for k in members[i:i + 256]])
              for i in range(0, len(members), 256)]
    runner = runner or (PoolRunner(processes=True) if len(chunks) > 1 else SyncRunner())
    out: dict[int, float] = {}
    for outcome in runner.imap(_sharpness_chunk, chunks, threading.Event()):
        if outcome.error is not None:
            raise FileProblem(_first_unreadable(outcome.item[1]), outcome.error.split(": ", 1)[-1])
        out.update(zip(outcome.item[0], outcome.value))
    return out


# ----------------------------------------------------------------------------- grouping

@dataclass(frozen=True)
class Edges:
    """Duplicate edges between crop rows with their evidence (parallel arrays)."""

    i: np.ndarray
    j: np.ndarray
    ahash: np.ndarray
    phash: np.ndarray
    ncc: np.ndarray | None = None
    texture: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.i)


def paper_edges(table: SignatureTable, rule: PaperRule = PaperRule()) -> Edges:
    """The paper's graph: aHash distance < 11 and pHash distance < 14 on the crops as decoded."""
    i, j, da, dp = hash_pairs(table.ahash, table.phash, rule.ahash_below, rule.phash_below)
    return Edges(i, j, da, dp)


def robust_edges(table: SignatureTable, rule: RobustRule = RobustRule(),
                 paper_rule: PaperRule = PaperRule()) -> Edges:
    """Candidates from nucleus-aligned hashes or the paper's rule, kept only if the patches correlate.

    Aligned hashes catch shifted and rescaled crops the paper misses; the paper's own pairs stay
    candidates too; the correlation test removes the look-alikes both of them let through.
    """
    ai, aj, _, _ = hash_pairs(table.aligned_ahash, table.aligned_phash,
                              rule.ahash_below, rule.phash_below)
    pi, pj, _, _ = hash_pairs(table.ahash, table.phash, paper_rule.ahash_below, paper_rule.phash_below)
    pairs = np.unique(np.concatenate([np.stack([ai, aj], 1), np.stack([pi, pj], 1)]), axis=0)
    i, j = pairs[:, 0], pairs[:, 1]
    grey, texture = patch_ncc(table.patches, i, j)
    ok = (grey >= rule.ncc_at_least) & (texture >= rule.texture_at_least)
    i, j = i[ok], j[ok]
    da = _popcount(table.aligned_ahash[i] ^ table.aligned_ahash[j])
    dp = _popcount(table.aligned_phash[i] ^ table.aligned_phash[j])
    return Edges(i, j, da, dp, grey[ok], texture[ok])


def resembles(table: SignatureTable, a: int, b: int, rule: RobustRule) -> tuple[bool, dict]:
    """The robust correlation test between two given crops, with its evidence (aligned hashes)."""
    da = int(_popcount(table.aligned_ahash[a] ^ table.aligned_ahash[b]))
    dp = int(_popcount(table.aligned_phash[a] ^ table.aligned_phash[b]))
    grey, texture = (float(x[0]) for x in patch_ncc(table.patches, np.array([a]), np.array([b])))
    ok = grey >= rule.ncc_at_least and texture >= rule.texture_at_least
    return ok, {"ahash": da, "phash": dp, "ncc": round(grey, 4), "texture_ncc": round(texture, 4)}


def keeper_groups(components: Sequence[Sequence[int]], sharp: Mapping[int, float],
                  accepts: Callable[[int, int], bool] | None = None) -> list[tuple[int, list[int]]]:
    """(keeper, dropped) per component of size > 1: the sharpest crop stays (the paper).

    With ``accepts(keeper, member)``, a member stays in the keeper's group only if it passes the
    test against the keeper itself; the members that fail are grouped again among themselves
    (their own sharpest keeper), so a chain A~B~C never drops C for A when C is unlike A.
    """
    out = []
    for comp in components:
        pending = sorted(comp, key=lambda k: (-sharp[k], k))
        while len(pending) > 1:
            keeper, rest = pending[0], pending[1:]
            if accepts is None:
                out.append((keeper, rest))
                break
            drop = [m for m in rest if accepts(keeper, m)]
            if drop:
                out.append((keeper, drop))
            pending = [m for m in rest if m not in set(drop)]
    return out


def find_duplicates(paths: Sequence[str | Path], names: Sequence[str] | None = None, *,
                    mode: Mode = "robust", paper_rule: PaperRule = PaperRule(),
                    robust_rule: RobustRule = RobustRule(), runner: Runner | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    table: SignatureTable | None = None) -> list[DuplicateGroup]:
    """Duplicate groups among crop files, the sharpest kept in each (``mode``: paper or robust).

    ``names`` label the crops in the result (default: the paths). Pass ``table`` to reuse
    signatures already computed for the same ``paths``.
    """
    paths = [str(p) for p in paths]
    table = table or compute_signatures(paths, names, runner=runner, progress=progress,
                                        aligned=mode == "robust")
    edges = paper_edges(table, paper_rule) if mode == "paper" else robust_edges(table, robust_rule)
    comps = [c for c in connected_components(len(table), zip(edges.i.tolist(), edges.j.tolist()))
             if len(c) > 1]
    sharp = group_sharpness(paths, [k for c in comps for k in c], runner=runner)
    accepts = ((lambda keeper, member: resembles(table, keeper, member, robust_rule)[0])
               if mode == "robust" else None)
    groups = []
    for keeper, drop in keeper_groups(comps, sharp, accepts):
        evidence: dict = {"mode": mode,
                          "sharpness": {table.names[k]: round(sharp[k], 3) for k in [keeper, *drop]},
                          "distances": {}}
        for m in drop:
            if mode == "robust":
                evidence["distances"][table.names[m]] = resembles(table, keeper, m, robust_rule)[1]
            else:
                evidence["distances"][table.names[m]] = {
                    "ahash": int(_popcount(table.ahash[keeper] ^ table.ahash[m])),
                    "phash": int(_popcount(table.phash[keeper] ^ table.phash[m]))}
        groups.append(DuplicateGroup(table.names[keeper], [table.names[m] for m in drop], evidence))
    return groups


def component_audit(n: int, edges: Edges, similar: Callable[[int, int], bool]) -> dict:
    """Sizes of the components and how many members are unlike their component's first node.

    A large ``unlike`` count means false edges chained different cells together (A~B~C with A
    and C unlike), which "keep the sharpest" would turn into lost data.
    """
    comps = [c for c in connected_components(n, zip(edges.i.tolist(), edges.j.tolist())) if len(c) > 1]
    sizes = sorted((len(c) for c in comps), reverse=True)
    unlike = sum(1 for c in comps for m in c[1:] if not similar(c[0], m))
    return {"groups": len(comps), "largest": sizes[:5], "in_groups": sum(sizes), "unlike": unlike}


# ----------------------------------------------------------------------------- photos

def redundant_photos(photo_cells: Mapping[str, Sequence[str]],
                     duplicate_of: Mapping[str, str]) -> list[str]:
    """Photos whose every cell is a dropped duplicate of a cell in another photo (issue 5).

    ``photo_cells`` lists each photo's cell ids; ``duplicate_of`` maps a dropped cell to the cell
    kept in its place. A photo with no cells is never redundant: there is nothing to prove it.
    """
    photo_of = {cell: photo for photo, cells in photo_cells.items() for cell in cells}
    out = []
    for photo, cells in photo_cells.items():
        if cells and all(cell in duplicate_of and photo_of.get(duplicate_of[cell]) not in (None, photo)
                         for cell in cells):
            out.append(photo)
    return out
