"""Photos decoded off the Tk thread, a few ahead, at the resolutions the canvas asks for.

Each photo becomes a small pyramid: a reduced JPEG decode for the first paint (PIL ``draft``,
quick), then the full decode and its half-size copy for detail. The window asks for what it
needs and drains finished decodes from :attr:`PhotoCache.ready` with ``after``; nothing here
touches Tk (ARCHITECTURE.md: decoding and prefetch run off the Tk thread).
"""
from __future__ import annotations

import os
import queue
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..core.imageio import DEFAULT_MAX_PIXELS, ImageError, open_image, open_reduced
from ..errors import FileProblem

PREVIEW_SIDE = 1100  # a 4160 px photo decodes at 1/4 (1040 px) straight from the JPEG


@dataclass
class Pyramid:
    """Levels of one photo, smallest first, each with its scale (level px per photo px)."""

    path: Path
    levels: list[tuple[float, Image.Image]] = field(default_factory=list)
    full_size: tuple[int, int] | None = None
    error: FileProblem | None = None  # the pixels cannot be decoded (the header may have been fine)
    complete: bool = False

    def best_for(self, zoom: float) -> tuple[float, Image.Image] | None:
        """The smallest level that still has at least one pixel per screen pixel."""
        for scale, image in self.levels:
            if scale >= zoom * 0.98:
                return scale, image
        return self.levels[-1] if self.levels else None


def _yield_to_the_window() -> None:
    """Run decode threads at a lower CPU priority, so the Tk thread wins when both want a core.

    On Linux a thread is a task with its own nice value; elsewhere this quietly does nothing.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class PhotoCache:
    """Thread-safe: ``request`` may be called from the Tk thread; decodes run in workers."""

    def __init__(self, max_photos: int = 4, workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode",
                                        initializer=_yield_to_the_window)
        self._lock = threading.Lock()
        self._photos: OrderedDict[Path, Pyramid] = OrderedDict()
        self._max = max_photos
        self.max_pixels = max_pixels
        self.ready: queue.Queue[Path] = queue.Queue()  # paths whose pyramid grew

    def get(self, path: Path) -> Pyramid | None:
        with self._lock:
            pyramid = self._photos.get(path)
            if pyramid is not None:
                self._photos.move_to_end(path)
            return pyramid

    def request(self, path: Path) -> Pyramid:
        """Start decoding ``path`` unless it is decoded or under way; returns its pyramid."""
        with self._lock:
            pyramid = self._photos.get(path)
            if pyramid is None:
                pyramid = self._photos[path] = Pyramid(path)
                self._pool.submit(self._decode, pyramid)
                while len(self._photos) > self._max:
                    self._photos.popitem(last=False)
            self._photos.move_to_end(path)
            return pyramid

    def _decode(self, pyramid: Pyramid) -> None:
        try:
            preview, scale = open_reduced(pyramid.path, PREVIEW_SIDE, self.max_pixels)
            pyramid.levels = [(scale, preview)]
            pyramid.full_size = (round(preview.width / scale), round(preview.height / scale))
            self.ready.put(pyramid.path)
            if scale < 1.0:
                full = open_image(pyramid.path, self.max_pixels)
                pyramid.full_size = full.size
                levels = [(scale, preview)]
                if scale < 0.5 * 0.98:
                    levels.append((0.5, full.reduce(2)))
                levels.append((1.0, full))
                pyramid.levels = levels
            pyramid.complete = True
        except ImageError as exc:
            pyramid.error = exc
        except Exception as exc:  # report, never let a worker die silently
            pyramid.error = FileProblem(pyramid.path, f"cannot be shown: {exc}")
        self.ready.put(pyramid.path)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
