"""Two- and three-class Otsu thresholds of an 8-bit histogram, exactly as scikit-image finds them.

Why not call scikit-image: its three-class search visits the threshold pairs one at a time, so
its cost grows with the square of the levels used. On the smoothed stain of the whole-cell
outline (200+ levels) it took 0.8 ms, the largest single step of a crop in the nucleus batch
(issue 6: ≥ 200 crops/s/core). Here the same lookup table (Liao, Chen and Chung, 2001) and the
same search are whole-array float32 operations in scikit-image's order of operations, so the
thresholds are its own, near-ties included (tests/test_otsu.py compares them on real and random
histograms).
"""
from __future__ import annotations

import cv2
import numpy as np


def otsu_two(counts: np.ndarray, first: int) -> int:
    """Two-class Otsu of ``counts`` for levels ``first``, ``first`` + 1, … (no zero at either end).

    scikit-image's ``threshold_otsu(hist=...)``: float32 counts, float64 class means.
    """
    counts = counts.astype(np.float32)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    moments = counts * np.arange(first, first + len(counts))
    mean1 = np.cumsum(moments) / weight1
    mean2 = (np.cumsum(moments[::-1]) / weight2[::-1])[::-1]
    variance = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return first + int(np.argmax(variance))


def otsu_three(counts: np.ndarray, first: int) -> tuple[int, int]:
    """Three-class Otsu (low, up) of ``counts`` as in :func:`otsu_two`; three levels used at least.

    scikit-image's ``threshold_multiotsu(classes=3, hist=...)``: float32 cumulative moments (its
    first moment starts at counts[0], not 0), the between-class table H[i, j] =
    (S_j − S_{i−1})² / (P_j − P_{i−1}) (0 where no pixel, and at [0, 0]), and the first pair
    a < b in scan order with the largest σ = (H[0, a] + H[b + 1, end]) + H[a + 1, b].
    """
    prob = counts.astype(np.float32)
    used = np.count_nonzero(prob)
    if used < 3:
        raise ValueError(f"three classes need three used levels, got {used}")
    if used == 3:
        low, up, _ = np.flatnonzero(prob)
        return first + int(low), first + int(up)
    n = len(prob)
    weighted = np.arange(n, dtype=np.float32) * prob
    weighted[0] = prob[0]
    table = _class_table(prob, weighted)
    table[0, 0] = 0
    last = table[2:, n - 1].copy()  # H[b + 1, end] for b = 1 … n − 2
    sigma = table[0, :n - 2, None] + last  # rows a = 0 … n − 3, columns b − 1
    sigma += table[1:n - 1, 1:n - 1]  # −inf where b ≤ a
    a, b = divmod(int(np.argmax(sigma)), n - 2)
    return first + a, first + b + 1


def otsu_four(counts: np.ndarray, first: int) -> tuple[int, int, int]:
    """Four-class Otsu thresholds (t1 < t2 < t3) of ``counts`` for levels ``first``, … .

    The split maximising Σ S_k² / P_k over the four classes, in O(levels²) rather than
    O(levels³): for each middle threshold b, the best threshold below it and the best above it
    do not depend on each other. float32 (the moments of a 144² crop are exact there); among
    equal splits the lowest thresholds win.
    """
    prob = counts.astype(np.float32)
    if np.count_nonzero(prob) < 4:
        raise ValueError(f"four classes need four used levels, got {np.count_nonzero(prob)}")
    n = len(prob)
    table = _class_table(prob, prob * np.arange(n, dtype=np.float32))
    head = table[0, :n - 1]  # H[0, a]
    tail = table[1:, n - 1].copy()  # H[c + 1, end]
    # Only the best of each half is kept, not the two n² sums: a and c are found again for the
    # chosen b alone (with the table's own mask, 20 % less time at 256 levels). The table's −inf
    # rules out a ≥ b and c ≤ b.
    lower = (table[1:] + head[:, None]).max(axis=0)  # max over a of H[0, a] + H[a + 1, b]
    upper = (table[1:, :n - 1] + tail).max(axis=1)  # max over c of H[b + 1, c] + H[c + 1, end]
    b = 1 + int(np.argmax(lower[1:n - 2] + upper[1:n - 2]))  # b = 1 … n − 3
    a = int(np.argmax(table[1:b + 1, b] + head[:b]))
    c = b + 1 + int(np.argmax(table[b + 1, b + 1:n - 1] + tail[b + 1:]))
    return first + a, first + b, first + c


def _class_table(prob: np.ndarray, weighted: np.ndarray) -> np.ndarray:
    """H[i, j] = (S_j − S_{i−1})² / (P_j − P_{i−1}) of levels i … j, float32 cumulative sums of
    ``prob`` and ``weighted`` (P and S); −inf below the diagonal (no such class): the searches
    need no mask of their own."""
    n = len(prob)
    zeroth = np.zeros(n + 1, np.float32)
    np.cumsum(prob, out=zeroth[1:])
    moment = np.zeros(n + 1, np.float32)
    np.cumsum(weighted, out=moment[1:])
    mass = zeroth[None, 1:] - zeroth[:-1, None]
    table = moment[None, 1:] - moment[:-1, None]
    table *= table
    # A range with no pixel has mass 0 and moment 0: dividing by ½ leaves its 0 (any range that
    # holds a pixel has a mass of at least 1, exact in float32). cv2.max: 2.5× np.maximum's speed.
    cv2.max(mass, 0.5, dst=mass)
    table /= mass
    table += _BELOW_DIAGONAL[:n, :n]
    return table


#: −inf below the diagonal, 0 elsewhere, for the widest span of an 8-bit histogram (256 levels).
_BELOW_DIAGONAL = np.tril(np.full((256, 256), -np.inf, np.float32), -1)
_BELOW_DIAGONAL.flags.writeable = False
