"""The paper's hash thumbnails: our matrix-product LANCZOS must be Pillow's, pixel for pixel."""
import numpy as np
import pytest
from PIL import Image

from raabin_labeler.core.lanczos import _clip8, reduce_square


def pillow(gray: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize((side, side), Image.Resampling.LANCZOS), np.float64)


@pytest.mark.parametrize("side", [1, 5, 8, 31, 32, 33, 110, 257, 575, 1200])
def test_square_thumbnails_equal_pillows(side):
    rng = np.random.default_rng(side)
    for gray in (rng.integers(0, 256, (side, side), dtype=np.uint8),  # noise: every tap matters
                 np.full((side, side), 255, np.uint8),  # the clip at 255 (negative lobes overshoot)
                 np.tile(np.arange(side, dtype=np.uint8) % 2 * 255, (side, 1))):  # stripes: ringing
        small, large = reduce_square(gray, (8, 32))
        np.testing.assert_array_equal(small, pillow(gray, 8))
        np.testing.assert_array_equal(large, pillow(gray, 32))


def test_other_shapes_are_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="square"):
        reduce_square(np.zeros((40, 60), np.uint8), (8,))


def test_rounding_ties_go_up_as_in_pillow():
    """Pillow rounds (sum + 2²¹) >> 22, ties up; a plain nearest-even conversion would not."""
    step = 2.0 ** -22  # sums are multiples of this once divided by 2²²
    sums = np.array([[0.5, 2.5, 254.5, -0.5, -1.5, 0.5 - step, 255.5, 300.0]])
    np.testing.assert_array_equal(_clip8(sums), [[1, 3, 255, 0, 0, 0, 255, 255]])
