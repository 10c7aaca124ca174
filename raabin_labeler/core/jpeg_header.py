"""A JPEG's frame headers, read from its bytes without decoding anything.

Why: two batch jobs need a crop's stored size or layers before decoding it (the nucleus batch
picks its reduced decode scale; the paper's hashes hand a plain JPEG straight to Pillow's
decoder), and ``Image.open`` parses every marker in Python: 0.1 ms of a 0.35 ms read.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Start-of-frame markers (SOF0-15 without DHT C4, JPG C8, DAC CC): they carry size and layers.
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers that stand alone, without a length field (TEM, RSTn, SOI, EOI), and fill bytes.
_NO_LENGTH = frozenset({0x01, 0xFF, *range(0xD0, 0xDA)})


@dataclass(frozen=True)
class JpegFrame:
    """One frame header as stored: the EXIF orientation is not applied."""

    bits: int
    width: int
    height: int
    layers: int


def jpeg_frames(data: bytes) -> list[JpegFrame] | None:
    """The frame headers before a JPEG's first scan; None when ``data`` is not a JPEG whose
    markers lead plainly to a scan (not a JPEG, junk between markers, cut off before the scan).

    Headers come first, so the first 64 KB are enough for any crop's or photo's.
    """
    if data[:3] != b"\xff\xd8\xff":
        return None
    frames, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: the headers are over
            return frames
        if marker in _NO_LENGTH:
            return None
        if marker in _FRAMES and at + 10 <= len(data):
            frames.append(JpegFrame(bits=data[at + 4], height=int.from_bytes(data[at + 5:at + 7], "big"),
                                    width=int.from_bytes(data[at + 7:at + 9], "big"), layers=data[at + 9]))
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None
