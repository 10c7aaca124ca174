"""Two "cameras" that photograph the same slide differently.

Real datasets mix cameras (Raabin-WBC used two phones on two microscopes), so the same field
looks different in colour cast, sharpness and noise. Each camera turns the slide's optical
density into an 8-bit photo with its own white balance, vignetting, blur and sensor noise;
the geometry is untouched, so a cell keeps its exact position in both photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LIGHT = np.array([252, 250, 248], np.float32)


@dataclass(frozen=True)
class Camera:
    key: str  # folder name under images/
    name: str  # written to the acquisition record
    cast: tuple[float, float, float]  # white-balance gain per channel
    exposure: float
    vignette: float  # light lost in the corners, 0..1
    blur: float  # Gaussian sigma in pixels (focus and optics)
    noise: float  # sensor noise, 8-bit units at mid-grey
    chroma_noise: float  # colour blotches of phone sensors, 8-bit units


CAMERAS = (
    Camera("cam-a", "Samsung Galaxy S5", (1.02, 0.985, 0.95), 1.0, 0.18, 0.8, 2.0, 0.8),
    Camera("cam-b", "LG G3", (0.95, 0.975, 1.04), 0.96, 0.34, 1.5, 3.5, 2.2),
)


def camera(key: str) -> Camera:
    return next(c for c in CAMERAS if c.key == key)


def photograph(od: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 photo of an OD field (``od`` is (h, w, 3), not modified)."""
    h, w = od.shape[:2]
    off_x, off_y = (float(v) for v in rng.uniform(-0.08, 0.08, 2))  # the lamp is never centred exactly
    xs = (np.arange(w, dtype=np.float32) / w - 0.5 - off_x) ** 2
    ys = (np.arange(h, dtype=np.float32) / h - 0.5 - off_y) ** 2
    falloff = 1 - cam.vignette * (ys[:, None] + xs[None, :]) / 0.5
    light = LIGHT * np.asarray(cam.cast, np.float32) * np.float32(cam.exposure)
    image = np.exp(-od.astype(np.float32)) * light * falloff[..., None]
    image = cv2.GaussianBlur(image, (0, 0), cam.blur)
    shot = np.sqrt(np.clip(image, 1, None) / np.float32(128))  # noise grows with brightness (shot noise)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(cam.noise) * shot
    if cam.chroma_noise:
        blotch = cv2.GaussianBlur(rng.standard_normal(image.shape, dtype=np.float32), (0, 0), 1.5)
        image += blotch * np.float32(cam.chroma_noise * 2.5)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
