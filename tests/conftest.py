"""Shared fixtures: the real data beside the checkout, and small synthetic photos."""
from __future__ import annotations

from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BCCD = SHARED_DATA / "bccd"


@pytest.fixture
def bccd() -> Path:
    if not (BCCD / "JPEGImages").is_dir():
        pytest.fail(f"real data missing at {BCCD}: CI and developers have ../shared/data beside the checkout")
    return BCCD


def write_photo(path: Path, width: int = 320, height: int = 240, seed: int = 0, **save) -> Path:
    """A small noisy photo; content is irrelevant, only size and decodability matter."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save)
    return path


@pytest.fixture
def make_photo():
    return write_photo


class SyncExecutor(Executor):
    """Runs each job at submit time, so a test sees the save happen in its own thread."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future
