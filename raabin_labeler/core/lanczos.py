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
"""
from __future__ import annotations

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


def _round_clip(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8: (sum + ½) >> PRECISION_BITS, clipped to 0-255 (as float64 levels)."""
    sums += 1 << (PRECISION_BITS - 1)
    sums *= 2.0 ** -PRECISION_BITS
    np.floor(sums, out=sums)
    return np.clip(sums, 0, 255, out=sums)


def reduce_square(gray: np.ndarray, sides: tuple[int, ...]) -> list[np.ndarray]:
    """``Image.fromarray(gray).resize((s, s), LANCZOS)`` for each ``s`` of ``sides``, as float64.

    ``gray`` is a square uint8 image. The horizontal passes of all sides are one GEMM. OpenCV's
    GEMM, not NumPy's: NumPy's BLAS starts threads that fight the pool's processes for the cores.
    """
    height, width = gray.shape
    if height != width:
        raise ValueError(f"expected a square image, got {width}x{height}")
    both = _stacked_taps(width, tuple(sides))  # a square's vertical taps are its horizontal ones
    rows = _round_clip(cv2.gemm(gray.astype(np.float64), both, 1.0, None, 0.0, flags=cv2.GEMM_2_T))
    out, at = [], 0
    for side in sides:
        out.append(_round_clip(cv2.gemm(both[at:at + side], np.ascontiguousarray(rows[:, at:at + side]),
                                        1.0, None, 0.0)))
        at += side
    return out


@lru_cache(maxsize=512)
def _stacked_taps(n_in: int, sides: tuple[int, ...]) -> np.ndarray:
    """The taps of every side, one above the other: one cache entry per crop size (crops of
    hundreds of sizes take turns; per-side entries would fall out of the cache)."""
    stacked = np.vstack([taps(n_in, side) for side in sides])
    stacked.setflags(write=False)
    return stacked
