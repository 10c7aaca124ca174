"""Pillow's LANCZOS reduction of a grey image, bit for bit, as matrix products.

Why: the paper's hashes are ImageHash's, and ImageHash shrinks every crop with Pillow's
LANCZOS filter, whose C loop walks each tap of each output pixel (1.5-2 ms per 575-px crop
and hash size, more than decoding the crop). The same fixed-point arithmetic is two products
of the image with integer tap matrices: one GEMM per pass, both hash sizes sharing the first.
float64 holds every sum exactly (|sum| < 2³¹), so the result equals Pillow's pixel for pixel.
Square images only: for those Pillow runs the horizontal pass first, as its C code of record
does; the build installed here (13.0) runs the vertical pass first for some other shapes (tall
crops; found on random images, no rule published), so a crop of another shape is left to Pillow.

Pillow's resampler (libImaging/Resample.c, 8 bits per channel): taps of the truncated sinc
normalised to sum 1, rounded half away from zero to 22-bit fixed point; a horizontal pass
rounded and clipped to 8 bits, then a vertical pass over that, rounded and clipped again.
Here the taps are stored divided by 2²² (exact: a power of two), so each product hands out
the sum already shifted, and one saturating conversion to uint8 rounds and clips it
(:func:`_clip8`). Tried and dropped for the horizontal pass: banded products for the 32 side
(12n² instead of 40n² multiply-adds, but 5 narrow GEMMs were slower than one wide one at every
crop size up to 575 px); float32 products (2x faster per product, but exact only with the taps
split in two, which doubles the products).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: Pillow's PRECISION_BITS for 8-bit images (32 − 8 − 2).
PRECISION_BITS = 22
#: Lanczos-3: sinc(x)·sinc(x/3) on [−3, 3).
SUPPORT = 3.0


def taps(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) fixed-point weights Pillow uses to shrink n_in samples to n_out."""
    scale = n_in / n_out
    filter_scale = max(scale, 1.0)
    support = SUPPORT * filter_scale
    center = (np.arange(n_out) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(int), 0)  # C's (int) truncates; ≥ 0 here
    count = np.minimum((center + support + 0.5).astype(int), n_in) - first
    x = np.arange(n_in)[None, :]
    inside = (x >= first[:, None]) & (x < (first + count)[:, None])
    t = (x - center[:, None] + 0.5) / filter_scale
    weights = np.where(inside & (t >= -SUPPORT) & (t < SUPPORT), _sinc(t) * _sinc(t / SUPPORT), 0.0)
    total = np.cumsum(weights, axis=1)[:, -1:]  # summed in order, as Pillow's loop does
    weights = np.divide(weights, total, out=weights, where=total != 0.0)
    scaled = weights * (1 << PRECISION_BITS)
    return np.trunc(np.where(scaled < 0, scaled - 0.5, scaled + 0.5))


def _sinc(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x == 0.0, 1.0, np.sin(np.pi * x) / (np.pi * x))


def _clip8(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8, ``(sum + 2²¹) >> 22`` clipped to 0-255, of sums already divided by 2²².

    OpenCV's saturating conversion rounds to nearest with ties to even, Pillow rounds ties up.
    The sums are multiples of 2⁻²², so adding half that step (2⁻²³, exact in float64 below 2⁹)
    leaves no tie and moves no sum across a rounding boundary: the nearest integer is then
    Pillow's. One call instead of add, scale, floor and clip.
    """
    return cv2.add(sums, 2.0 ** -(PRECISION_BITS + 1), dtype=cv2.CV_8U)


def reduce_square(gray: np.ndarray, sides: tuple[int, ...]) -> list[np.ndarray]:
    """``np.asarray(Image.fromarray(gray).resize((s, s), LANCZOS))`` for each ``s`` of ``sides``.

    ``gray`` is a square uint8 image; the results are uint8, as Pillow's. The horizontal passes
    of all sides are one GEMM. OpenCV's GEMM, not NumPy's: NumPy's BLAS starts threads that
    fight the pool's processes for the cores.
    """
    height, width = gray.shape
    if height != width:
        raise ValueError(f"expected a square image, got {width}x{height}")
    plan = _plan(width, tuple(sides))
    sums = cv2.gemm(gray.astype(np.float64), plan.horizontal, 1.0, None, 0.0, flags=cv2.GEMM_2_T)
    rows = _clip8(sums).astype(np.float64)
    out, at = [], 0
    for side, bands in zip(sides, plan.vertical):
        parts = [cv2.gemm(band, rows[first:stop, at:at + side], 1.0, None, 0.0)
                 for first, stop, band in bands]
        out.append(_clip8(parts[0] if len(parts) == 1 else np.vstack(parts)))
        at += side
    return out


#: Output rows per vertical product. A vertical output row reads only the rows under its taps
#: (6 n / side + 1 of n for a side < n), so in bands of 8 rows the 32 side's vertical pass reads
#: under half the rows one product would (OpenCV's GEMM is slow for a long inner dimension):
#: 0.02 instead of 0.05 ms for a 185-px crop, 0.06 instead of 0.17 for a 575-px one. Bands of
#: 4 rows read fewer rows but cost more calls: no faster (medians of 600 crops of each size).
BAND = 8


@dataclass(frozen=True)
class _Plan:
    """The taps of one crop size, divided by 2²² and laid out for :func:`reduce_square`."""

    horizontal: np.ndarray  # (sum(sides), n): every side's taps, one above the other
    #: per side, per band of BAND output rows: (first, stop, taps[band rows, first:stop])
    vertical: tuple[tuple[tuple[int, int, np.ndarray], ...], ...]


@lru_cache(maxsize=512)
def _plan(n_in: int, sides: tuple[int, ...]) -> _Plan:
    """One cache entry per crop size (crops of hundreds of sizes take turns; per-side entries
    would fall out of the cache). A square's vertical taps are its horizontal ones."""
    scaled = [taps(n_in, side) * 2.0 ** -PRECISION_BITS for side in sides]
    horizontal = np.vstack(scaled)
    horizontal.setflags(write=False)
    vertical = []
    for weights in scaled:
        bands = []
        for top in range(0, len(weights), BAND):
            band = weights[top:top + BAND]
            used = np.flatnonzero(band.any(axis=0))
            first, stop = int(used[0]), int(used[-1]) + 1
            bands.append((first, stop, np.ascontiguousarray(band[:, first:stop])))
        vertical.append(tuple(bands))
    return _Plan(horizontal, tuple(vertical))
