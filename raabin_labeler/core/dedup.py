"""Duplicate cells: image hashes, the near-duplicate graph, components, the sharpest kept.

Neighbouring microscope fields overlap, so one white cell is often photographed twice (issue 5).
The paper's rule: two crops are the same cell when their aHash (8x8) distance is < 11 and their
pHash (DCT) distance is < 14 (ImageHash semantics); connected components of that graph by
breadth-first search; in each component the sharpest crop (mean Sobel gradient magnitude) is
kept and the rest dropped.

That rule misses shifted or rescaled crops of one cell and, at tens of thousands of crops, chains
unlike cells into mega-groups through single false edges. The default ``robust`` mode therefore
(1) hashes each crop again after aligning it on its nucleus (centroid and size of the purple,
dark region) and proposes each crop's few nearest crops by those hashes, (2) confirms the
candidate pairs, all in one batch, with normalised cross-correlation of the aligned grey
patches, (3) proposes more candidates by visual words and confirms the pairs the correlation
does not by keypoint registration (:mod:`.dedup_match`: crops shifted by a third or cut by the
photo border; only the candidates close by words or by half-resolution correlation are tried),
and (4) lets a crop join a group only if it resembles the group's keeper itself, not just some
neighbour (issue 5, "a member should resemble the keeper"); a member joined to the keeper by an
edge already passed that test.

Everything here is pure computation: no Tk, no project files. Hashing runs in processes through
:mod:`raabin_labeler.core.jobs`; pair search is vectorised popcount over packed 64-bit hashes in
square blocks, so memory stays bounded as the number of crops grows.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterable, Literal, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from raabin_labeler.core import dedup_match, lanczos
from raabin_labeler.core.jpeg_header import jpeg_frames
from raabin_labeler.core.jobs import PoolRunner, Runner, SyncRunner
from raabin_labeler.errors import FileProblem

Mode = Literal["paper", "robust"]

#: ImageHash's sizes: aHash on an 8x8 LANCZOS thumbnail, pHash on the 8x8 low-frequency DCT
#: block of a 32x32 LANCZOS thumbnail.
HASH_SIDE = 8
PHASH_SIDE = 32
# The paper's hashes come from the full colour decode converted to grey by Pillow, as
# ImageHash's ``image.convert("L")`` does (:func:`imagehash_gray`). A reduced (draft) decode was
# faster (4.5x on 575-px crops, 1/4 scale) but changed the pHash of 30 % of those crops (27 % at
# 1/2 scale), and the reference mode must be the paper's rule exactly. A pHash splits 64
# coefficients at their median, so it always has 32 ones: any change moves two bits, and issue
# 5's "within 1 bit" means "identical" for it (benchmarks/dedup_speed.py).

#: The nucleus is found on a copy reduced to this short side (see :func:`nucleus_frame`).
NUCLEUS_SIDE = 64
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
#: Pairs are compared in square blocks of this many crops (memory ~ 9 bytes * BLOCK**2 per core).
BLOCK = 1024


@dataclass(frozen=True)
class PaperRule:
    """The paper's thresholds; strict inequalities as in the paper (< 11 and < 14)."""

    ahash_below: int = 11
    phash_below: int = 14


@dataclass(frozen=True)
class RobustRule:
    """Candidate pairs from nucleus-aligned hashes, confirmed by cross-correlation.

    Each crop proposes its ``neighbours`` nearest crops by summed aligned aHash + pHash
    distance (if < ``hash_below``; 28 = the sum of the former per-hash limits 12 + 16, which
    missed true pairs with one hash far and the other close, e.g. BCCD rows 28/29 at 3 + 18).
    Every true pair of BCCD and dataset1 that the aligned hashes reach at all is among the 3
    nearest; on 20,000 speed-benchmark crops 8 neighbours give 90 of the 96 final edges that 16
    give, 4 give 83. These only propose pairs. A screen on half-resolution patches (shifts of
    one half pixel, 8x cheaper) drops candidates far below the final thresholds: on BCCD,
    dataset1 and the speed benchmark's crops every pair the full test accepts had half-resolution
    correlations >= 0.96 (grey) and >= 0.73 (texture), so 0.9 / 0.5 leave a wide margin. Then
    the two correlations decide: of the grey patches (shape) and of their high-pass (texture,
    red-cell edges), each the best over small shifts. Thresholds chosen on the hand-checked BCCD
    pairs (benchmarks/dedup_accuracy.py): blurry look-alike lymphocytes reach 0.975 grey but
    < 0.92 texture correlation.
    """

    neighbours: int = 8
    hash_below: int = 28
    screen_ncc_at_least: float = 0.9
    screen_texture_at_least: float = 0.5
    ncc_at_least: float = 0.95
    texture_at_least: float = 0.93
    word_neighbours: int = 8
    word_cosine_at_least: float = 0.05
    register_word_rank: int = 1
    register_half_ncc_at_least: float = 0.8
    registration: dedup_match.RegistrationRule = dedup_match.RegistrationRule()


@dataclass(frozen=True)
class Signature:
    """What one crop contributes to the search; arrays of these live in :class:`SignatureTable`."""

    ahash: int
    phash: int
    aligned_ahash: int
    aligned_phash: int
    patch: np.ndarray  # uint8 (PATCH_SIDE, PATCH_SIDE), nucleus-aligned grey
    keypoints: np.ndarray | None = None    # float32 (K, 2) in the dedup_match.match_gray frame
    descriptors: np.ndarray | None = None  # uint8 (K, 32) ORB
    match_shape: tuple[int, int] | None = None  # (rows, columns) of that match_gray image


@dataclass
class SignatureTable:
    """Packed signatures of N crops, row i belonging to ``names[i]``."""

    names: list[str]
    ahash: np.ndarray          # uint64 (N,)
    phash: np.ndarray          # uint64 (N,)
    aligned_ahash: np.ndarray  # uint64 (N,)
    aligned_phash: np.ndarray  # uint64 (N,)
    patches: np.ndarray        # uint8 (N, PATCH_SIDE**2)
    keypoints: list[np.ndarray] | None = None    # robust mode: per crop, see Signature
    descriptors: list[np.ndarray] | None = None
    sources: list[str] | None = None  # the crop files, re-read to verify keypoint registrations
    match_shapes: np.ndarray | None = None  # int32 (N, 2), see Signature.match_shape
    #: match_gray images decoded again for registrations, kept for the keeper checks (bounded)
    grays: "OrderedDict[int, np.ndarray]" = field(default_factory=OrderedDict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_signatures(cls, names: Sequence[str], sigs: Sequence[Signature],
                        sources: Sequence[str] | None = None) -> "SignatureTable":
        def col(attr: str) -> np.ndarray:
            return np.fromiter((getattr(s, attr) for s in sigs), dtype=np.uint64, count=len(sigs))

        patches = (np.stack([s.patch.reshape(-1) for s in sigs]) if sigs
                   else np.zeros((0, PATCH_SIDE * PATCH_SIDE), np.uint8))
        has_kp = bool(sigs) and all(s.descriptors is not None for s in sigs)
        return cls(list(names), col("ahash"), col("phash"), col("aligned_ahash"),
                   col("aligned_phash"), patches,
                   [s.keypoints for s in sigs] if has_kp else None,
                   [s.descriptors for s in sigs] if has_kp else None,
                   list(sources) if sources is not None else None,
                   np.array([s.match_shape for s in sigs], np.int32).reshape(-1, 2) if has_kp else None)


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
#: A pHash bit is a DCT coefficient compared with the median of the 64. The coefficients are
#: below 4 * 32 * 32 * 255 ~ 1e6 in size, so both our matrix DCT and scipy's FFT-based one are
#: within ~1e-8 of the exact value (float64, a few dozen terms); when the two coefficients
#: nearest the median are further apart than this, every bit is the same in both.
MEDIAN_MARGIN = 1e-6


def image_hashes(gray: np.ndarray) -> tuple[int, int]:
    """(aHash, pHash) of a grey uint8 image, bit for bit as ImageHash computes them.

    ImageHash's thumbnails are Pillow's LANCZOS: for a square crop (Raabin-WBC's are all
    575 x 575) the same arithmetic as two matrix products (:mod:`.lanczos`), else Pillow's own.
    """
    if gray.shape[0] == gray.shape[1]:
        small, pixels = lanczos.reduce_square(gray, (HASH_SIDE, PHASH_SIDE))
    else:
        image = Image.fromarray(gray)
        small, pixels = (np.asarray(image.resize((side, side), Image.Resampling.LANCZOS))
                         for side in (HASH_SIDE, PHASH_SIDE))
    return pack_bits(small > small.mean()), _phash(pixels)


def _phash(pixels: np.ndarray) -> int:
    """ImageHash's pHash of a 32x32 uint8 thumbnail: the 8x8 low-frequency DCT block above its median.

    Two small matrix products stand in for scipy's two FFT-based DCTs and ``np.median`` (0.05
    ms less per crop). Their rounding differs from scipy's, which can only matter when a
    coefficient ties the median: flat or symmetric crops, whose AC coefficients are exactly 0
    but come out of either DCT as rounding noise. Then scipy decides, as in ImageHash.
    """
    low = cv2.gemm(cv2.gemm(_DCT, pixels.astype(np.float64), 1.0, None, 0.0), _DCT, 1.0, None, 0.0,
                   flags=cv2.GEMM_2_T)
    ranked = np.sort(low, axis=None)
    middle = HASH_SIDE * HASH_SIDE // 2
    if ranked[middle] - ranked[middle - 1] <= 2 * MEDIAN_MARGIN:
        from scipy.fftpack import dct
        low = dct(dct(pixels, axis=0), axis=1)[:HASH_SIDE, :HASH_SIDE]
        return pack_bits(low > np.median(low))
    return pack_bits(low > (ranked[middle - 1] + ranked[middle]) / 2)


def imagehash_gray(path: str | Path) -> np.ndarray:
    """The grey pixels ImageHash hashes: ``np.asarray(Image.open(path).convert("L"))``.

    The colour decode is needed: the JPEG decoder's own luma (PIL ``draft("L")``, OpenCV's
    IMREAD_GRAYSCALE) differs from Pillow's RGB -> L where colours clip (9 % of the speed
    benchmark's crops) and changed 2 pHashes in 6,000. A plain JPEG goes to the same Pillow
    decoder with the same arguments, without ``Image.open``'s marker parsing in Python (0.1 ms
    of ~0.35 per 185-px crop); anything else through ``Image.open``. Neither applies the EXIF
    orientation, as ImageHash does not. Raises :class:`FileProblem` naming the file.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        frame = _plain_jpeg_frame(data)
        if frame is None:
            with Image.open(path) as image:
                return np.asarray(image.convert("L"))
        mode, size = frame
        return np.asarray(Image.frombytes(mode, size, data, "jpeg", mode, "").convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FileProblem(path, f"cannot read this crop as an image ({_reason(exc, path)})") from exc


def _plain_jpeg_frame(data: bytes) -> tuple[str, tuple[int, int]] | None:
    """(mode, size) as ``Image.open`` reads them from an 8-bit grey or colour JPEG's frame header.

    None, leaving the file to ``Image.open``, for anything less plain: not a JPEG, padding or
    junk between markers, no single frame header before the scan, CMYK, other depths, or more
    pixels than Pillow's decompression-bomb limit.
    """
    frames = jpeg_frames(data)
    if frames is None or len(frames) != 1:
        return None
    frame, limit = frames[0], Image.MAX_IMAGE_PIXELS  # None when a caller switched the check off
    if frame.bits != 8 or frame.layers not in (1, 3) or (limit is not None and frame.width * frame.height > limit):
        return None
    return ("L" if frame.layers == 1 else "RGB"), (frame.width, frame.height)


def open_reduced(path: str | Path, min_side: int | None, mode: str = "RGB") -> Image.Image:
    """Decode a crop at the smallest JPEG scale keeping ``min_side`` pixels (PIL ``draft``).

    ``min_side`` None decodes in full. ``mode`` "L" has the JPEG decoder hand out its luma
    directly, without a colour conversion. Non-JPEG files decode in full. Raises
    :class:`FileProblem` naming the file if it is unreadable.
    """
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                w, h = im.size
                f = 1.0 if min_side is None else max(1.0, min(w, h) / min_side)
                im.draft(mode, (int(w / f), int(h / f)))
            return im.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FileProblem(path, f"cannot read this crop as an image ({_reason(exc, path)})") from exc


def nucleus_frame(rgb: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) and equivalent radius of the nucleus in an RGB crop, in its pixels.

    The nucleus is the purple, dark part: high ``(R+B)/2 - G`` combined with darkness, split
    from everything else by Otsu's threshold. A crop with no such region is framed by its centre
    and a radius of a quarter of its short side, so the crop still gets a signature. Found on a
    copy at most ``NUCLEUS_SIDE`` pixels on its short side: the nucleus spans many pixels even
    there, and it is most of the per-crop cost otherwise.
    """
    h, w = rgb.shape[:2]
    f = min(1.0, NUCLEUS_SIDE / min(h, w))
    small = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else rgb
    r, g, b = cv2.split(small.astype(np.float32))
    score = cv2.max((r + b) * 0.5 - g, 0) + cv2.max(200 - g, 0)
    low, high = float(score.min()), float(score.max())
    if high - low < 20:
        return w / 2, h / 2, min(w, h) / 4
    score8 = ((score - low) * (255 / (high - low))).astype(np.uint8)
    _, mask = cv2.threshold(score8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] < 0.005 * mask.size:
        return w / 2, h / 2, min(w, h) / 4
    sx, sy = w / mask.shape[1], h / mask.shape[0]  # back to the crop's pixels
    return ((m["m10"] / m["m00"] + 0.5) * sx - 0.5, (m["m01"] / m["m00"] + 0.5) * sy - 0.5,
            float(np.sqrt(m["m00"] * sx * sy / np.pi)))


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
    if not aligned:
        ahash, phash = image_hashes(imagehash_gray(path))
        return Signature(ahash, phash, 0, 0, np.zeros((PATCH_SIDE, PATCH_SIDE), np.uint8))
    im = open_reduced(path, dedup_match.MATCH_SIDE)
    ahash, phash = image_hashes(np.asarray(im.convert("L")))
    rgb = np.asarray(im)
    patch = aligned_patch(rgb)
    filled = np.where(patch > 0, patch, np.uint8(np.median(patch[patch > 0]) if patch.any() else 128))
    a_ahash, a_phash = image_hashes(filled)
    gray = dedup_match.match_gray(rgb)
    pts, desc = dedup_match.keypoints(gray)
    return Signature(ahash, phash, a_ahash, a_phash, patch, pts, desc, gray.shape)


#: match_gray images a table keeps (~9 KB each): the crops of one batch of registrations.
GRAYS_KEPT = 4096


def match_grays(table: SignatureTable, rows: Iterable[int]) -> dict[int, np.ndarray]:
    """The grey images the keypoints of ``rows`` were found on, decoded again from their files
    (in threads), the last ``GRAYS_KEPT`` kept in the table."""
    assert table.sources is not None
    rows = list(dict.fromkeys(int(r) for r in rows))
    todo = [r for r in rows if r not in table.grays]

    def decode(r: int) -> np.ndarray:
        return dedup_match.match_gray(np.asarray(open_reduced(table.sources[r], dedup_match.MATCH_SIDE)))

    if len(todo) > 8:
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            fresh = dict(zip(todo, pool.map(decode, todo)))
    else:
        fresh = {r: decode(r) for r in todo}
    out = {r: fresh[r] if r in fresh else table.grays[r] for r in rows}
    for r, g in out.items():
        table.grays[r] = g
        table.grays.move_to_end(r)
    while len(table.grays) > GRAYS_KEPT:
        table.grays.popitem(last=False)
    return out


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
            raise _chunk_problem(outcome.item[1], outcome.error)
        by_start[outcome.item[0]] = outcome.value
        done += len(outcome.value)
        if progress:
            progress(done, len(paths))
    if len(by_start) < len(chunks):
        raise InterruptedError("hashing was cancelled")
    sigs = [s for start in sorted(by_start) for s in by_start[start]]
    return SignatureTable.from_signatures(names, sigs, paths)


def _reason(exc: BaseException, path: str | Path) -> str:
    """Pillow's message without the path it repeats (the problem names the file already)."""
    return str(exc).replace(f" '{path}'", "").replace(f"{path}: ", "")


def _chunk_problem(paths: Sequence[str], error: str) -> FileProblem:
    """The worker's error on a chunk of crops, as the problem of the crop that caused it
    (named once: the worker's text may start with the path too)."""
    path = _first_unreadable(paths)
    return FileProblem(path, error.split(": ", 1)[-1].removeprefix(f"{path}: "))


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
    triangle (row blocks in threads: numpy's popcount releases the GIL), so memory is
    O(cores * block**2 + pairs found) whatever N is.
    """
    n = len(first)

    def rows(r0: int) -> list[tuple[np.ndarray, ...]]:
        r1 = min(n, r0 + block)
        out = []
        for c0 in range(r0, n, block):
            c1 = min(n, c0 + block)
            da = _popcount(first[r0:r1, None] ^ first[None, c0:c1])
            ok = da < first_below
            if c0 == r0:
                ok &= np.triu(np.ones_like(ok), 1)
            ii, jj = np.nonzero(ok)
            if not len(ii):
                continue
            db = _popcount(second[ii + r0] ^ second[jj + c0])
            keep = db < second_below
            out.append((ii[keep] + r0, jj[keep] + c0, da[ii[keep], jj[keep]], db[keep]))
        return out

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        found = [part for parts in pool.map(rows, range(0, n, block)) for part in parts]
    if not found:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty.astype(np.uint8), empty.astype(np.uint8)
    return tuple(np.concatenate([f[c] for f in found]).astype(np.int64 if c < 2 else np.uint8)
                 for c in range(4))


def _knn_block(item: tuple[int, np.ndarray, np.ndarray, int, int]) -> tuple[np.ndarray, np.ndarray]:
    r0, rows, desc, k, below = item
    dist, idx = cv2.batchDistance(rows, desc, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k)
    ii = np.repeat(np.arange(r0, r0 + len(idx)), k)
    jj, dd = idx.reshape(-1), dist.reshape(-1)
    ok = (dd < below) & (jj != ii) & (jj >= 0)
    return ii[ok], jj[ok]


def knn_pairs(first: np.ndarray, second: np.ndarray, k: int, below: int, *, block: int = 4096,
              runner: Runner | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) where j is among the ``k`` nearest crops of i (or i of j) by the summed
    Hamming distance of two 64-bit hashes, keeping only sums < ``below``.

    A fixed number of candidates per crop keeps the correlation stage linear in N, whereas a
    distance threshold on nucleus-aligned hashes passes 5-25 % of all pairs (crops aligned on a
    nucleus all look alike to a 64-bit hash). The brute-force search is OpenCV's Hamming
    ``batchDistance`` (SIMD popcount, O(block * N) memory) over blocks of query rows; it holds
    the GIL, so pass a process ``runner`` to use several cores.
    """
    n = len(first)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    desc = np.ascontiguousarray(np.stack([first, second], 1).astype(np.uint64)).view(np.uint8)
    k = min(k + 1, n)  # the crop itself comes back as its own nearest
    items = [(r0, desc[r0:r0 + block], desc, k, below) for r0 in range(0, n, block)]
    runner = runner or SyncRunner()
    found = []
    for outcome in runner.imap(_knn_block, items, threading.Event()):
        if outcome.error is not None:
            raise RuntimeError(f"nearest-neighbour search failed: {outcome.error}")
        found.append(outcome.value)
    ii = np.concatenate([f[0] for f in found]).astype(np.int64)
    jj = np.concatenate([f[1] for f in found]).astype(np.int64)
    if not len(ii):
        return ii, jj
    pairs = np.unique(np.stack([np.minimum(ii, jj), np.maximum(ii, jj)], 1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _patch_features(patches: np.ndarray, side: int, sigma: float) -> tuple[np.ndarray, ...]:
    """Per patch: grey, grey**2, inside mask, high-pass (zero outside), high-pass**2."""
    a = patches.reshape(-1, side, side).astype(np.float32)
    va = (a > 0).astype(np.float32)
    # blur normalised by the inside area, so the crop's edge does not read as texture
    blur = ndimage.gaussian_filter(a, (0, sigma, sigma), mode="nearest")
    weight = ndimage.gaussian_filter(va, (0, sigma, sigma), mode="nearest")
    h = (a - blur / np.maximum(weight, 1e-3)) * va
    return a, a * a, va, h, h * h


def _ncc_from_sums(n, sa, sb, saa, sbb, sab) -> np.ndarray:
    n = np.maximum(n, 1.0)
    den = (saa - sa * sa / n) * (sbb - sb * sb / n)
    return np.where(den > 0, (sab - sa * sb / n) / np.sqrt(np.maximum(den, 1e-12)), -1.0)


def _ncc_chunk(patches: np.ndarray, i: np.ndarray, j: np.ndarray, shift: int,
               sigma: float) -> tuple[np.ndarray, np.ndarray]:
    side = int(round(np.sqrt(patches.shape[1])))
    rows, inv = np.unique(np.concatenate([i, j]), return_inverse=True)
    feats = _patch_features(patches[rows], side, sigma)  # once per crop, not once per pair
    a, a2, va, h, h2 = (f[inv[:len(i)]] for f in feats)
    b, b2, vb, hb, hb2 = (f[inv[len(i):]] for f in feats)
    least = 0.5 * np.minimum(va.sum((1, 2)), vb.sum((1, 2)))
    grey = np.full(len(i), -1.0, np.float32)
    texture = np.full(len(i), -1.0, np.float32)

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.einsum("pij,pij->p", x, y)

    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            ya, yb, xa, xb = max(0, dy), max(0, -dy), max(0, dx), max(0, -dx)
            hh, ww = side - abs(dy), side - abs(dx)
            sa = (slice(None), slice(ya, ya + hh), slice(xa, xa + ww))
            sb = (slice(None), slice(yb, yb + hh), slice(xb, xb + ww))
            # masked NCC from sums: outside pixels are 0 in a, b, h, hb
            n = dot(va[sa], vb[sb])
            g = _ncc_from_sums(n, dot(a[sa], vb[sb]), dot(va[sa], b[sb]), dot(a2[sa], vb[sb]),
                               dot(va[sa], b2[sb]), dot(a[sa], b[sb]))
            t = _ncc_from_sums(n, dot(h[sa], vb[sb]), dot(va[sa], hb[sb]), dot(h2[sa], vb[sb]),
                               dot(va[sa], hb2[sb]), dot(h[sa], hb[sb]))
            enough = n >= least
            np.maximum(grey, np.where(enough, g, -1.0), out=grey)
            np.maximum(texture, np.where(enough, t, -1.0), out=texture)
    return grey, texture


def patch_ncc(patches: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 2048, *,
              shift: int = SHIFT, sigma: float = TEXTURE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """(grey, texture) correlation of aligned patches for the pairs (i[k], j[k]).

    Each is the best normalised cross-correlation over shifts of up to ``shift`` pixels,
    computed only where both patches lie inside their crops (and on at least half the smaller
    inside area). All pairs at once: chunks of ``chunk`` pairs in threads over the cores.
    """
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    starts = range(0, len(i), chunk)
    if len(starts) <= 1:
        found = [_ncc_chunk(patches, i, j, shift, sigma)] if len(i) else []
    else:
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            found = list(pool.map(lambda s: _ncc_chunk(patches, i[s:s + chunk], j[s:s + chunk],
                                                       shift, sigma), starts))
    if not found:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


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
        raise FileProblem(path, f"cannot read this crop as an image ({_reason(exc, path)})") from exc
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
            raise _chunk_problem(outcome.item[1], outcome.error)
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
    registration: list[dict] | None = None  # robust: per edge, registration evidence ({} if none)

    def __len__(self) -> int:
        return len(self.i)


def paper_edges(table: SignatureTable, rule: PaperRule = PaperRule()) -> Edges:
    """The paper's graph: aHash distance < 11 and pHash distance < 14 on the crops as decoded."""
    i, j, da, dp = hash_pairs(table.ahash, table.phash, rule.ahash_below, rule.phash_below)
    return Edges(i, j, da, dp)


def half_patches(patches: np.ndarray) -> np.ndarray:
    """Aligned patches at half resolution (2x2 means; 0 where any of the four is outside)."""
    side = int(round(np.sqrt(patches.shape[1])))
    quads = patches.reshape(-1, side // 2, 2, side // 2, 2)
    mean = quads.mean((2, 4), dtype=np.float32)
    inside = quads.min((2, 4)) > 0
    half = np.where(inside, np.maximum(np.rint(mean), 1), 0).astype(np.uint8)
    return half.reshape(len(patches), -1)


def _pair_keys(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(i, np.int64) * n + np.asarray(j, np.int64)


def robust_edges(table: SignatureTable, rule: RobustRule = RobustRule(),
                 paper_rule: PaperRule = PaperRule(), runner: Runner | None = None) -> Edges:
    """Candidate pairs confirmed by patch correlation or, failing that, by keypoint registration.

    Candidates: each crop's ``rule.neighbours`` nearest crops by aligned-hash distance (shifted
    and rescaled crops the paper misses), the paper's own pairs, and each crop's
    ``rule.word_neighbours`` nearest by visual words (crops cut on different sides, see
    :mod:`.dedup_match`). The correlation test runs batched over all candidates. Registration,
    which tolerates large shifts and border cuts but costs ~0.3 ms a pair, only tries the pairs
    the correlation does not confirm that are close by words (one among the other's
    ``register_word_rank + 1`` nearest) or whose half-resolution patches already correlate
    (>= ``register_half_ncc_at_least``). On BCCD and dataset1 every pair that only registration
    confirms passes this screen (rows 164/183: word rank 9 but half-resolution correlation
    0.91; all others word rank 0 or 1), which tries 1 candidate in 2 on BCCD and 1 in 4 on the
    speed benchmark's crops instead of all of them.
    """
    n = len(table)
    ai, aj = knn_pairs(table.aligned_ahash, table.aligned_phash, rule.neighbours, rule.hash_below,
                       runner=runner)
    pi, pj, _, _ = hash_pairs(table.ahash, table.phash, paper_rule.ahash_below, paper_rule.phash_below)
    parts = [np.stack([ai, aj], 1), np.stack([pi, pj], 1)]
    registering = table.descriptors is not None and table.sources is not None
    if registering:
        wi, wj, wrank = dedup_match.word_neighbours(dedup_match.word_vectors(table.descriptors),
                                                    rule.word_neighbours, rule.word_cosine_at_least)
        parts.append(np.stack([wi, wj], 1))
    pairs = np.unique(np.concatenate(parts), axis=0).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    half_grey, half_texture = patch_ncc(half_patches(table.patches), i, j, shift=max(1, SHIFT // 2),
                                        sigma=TEXTURE_SIGMA / 2)
    near = (half_grey >= rule.screen_ncc_at_least) & (half_texture >= rule.screen_texture_at_least)
    grey, texture = patch_ncc(table.patches, i[near], j[near])
    ok = np.zeros(len(i), bool)
    ok[np.flatnonzero(near)] = (grey >= rule.ncc_at_least) & (texture >= rule.texture_at_least)
    full_grey = np.full(len(i), np.nan, np.float32)
    full_texture = np.full(len(i), np.nan, np.float32)
    full_grey[near], full_texture[near] = grey, texture
    if registering:
        keys = _pair_keys(i, j, n)  # sorted: pairs came out of np.unique
        close = np.zeros(len(i), bool)
        close[np.searchsorted(keys, _pair_keys(wi, wj, n))[wrank <= rule.register_word_rank]] = True
        rest = np.flatnonzero(~ok & (close | (half_grey >= rule.register_half_ncc_at_least)))
        registered, evidence = register_many(table, i[rest], j[rest], rule.registration)
        ok[rest[registered]] = True
        registration = dict(zip(rest[registered].tolist(), (e for e, r in zip(evidence, registered) if r)))
    else:
        registration = {}
    kept = np.flatnonzero(ok)
    i, j = i[kept], j[kept]
    da = _popcount(table.aligned_ahash[i] ^ table.aligned_ahash[j])
    dp = _popcount(table.aligned_phash[i] ^ table.aligned_phash[j])
    return Edges(i, j, da, dp, full_grey[kept], full_texture[kept],
                 [registration.get(k, {}) for k in kept.tolist()])


def register_many(table: SignatureTable, a: np.ndarray, b: np.ndarray,
                  rule: dedup_match.RegistrationRule, chunk: int = 512) -> tuple[np.ndarray, list[dict]]:
    """:func:`.dedup_match.register` for the pairs (a[k], b[k]), in threads over the cores.

    The geometry comes from the stored keypoints and image shapes; only the few pairs it accepts
    need the grey images, decoded again from the crop files once per crop.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if table.descriptors is None or table.sources is None or table.match_shapes is None:
        return np.zeros(len(a), bool), [{} for _ in range(len(a))]
    shapes = table.match_shapes.tolist()

    def geometry(s: int) -> list[tuple[np.ndarray | None, dict]]:
        return [dedup_match.transform((table.keypoints[x], table.descriptors[x]), shapes[x],
                                      (table.keypoints[y], table.descriptors[y]), shapes[y], rule)
                for x, y in zip(a[s:s + chunk].tolist(), b[s:s + chunk].tolist())]

    if len(a) <= chunk:
        found = geometry(0)
    else:
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            found = [f for part in pool.map(geometry, range(0, len(a), chunk)) for f in part]
    passed = [k for k, (m, _) in enumerate(found) if m is not None]
    accepted = np.zeros(len(a), bool)
    for s in range(0, len(passed), GRAYS_KEPT // 4):  # bounded: a few thousand images at a time
        part = passed[s:s + GRAYS_KEPT // 4]
        grays = match_grays(table, [r for k in part for r in (a[k], b[k])])
        for k in part:
            m, evidence = found[k]
            ga, gb = grays[int(a[k])], grays[int(b[k])]
            accepted[k] = dedup_match.overlap_agrees(ga, gb, m, evidence, rule)
            if not accepted[k]:  # RANSAC may have settled for a wrong scale: once more, exhaustively
                x, y = int(a[k]), int(b[k])
                m2, again = dedup_match.transform((table.keypoints[x], table.descriptors[x]), shapes[x],
                                                  (table.keypoints[y], table.descriptors[y]), shapes[y],
                                                  rule, exhaustive=True)
                if m2 is not None and dedup_match.overlap_agrees(ga, gb, m2, again, rule):
                    accepted[k] = True
                    found[k] = (m2, {**again, "exhaustive": True})
    return accepted, [f[1] for f in found]


def distances(table: SignatureTable, a: np.ndarray, b: np.ndarray) -> list[dict]:
    """Aligned-hash distances and patch correlations of the pairs (a[k], b[k]): the evidence
    the review screen shows."""
    da = _popcount(table.aligned_ahash[a] ^ table.aligned_ahash[b]).tolist()
    dp = _popcount(table.aligned_phash[a] ^ table.aligned_phash[b]).tolist()
    grey, texture = (x.tolist() for x in patch_ncc(table.patches, a, b))
    return [{"ahash": x, "phash": y, "ncc": round(g, 4), "texture_ncc": round(t, 4)}
            for x, y, g, t in zip(da, dp, grey, texture)]


def resemble_many(table: SignatureTable, a: np.ndarray, b: np.ndarray,
                  rule: RobustRule) -> list[tuple[bool, dict]]:
    """The robust pair test for (a[k], b[k]) with evidence: correlation, else registration."""
    out = [(e["ncc"] >= rule.ncc_at_least and e["texture_ncc"] >= rule.texture_at_least, e)
           for e in distances(table, a, b)]
    rest = [k for k, (ok, _) in enumerate(out) if not ok]
    if rest:
        registered, evidence = register_many(table, np.asarray(a)[rest], np.asarray(b)[rest],
                                             rule.registration)
        for k, ok, ev in zip(rest, registered.tolist(), evidence):
            out[k] = (ok, {**out[k][1], **ev})
    return out


def resembles(table: SignatureTable, a: int, b: int, rule: RobustRule) -> tuple[bool, dict]:
    """The robust pair test between two given crops, with its evidence."""
    return resemble_many(table, np.array([a]), np.array([b]), rule)[0]


def _neighbourhood(start: int, adjacency: Mapping[int, Iterable[int]], within: set[int],
                   hops: int) -> set[int]:
    seen, frontier = {start}, {start}
    for _ in range(hops):
        frontier = {m for k in frontier for m in adjacency.get(k, ()) if m in within} - seen
        seen |= frontier
    return seen


def _pieces(members: Sequence[int], adjacency: Mapping[int, Iterable[int]]) -> list[list[int]]:
    """Connected pieces of ``members`` under ``adjacency`` restricted to them, in member order."""
    left, out = set(members), []
    for start in members:
        if start in left:
            piece = _neighbourhood(start, adjacency, left, len(left))
            left -= piece
            out.append([m for m in members if m in piece])
    return out


def keeper_groups(components: Sequence[Sequence[int]], sharp: Mapping[int, float],
                  accepts: Callable[[int, int], bool] | None = None, *,
                  accepts_pairs: Callable[[list[tuple[int, int]]], list[bool]] | None = None,
                  adjacency: Mapping[int, Iterable[int]] | None = None,
                  cut: Collection[int] = ()) -> list[tuple[int, list[int]]]:
    """(keeper, dropped) per component of size > 1: the sharpest crop stays (the paper), the
    sharpest of the whole ones if some are ``cut`` (a strip of a cell is a poor copy to keep).

    With ``accepts(keeper, member)`` (or ``accepts_pairs``, called with the (keeper, member)
    pairs of all components at once), a member stays in the keeper's group only if it passes the
    test against the keeper itself; the members that fail are grouped again among themselves
    (their own sharpest keeper), so a chain A~B~C never drops C for A when C is unlike A. With
    ``adjacency`` (each crop's neighbours in the duplicate graph) only members within two edges
    of the keeper are tested (farther along a chain is another cell) and those left are
    regrouped by their connected pieces: the tests then grow linearly, not quadratically, with a
    component's size (the 40,000 overlapping crops of the speed benchmark chain into components
    of thousands), and every round of all components is one batch.
    """
    test = accepts_pairs or (None if accepts is None else (lambda pairs: [accepts(k, m) for k, m in pairs]))
    out = []
    pieces = [sorted(c, key=lambda k: (k in cut, -sharp[k], k)) for c in components if len(c) > 1]
    if test is None:
        return [(p[0], p[1:]) for p in pieces]
    while pieces:
        rounds = []
        for pending in pieces:
            near = _neighbourhood(pending[0], adjacency, set(pending), 2) if adjacency is not None else None
            rounds.append((pending, [m for m in pending[1:] if near is None or m in near]))
        verdicts = iter(test([(pending[0], m) for pending, tried in rounds for m in tried]))
        pieces = []
        for pending, tried in rounds:
            keeper = pending[0]
            dropped = {m for m in tried if next(verdicts)}
            if dropped:
                out.append((keeper, [m for m in tried if m in dropped]))
            left = [m for m in pending[1:] if m not in dropped]
            pieces += [p for p in (_pieces(left, adjacency) if adjacency is not None else [left]) if len(p) > 1]
    return out


def find_duplicates(paths: Sequence[str | Path], names: Sequence[str] | None = None, *,
                    mode: Mode = "robust", paper_rule: PaperRule = PaperRule(),
                    robust_rule: RobustRule = RobustRule(), runner: Runner | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    table: SignatureTable | None = None, linked: Sequence[tuple[int, int, dict]] = (),
                    cut: Collection[int] = ()) -> list[DuplicateGroup]:
    """Duplicate groups among crop files, the sharpest kept in each (``mode``: paper or robust).

    ``names`` label the crops in the result (default: the paths). Pass ``table`` to reuse
    signatures already computed for the same ``paths``. Robust mode only: ``linked`` are pairs
    (row, row, evidence) already known to be one cell (two overlapping photos show it at one
    place, :mod:`.fields`); a crop in ``cut`` (its photo's border cuts the cell) is kept only
    when its group has no whole one.
    """
    paths = [str(p) for p in paths]
    table = table or compute_signatures(paths, names, runner=runner, progress=progress,
                                        aligned=mode == "robust")
    if mode == "paper":
        edges = paper_edges(table, paper_rule)
    else:
        knn_runner = runner or (PoolRunner(processes=True) if len(table) > 8192 else SyncRunner())
        edges = robust_edges(table, robust_rule, runner=knn_runner)
    linked = list(linked) if mode == "robust" else []
    pairs = list(zip(edges.i.tolist(), edges.j.tolist())) + [(x, y) for x, y, _ in linked]
    comps = [c for c in connected_components(len(table), pairs) if len(c) > 1]
    sharp = group_sharpness(paths, [k for c in comps for k in c], runner=runner)
    tested: dict[tuple[int, int], tuple[bool, dict]] = {}
    adjacency: dict[int, set[int]] = {}
    for x, y in pairs:
        adjacency.setdefault(x, set()).add(y)
        adjacency.setdefault(y, set()).add(x)

    def test(pairs: Sequence[tuple[int, int]]) -> None:
        todo = np.array([p for p in pairs if p not in tested], np.int64).reshape(-1, 2)
        if len(todo):
            tested.update(zip(map(tuple, todo.tolist()),
                              resemble_many(table, todo[:, 0], todo[:, 1], robust_rule)))

    if mode == "robust":  # an edge already is the pair test passed: only its evidence is missing
        grey, texture = (x.tolist() for x in patch_ncc(table.patches, edges.i, edges.j))
        for k, (x, y) in enumerate(zip(edges.i.tolist(), edges.j.tolist())):
            tested[x, y] = tested[y, x] = (True, {
                "ahash": int(edges.ahash[k]), "phash": int(edges.phash[k]), "ncc": round(grey[k], 4),
                "texture_ncc": round(texture[k], 4), **(edges.registration[k] if edges.registration else {})})
        if linked:  # the crops' own distances too, for the review screen
            x, y = (np.array(v, np.int64) for v in zip(*[(a, b) for a, b, _ in linked]))
            for (a, b, evidence), measured in zip(linked, distances(table, x, y)):
                known = tested.get((a, b), (True, measured))[1]  # an edge of the crops' own keeps its evidence
                tested[a, b] = tested[b, a] = (True, {**known, **evidence})

    def accepts_pairs(pairs: list[tuple[int, int]]) -> list[bool]:
        test(pairs)
        return [tested[p][0] for p in pairs]

    groups = []
    robust = mode == "robust"
    for keeper, drop in keeper_groups(comps, sharp, accepts_pairs=accepts_pairs if robust else None,
                                      adjacency=adjacency if robust else None, cut=cut if robust else ()):
        evidence: dict = {"mode": mode,
                          "sharpness": {table.names[k]: round(sharp[k], 3) for k in [keeper, *drop]},
                          "distances": {}}
        for m in drop:
            if mode == "robust":
                evidence["distances"][table.names[m]] = tested[keeper, m][1]
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
