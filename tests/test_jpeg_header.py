"""A JPEG's stored frame header, read without decoding (the batch jobs' fast paths)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from raabin_labeler.core.jpeg_header import JpegFrame, jpeg_frames


def _jpeg(mode: str, size: tuple[int, int], **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white" if mode != "CMYK" else (0, 0, 0, 0)).save(out, "JPEG", **options)
    return out.getvalue()


def test_frames_give_the_stored_size_depth_and_layers():
    assert jpeg_frames(_jpeg("RGB", (640, 480))) == [JpegFrame(bits=8, width=640, height=480, layers=3)]
    assert jpeg_frames(_jpeg("L", (33, 575), progressive=True)) == [JpegFrame(8, 33, 575, 1)]
    assert jpeg_frames(_jpeg("CMYK", (20, 10)))[0].layers == 4


def test_the_stored_size_is_read_before_any_exif_turn():
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned by 90°
    frame = jpeg_frames(_jpeg("RGB", (640, 480), exif=exif.tobytes()))[0]
    assert (frame.width, frame.height) == (640, 480)


def test_anything_but_a_plainly_walkable_jpeg_is_none():
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    whole = _jpeg("RGB", (64, 64))
    assert jpeg_frames(png.getvalue()) is None
    assert jpeg_frames(b"") is None
    assert jpeg_frames(whole[:20]) is None  # cut off in its headers: no scan reached
    junk = whole[:2] + b"\x00\x00" + whole[2:]  # junk between markers
    assert jpeg_frames(junk) is None
    assert jpeg_frames(np.frombuffer(whole, np.uint8).tobytes()) == jpeg_frames(whole)
