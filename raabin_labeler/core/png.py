"""8-bit grey PNG files for masks, compressed by zlib-ng.

Why: the nucleus batch writes one 575×575 mask per crop, and compressing it was about 7 % of a
crop's time (issue 6: ≥ 200 crops/s/core). A mask is long runs of three values, which deflate's
run-length strategy packs to ~2 kB; zlib-ng does that 4-6× faster than the zlib inside OpenCV or
Python. The file is a plain PNG (filter 0 on every row): any reader gives back the mask's values.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
from zlib_ng import zlib_ng

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_gray_png(mask: np.ndarray) -> bytes:
    """A 2-D uint8 array as the bytes of a greyscale PNG (bit depth 8, no interlace)."""
    if mask.ndim != 2 or mask.dtype != np.uint8 or 0 in mask.shape:
        raise ValueError(f"expected a non-empty 2-D uint8 mask, got shape {mask.shape} {mask.dtype}")
    height, width = mask.shape
    rows = np.empty((height, width + 1), np.uint8)
    rows[:, 0] = 0  # each row's filter type: none
    rows[:, 1:] = mask
    packer = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 15, 9, zlib_ng.Z_RLE)
    data = packer.compress(rows) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join((_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", data), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
