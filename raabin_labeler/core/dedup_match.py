"""Duplicate cells cut differently: visual-word candidates and keypoint registration (issue 5).

Two photos of one cell from overlapping fields often frame it differently: shifted by a third of
the crop, or cut by the photo border on one side in one photo and on the other side in the
other (BCCD rows 146/206, 268/301). Nucleus alignment then fails, because the visible part of
the nucleus differs. Here each crop gets ORB keypoints on a grey copy whose short side is
``MATCH_SIDE`` pixels, and

* candidates come from a bag of visual words (a vocabulary of descriptors sampled from the crops
  themselves, TF-IDF, cosine): every hand-checked BCCD pair but the blurriest is mutually nearest;
  beyond ``EXACT_WORDS_UP_TO`` crops the nearest are searched within word clusters only;
* a pair is confirmed by registration: a similarity transform (RANSAC on matched keypoints),
  each crop's centre (where its cell is) must land inside the other crop, and the grey levels
  of the overlap must correlate. On BCCD true pairs reach 0.94-1.0 there; look-alike cells of
  other fields that still find >= 8 consistent keypoints stay below 0.72. When the geometry
  passes but the grey levels do not, the transform is found once more by trying every pair of
  matches (:func:`best_supported`): RANSAC can stop at a wrong scale one match short of the
  true one (rows 146/206). The geometry
  (:func:`transform`) needs only the stored keypoints and image sizes; the grey images
  (:func:`overlap_agrees`) are decoded again only for the few pairs it accepts.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import os

import cv2
import numpy as np
import scipy.sparse as sp

#: Short side of the grey copy that keypoints are found on (crops are 100-600 px).
MATCH_SIDE = 96
#: Keypoints kept per crop, over 3 pyramid levels (enough for 0.7-1.45x scale changes).
KEYPOINTS = 100
#: Words in the visual vocabulary (BCCD: 1024 put 18 of 20 true pairs mutually nearest, 256 only 15).
VOCABULARY = 1024

_ORB = None


def _orb() -> cv2.ORB:
    global _ORB
    if _ORB is None:
        _ORB = cv2.ORB_create(nfeatures=KEYPOINTS, nlevels=3, edgeThreshold=8, patchSize=15,
                              fastThreshold=5)
    return _ORB


def match_shape(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of the :func:`match_gray` copy of a crop decoded at ``height`` x ``width``."""
    f = MATCH_SIDE / min(height, width)
    return max(1, round(height * f)), max(1, round(width * f))


def match_gray(rgb: np.ndarray) -> np.ndarray:
    """Grey copy of an RGB crop with its short side at ``MATCH_SIDE`` pixels (INTER_AREA)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    rows, cols = match_shape(h, w)
    return cv2.resize(gray, (cols, rows),
                      interpolation=cv2.INTER_AREA if MATCH_SIDE < min(h, w) else cv2.INTER_LINEAR)


def keypoints(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB keypoint positions (K, 2) float32 and descriptors (K, 32) uint8 of a :func:`match_gray` image."""
    kp, desc = _orb().detectAndCompute(gray, None)
    if desc is None or not kp:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.float32([k.pt for k in kp]), desc


# ----------------------------------------------------------------------------- candidates

def word_vectors(descriptors: list[np.ndarray], vocabulary: int = VOCABULARY,
                 seed: int = 0) -> sp.csr_matrix:
    """L2-normalised TF-IDF bags of visual words, one row per crop.

    The vocabulary is ``vocabulary`` descriptors drawn (fixed seed) from all crops; each
    descriptor counts for its nearest word by Hamming distance.
    """
    n = len(descriptors)
    counts = np.array([len(d) for d in descriptors], np.int64)
    if counts.sum() == 0:
        return sp.csr_matrix((n, 1), dtype=np.float32)
    everything = np.concatenate([d for d in descriptors if len(d)])
    rng = np.random.default_rng(seed)
    # a word must be able to occur in several crops: with few crops, fewer words
    size = min(vocabulary, max(16, len(everything) // 16), len(everything))
    vocab = everything[rng.choice(len(everything), size, replace=False)]
    block = 65536

    def nearest(s: int) -> np.ndarray:
        _, idx = cv2.batchDistance(everything[s:s + block], vocab, cv2.CV_32S,
                                   normType=cv2.NORM_HAMMING, K=1)
        return idx.reshape(-1)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        words = np.concatenate(list(pool.map(nearest, range(0, len(everything), block))))
    rows = np.repeat(np.arange(n), counts)
    x = sp.csr_matrix((np.ones(len(words), np.float32), (rows, words)), shape=(n, len(vocab)))
    x.sum_duplicates()
    df = np.bincount(x.indices, minlength=len(vocab))
    idf = (np.log((n + 1) / (df + 1)) + 1).astype(np.float32)  # smoothed, as scikit-learn: a word in every crop still counts
    x = x @ sp.diags(idf)
    norm = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    return sp.csr_matrix(sp.diags(1 / np.maximum(norm, 1e-9)) @ x, dtype=np.float32)


def _top_k(vectors: sp.csr_matrix, rows: np.ndarray, k: int, at_least: float,
           block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, rank) for the ``k`` most similar rows to each of ``rows`` among ``rows`` (global
    indices), rank 0 = most similar; the exact cosine of every pair in ``rows``, in row blocks."""
    sub = vectors[rows]
    t = sub.T.tocsc()
    kk = min(k, len(rows) - 1)
    out = []
    for r0 in range(0, len(rows), block):
        sim = (sub[r0:r0 + block] @ t).toarray()
        sim[np.arange(len(sim)), np.arange(r0, r0 + len(sim))] = -1
        top = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        val = np.take_along_axis(sim, top, 1)
        order = np.argsort(-val, axis=1, kind="stable")
        top, val = np.take_along_axis(top, order, 1), np.take_along_axis(val, order, 1)
        ok = val >= at_least
        ii = np.repeat(np.arange(r0, r0 + len(sim)), kk).reshape(len(sim), kk)
        rank = np.broadcast_to(np.arange(kk), (len(sim), kk))
        out.append((rows[ii[ok]], rows[top[ok]], rank[ok], val[ok]))
    return tuple(np.concatenate([o[c] for o in out]) for c in range(4))  # type: ignore[return-value]


def _kmeans_members(vectors: sp.csr_matrix, rows: np.ndarray, count: int, probes: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Members (global rows) of ``count`` spherical k-means clusters of ``rows``, fitted on a
    sample; every row joins its ``probes`` nearest clusters."""
    sub = vectors[rows]
    sample = sub[rng.choice(len(rows), min(len(rows), 32 * count), replace=False)].toarray()
    centres = sample[rng.choice(len(sample), count, replace=False)]
    for _ in range(10):
        label = np.argmax(sample @ centres.T, axis=1)
        for c in range(count):
            members = sample[label == c]
            if len(members):
                total = members.sum(0)
                centres[c] = total / max(float(np.linalg.norm(total)), 1e-9)
    near = np.argpartition(-(sub @ centres.T), probes - 1, axis=1)[:, :probes].reshape(-1)
    owner = np.repeat(rows, probes)
    order = np.argsort(near, kind="stable")
    bounds = np.searchsorted(near[order], np.arange(count + 1))
    return [owner[order[bounds[c]:bounds[c + 1]]] for c in range(count)]


def _clusters(vectors: sp.csr_matrix, size: int, probes: int, seed: int) -> list[np.ndarray]:
    """Overlapping groups of about ``size`` crops such that near-duplicates share a group.

    Spherical k-means on the word vectors, each crop in its ``probes`` nearest clusters; a
    cluster over 3 x ``size`` (bland crops crowd into a few) is split again the same way with 2
    probes, so the pairs compared stay near ``probes * size`` per crop.
    """
    rng = np.random.default_rng(seed)
    n = vectors.shape[0]
    out = []
    for members in _kmeans_members(vectors, np.arange(n), max(2, n // size), probes, rng):
        if len(members) > 3 * size:
            out += _kmeans_members(vectors, members, len(members) // size, 2, rng)
        else:
            out.append(members)
    return [m for m in out if len(m) > 1]


#: Beyond this many crops the word search is approximate (see :func:`word_neighbours`).
EXACT_WORDS_UP_TO = 8192


def word_neighbours(vectors: sp.csr_matrix, k: int, at_least: float, block: int = 512,
                    exact_up_to: int = EXACT_WORDS_UP_TO, crops_per_cluster: int = 1000,
                    probes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) where j is among i's ``k`` most similar crops by word cosine (>= ``at_least``)
    or i among j's, with ``rank``: the better of the two positions (0 = nearest).

    Exact up to ``exact_up_to`` crops. Beyond, the all-pairs product costs the sum over words of
    (crops holding the word) squared, quadratic in N (40,000 crops: ~6e9 multiply-adds, minutes),
    so each crop is compared only with the crops of its ``probes`` nearest word clusters of about
    ``crops_per_cluster`` crops (an inverted file as in Jegou et al.'s IVF; see
    :func:`_clusters`), exact cosines within them. On the speed benchmark's first 10,000 crops
    this keeps 95 % of the exact nearest pairs and 94 % of the 8 nearest; memory is a block of
    ``block`` rows by one cluster.
    """
    n = vectors.shape[0]
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty, empty
    if n <= exact_up_to:
        parts = [np.arange(n)]
    else:
        parts = _clusters(vectors, crops_per_cluster, probes, seed=0)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        found = list(pool.map(lambda rows: _top_k(vectors, rows, k, at_least, block), parts))
    ii, jj, rank, sim = (np.concatenate([f[c] for f in found]) for c in range(4))
    if not len(ii):
        return empty, empty, empty
    if len(parts) > 1:  # a crop's k best over the clusters it is in
        order = np.lexsort((jj, -sim, ii))
        ii, jj, sim = ii[order], jj[order], sim[order]
        first = np.ones(len(ii), bool)
        first[1:] = (ii[1:] != ii[:-1]) | (jj[1:] != jj[:-1])
        ii, jj = ii[first], jj[first]
        start = np.searchsorted(ii, ii)
        rank = np.arange(len(ii)) - start
        keep = rank < k
        ii, jj, rank = ii[keep], jj[keep], rank[keep]
    a, b = np.minimum(ii, jj).astype(np.int64), np.maximum(ii, jj).astype(np.int64)
    order = np.lexsort((rank, b, a))
    a, b, rank = a[order], b[order], rank[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], rank[first].astype(np.int64)


# ----------------------------------------------------------------------------- registration

@dataclass(frozen=True)
class RegistrationRule:
    """When keypoint registration says two crops show one cell (thresholds from BCCD).

    True pairs: 9-54 RANSAC inliers, scale 0.83-1.09, overlap grey correlation >= 0.944 and
    high-pass >= 0.18; unlike cells with >= 8 inliers had grey correlation <= 0.72.
    """

    inliers_at_least: int = 8
    scale_within: tuple[float, float] = (0.7, 1.45)
    ncc_at_least: float = 0.93
    texture_at_least: float = 0.12
    overlap_at_least: float = 0.2
    centres_apart_at_most: float = 0.55


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else -1.0


def best_supported(pa: np.ndarray, pb: np.ndarray, threshold: float) -> tuple[np.ndarray | None, int]:
    """The similarity (2x3) A -> B most matches agree with, and how many, by trying every pair.

    Each pair of matches fixes a similarity; the one with the most matches within ``threshold``
    is refitted by least squares to those matches (Umeyama) and they are counted again. Unlike
    OpenCV's RANSAC, which stops sampling once a model looks likely enough, this cannot settle
    for a wrong scale that a match or two fewer support (BCCD rows 146/206: 9 matches at scale
    0.76, 10 at the true 0.89). Quadratic in the matches: only for the few pairs that need it.
    """
    za = pa[:, 0].astype(np.float64) + 1j * pa[:, 1]
    zb = pb[:, 0].astype(np.float64) + 1j * pb[:, 1]
    i, j = np.triu_indices(len(za), 1)
    step = za[j] - za[i]
    ok = np.abs(step) > 1e-6
    if not ok.any():
        return None, 0
    i, j, step = i[ok], j[ok], step[ok]
    a = (zb[j] - zb[i]) / step
    t = zb[i] - a * za[i]
    support = np.abs(a[:, None] * za[None] + t[:, None] - zb[None]) < threshold
    best = support[int(np.argmax(support.sum(1)))]
    ma, mb = za[best].mean(), zb[best].mean()
    a1 = np.sum((zb[best] - mb) * np.conj(za[best] - ma)) / max(float(np.sum(np.abs(za[best] - ma) ** 2)), 1e-12)
    t1 = mb - a1 * ma
    count = int((np.abs(a1 * za + t1 - zb) < threshold).sum())
    return np.array([[a1.real, -a1.imag, t1.real], [a1.imag, a1.real, t1.imag]]), count


def transform(feats_a: tuple[np.ndarray, np.ndarray], shape_a: tuple[int, int],
              feats_b: tuple[np.ndarray, np.ndarray], shape_b: tuple[int, int],
              rule: RegistrationRule = RegistrationRule(),
              exhaustive: bool = False) -> tuple[np.ndarray | None, dict]:
    """The geometric half of :func:`register`, from keypoints and image shapes alone.

    Returns the similarity transform A -> B (2x3) when enough keypoints agree on one, at a
    plausible scale, with the crops' centres close; else None. Most candidate pairs stop here,
    so the grey images are only needed (decoded) for the few that pass. ``exhaustive`` finds
    the transform by :func:`best_supported` instead of OpenCV's RANSAC.
    """
    (pa, da), (pb, db) = feats_a, feats_b
    evidence: dict = {"inliers": 0}
    if len(da) < max(4, rule.inliers_at_least) or len(db) < max(4, rule.inliers_at_least):
        return None, evidence
    dist, idx = cv2.batchDistance(da, db, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    good = (dist[:, 0] < 0.8 * dist[:, 1]) & (dist[:, 0] < 64)  # Lowe's ratio test
    if good.sum() < max(4, rule.inliers_at_least):
        return None, evidence
    if exhaustive:
        m, count = best_supported(pa[good], pb[idx[good, 0]], MATCH_SIDE / 40)
    else:
        m, inliers = cv2.estimateAffinePartial2D(pa[good], pb[idx[good, 0]], method=cv2.RANSAC,
                                                 ransacReprojThreshold=MATCH_SIDE / 40)
        count = int(inliers.sum()) if m is not None else 0
    if m is None:
        return None, evidence
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    evidence.update(inliers=count, scale=round(scale, 3))
    lo, hi = rule.scale_within
    if evidence["inliers"] < rule.inliers_at_least or not lo <= scale <= hi:
        return None, evidence
    # the two crops must be centred on the same place (each crop is cut around its cell): within
    # half a crop side, whereas two distinct cells lie about a cell (a side) apart, so overlapping
    # crops of neighbouring cells of one photo (BCCD rows 132/133) share content but fail here.
    # Not "inside the other crop": a cell cut by the border has its centre outside the photo.
    centre_a = np.array([(shape_a[1] - 1) / 2, (shape_a[0] - 1) / 2, 1.0])
    centre_b = np.array([(shape_b[1] - 1) / 2, (shape_b[0] - 1) / 2])
    side = (min(shape_a) * scale + min(shape_b)) / 2
    apart = float(np.hypot(*(m @ centre_a - centre_b))) / side
    evidence["centres_apart"] = round(apart, 3)
    if apart > rule.centres_apart_at_most:
        return None, evidence
    return m, evidence


def overlap_agrees(gray_a: np.ndarray, gray_b: np.ndarray, m: np.ndarray, evidence: dict,
                   rule: RegistrationRule = RegistrationRule()) -> bool:
    """The grey half of :func:`register`: do the crops' grey levels correlate where A lands on B?

    Adds ``reg_ncc`` (grey) and ``reg_texture_ncc`` (high-pass) to ``evidence``.
    """
    h, w = gray_b.shape
    warped = cv2.warpAffine(gray_a, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
    mask = cv2.warpAffine(np.ones_like(gray_a), m, (w, h), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
    if mask.mean() < rule.overlap_at_least:
        return False
    b = gray_b.astype(np.float32)
    sigma = MATCH_SIDE / 64
    grey = _ncc(warped[mask], b[mask])
    texture = _ncc((warped - cv2.GaussianBlur(warped, (0, 0), sigma))[mask],
                   (b - cv2.GaussianBlur(b, (0, 0), sigma))[mask])
    evidence.update(reg_ncc=round(grey, 4), reg_texture_ncc=round(texture, 4))
    return grey >= rule.ncc_at_least and texture >= rule.texture_at_least


def register(gray_a: np.ndarray, feats_a: tuple[np.ndarray, np.ndarray], gray_b: np.ndarray,
             feats_b: tuple[np.ndarray, np.ndarray],
             rule: RegistrationRule = RegistrationRule()) -> tuple[bool, dict]:
    """Is crop A the same cell as crop B, framed differently? (decision, evidence).

    Evidence: ``inliers``, ``scale`` and, once a plausible transform is found, the overlap's
    ``reg_ncc`` (grey) and ``reg_texture_ncc`` (high-pass); ``exhaustive`` when only the
    :func:`best_supported` transform agreed.
    """
    m, evidence = transform(feats_a, gray_a.shape, feats_b, gray_b.shape, rule)
    if m is None:
        return False, evidence
    if overlap_agrees(gray_a, gray_b, m, evidence, rule):
        return True, evidence
    m, again = transform(feats_a, gray_a.shape, feats_b, gray_b.shape, rule, exhaustive=True)
    if m is not None and overlap_agrees(gray_a, gray_b, m, again, rule):
        return True, {**again, "exhaustive": True}
    return False, evidence
