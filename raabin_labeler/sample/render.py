"""Drawing a Giemsa-stained smear as optical density, one object at a time.

Everything is painted as optical density (OD, Beer–Lambert): a stained object absorbs light
in proportion to its thickness, so where two red cells overlap the stain adds up and the
overlap is darker, as on a real slide. The photo is ``light · exp(-OD)`` (see camera.py).
Colours are the ones seen on May-Grünwald-Giemsa smears at 100× oil (pink-beige plasma,
salmon red cells with a pale centre, purple nuclei, sky-blue lymphocyte cytoplasm, orange
eosinophil granules), written as RGB over the plasma and turned into OD vectors here.

Each drawn white cell also returns its exact masks (signed distance < 0), which become the
ground truth: the box is the tight box of the cell mask, and the nucleus mask is the nucleus
shape before chromatin texture, so later issues measure against what was drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

#: Background (plasma/glass) colour of a well-lit Giemsa smear: pale pink-beige.
PLASMA_RGB = (238, 224, 218)


def stain(rgb: tuple[int, int, int], under: tuple[int, int, int] = PLASMA_RGB) -> np.ndarray:
    """The OD vector that turns ``under`` into ``rgb`` at full thickness."""
    return (-np.log(np.asarray(rgb, float) / np.asarray(under, float))).astype(np.float32)


PLASMA = stain(PLASMA_RGB, (252, 250, 248))
RBC = stain((218, 150, 146))
PLATELET_BODY = stain((216, 196, 226))
PLATELET_GRANULE = stain((132, 84, 166))
PRECIPITATE = stain((62, 42, 92))
DUST = stain((150, 120, 160))

NUCLEUS = {  # chromatin of each class: lymphocytes darkest, monocytes pale and lacy
    "neutrophil": stain((112, 62, 148)), "lymphocyte": stain((88, 50, 132)),
    "monocyte": stain((134, 96, 168)), "eosinophil": stain((118, 70, 152)),
    "basophil": stain((96, 58, 140)), "burst": stain((146, 104, 176)),
}
CYTOPLASM = {
    "neutrophil": stain((232, 208, 220)), "lymph.small": stain((150, 184, 226)),
    "lymph.large": stain((184, 204, 228)), "monocyte": stain((198, 194, 212)),
    "eosinophil": stain((236, 206, 200)), "basophil": stain((214, 192, 222)),
    "burst": stain((220, 196, 224)),
}
NEUTROPHIL_GRANULE = stain((210, 170, 206))
EOSINOPHIL_GRANULE = stain((232, 156, 128))
BASOPHIL_GRANULE = stain((58, 30, 92))
AZUROPHIL_GRANULE = stain((150, 90, 170))

EDGE_PX = 2.2  # width of a membrane's soft edge before the camera blur


# -- implicit shapes on a local grid ------------------------------------------------------
@dataclass
class Grid:
    """Pixel-centre coordinates of a square patch, origin at its centre pixel."""

    half: int

    def __post_init__(self) -> None:
        axis = np.arange(-self.half, self.half + 1, dtype=np.float32)
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape


def ellipse_sdf(g: Grid, cx: float, cy: float, a: float, b: float, theta: float = 0.0) -> np.ndarray:
    """Approximate signed distance to an ellipse (exact for circles), negative inside."""
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = g.x - cx, g.y - cy
    u, v = (dx * c + dy * s) / a, (-dx * s + dy * c) / b
    return (np.sqrt(u * u + v * v) - 1.0) * min(a, b)


def polyline_sdf(g: Grid, points: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
    """Distance to a chain of capsules through ``points`` (radius may vary per segment)."""
    radii = np.broadcast_to(np.asarray(radius, np.float32), (len(points) - 1,))
    out = np.full(g.shape, np.inf, np.float32)
    for (ax, ay), (bx, by), r in zip(points[:-1], points[1:], radii):
        px, py, vx, vy = g.x - ax, g.y - ay, bx - ax, by - ay
        t = np.clip((px * vx + py * vy) / max(vx * vx + vy * vy, 1e-6), 0.0, 1.0)
        np.minimum(out, np.hypot(px - t * vx, py - t * vy) - r, out=out)
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance noise with features about ``sigma`` pixels across."""
    field = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), sigma)
    return (field - field.mean()) / (field.std() + 1e-6)


def coverage(sdf: np.ndarray, soft: float = EDGE_PX) -> np.ndarray:
    """0..1 fill with a soft edge of ``soft`` pixels centred on the outline."""
    return np.clip(0.5 - sdf / soft, 0.0, 1.0)


def dots(rng: np.random.Generator, where: np.ndarray, count: int, sigma: float,
         strength: tuple[float, float] = (0.7, 1.0)) -> np.ndarray:
    """Round granules of peak about 1 at ``count`` random pixels of the mask ``where``."""
    ys, xs = np.nonzero(where)
    impulses = np.zeros(where.shape, np.float32)
    if len(ys) and count > 0:
        pick = rng.integers(0, len(ys), count)
        np.add.at(impulses, (ys[pick], xs[pick]), rng.uniform(*strength, count).astype(np.float32))
    return cv2.GaussianBlur(impulses, (0, 0), sigma) * (2 * np.pi * sigma * sigma)


def _ring_points(rng: np.random.Generator, n: int, radius: float, start: float, span: float,
                 jitter: float) -> np.ndarray:
    angles = start + np.linspace(0, span, n)
    r = radius * (1 + rng.uniform(-jitter, jitter, n))
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1).astype(np.float32)


# -- sprites ------------------------------------------------------------------------------
@dataclass
class Sprite:
    """An object's OD patch; ``cx, cy`` is where its centre pixel goes in the region."""

    od: np.ndarray  # (h, w, 3) float32
    cx: int
    cy: int

    @property
    def origin(self) -> tuple[int, int]:
        h, w = self.od.shape[:2]
        return self.cx - w // 2, self.cy - h // 2


@dataclass
class CellSprite(Sprite):
    """A white cell (or burst cell, or stain spot) with its truth mask: 0, 128, 255."""

    mask: np.ndarray  # (h, w) uint8


def paint(od: np.ndarray, sprite: Sprite) -> None:
    """Add a sprite's density into the region (clipped at the region's edges)."""
    x0, y0 = sprite.origin
    h, w = sprite.od.shape[:2]
    H, W = od.shape[:2]
    sx1, sy1, sx2, sy2 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if sx2 > sx1 and sy2 > sy1:
        od[sy1:sy2, sx1:sx2] += sprite.od[sy1 - y0:sy2 - y0, sx1 - x0:sx2 - x0]


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Plasma with slow thickness changes and a faint grain, as OD of the whole region."""
    coarse = smooth_noise(rng, (height // 32 + 4, width // 32 + 4), 2.0)
    slow = cv2.resize(coarse, None, fx=32, fy=32, interpolation=cv2.INTER_CUBIC)[:height, :width]
    grain = smooth_noise(rng, (height, width), 1.5)
    thickness = 1.0 + 0.35 * slow + 0.08 * grain
    return thickness[..., None] * PLASMA


def red_cell(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A biconcave disc seen from above: dense rim, pale centre, slightly oval, soft edge."""
    g = Grid(int(radius * 1.15) + 4)
    a, b = radius, radius * rng.uniform(0.84, 1.0)
    sdf = ellipse_sdf(g, 0, 0, a, b, rng.uniform(0, np.pi))
    sdf = sdf + 1.2 * smooth_noise(rng, g.shape, radius * 0.3)
    r = np.clip(1 + sdf / min(a, b), 0, None)  # ≈ normalised radius
    pallor = rng.uniform(0.22, 0.5)  # central pallor: about a third of the diameter
    rise = np.clip((r - pallor) / 0.38, 0, 1)
    thickness = 0.22 + 0.78 * rise * rise * (3 - 2 * rise) + 0.1 * np.exp(-((r - 0.92) / 0.05) ** 2)
    density = coverage(sdf, 2.5) * thickness * rng.uniform(0.85, 1.12)
    return density[..., None] * RBC


def platelet(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A small lilac disc with a purple granular centre (granulomere)."""
    g = Grid(int(radius * 1.6) + 4)
    sdf = ellipse_sdf(g, 0, 0, radius, radius * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi))
    sdf = sdf + radius * 0.25 * smooth_noise(rng, g.shape, radius * 0.35)
    body = coverage(sdf, 1.8)
    grains = dots(rng, sdf < -radius * 0.25, int(radius * 1.2) + 3, 1.3) * body
    return body[..., None] * PLATELET_BODY + np.clip(grains, 0, 1.4)[..., None] * PLATELET_GRANULE


def dust(rng: np.random.Generator) -> np.ndarray:
    """A tiny speck on the slide: too small to be mistaken for a cell."""
    g = Grid(8)
    sdf = ellipse_sdf(g, 0, 0, rng.uniform(1.5, 4), rng.uniform(1.2, 3), rng.uniform(0, np.pi))
    return coverage(sdf, 1.5)[..., None] * DUST * rng.uniform(0.5, 1.2)


# -- white cells ----------------------------------------------------------------------------
@dataclass
class Parts:
    """What a class drawer returns: signed distances and the OD painted over them."""

    cell: np.ndarray  # signed distance of the whole cell
    nucleus: np.ndarray | None  # signed distance of the nucleus (None: no nucleus in truth)
    od: np.ndarray


def _membrane(rng: np.random.Generator, g: Grid, radius: float, wobble: float = 1.5) -> np.ndarray:
    sdf = ellipse_sdf(g, 0, 0, radius, radius * rng.uniform(0.9, 1.0), rng.uniform(0, np.pi))
    return sdf + wobble * smooth_noise(rng, g.shape, radius * 0.25)


def _chromatin(rng: np.random.Generator, g: Grid, nucleus_sdf: np.ndarray, clump: float,
               grain: float = 2.5) -> np.ndarray:
    """Nucleus density: clumped chromatin with a darker rim (heterochromatin at the envelope)."""
    texture = 1 + clump * smooth_noise(rng, g.shape, grain) + 0.5 * clump * smooth_noise(rng, g.shape, grain * 3)
    rim = 0.15 * np.exp(-((nucleus_sdf + 2.5) / 2.5) ** 2)
    return coverage(nucleus_sdf) * np.clip(texture + rim, 0.3, 1.8)


def _lobe_chain(rng: np.random.Generator, g: Grid, radius: float, lobes: int) -> np.ndarray:
    """3–5 round lobes around the centre, linked by thin chromatin strands."""
    centres = _ring_points(rng, lobes, radius * 0.34, rng.uniform(0, 2 * np.pi),
                           np.deg2rad(rng.uniform(200, 290)), 0.2)
    sdf = polyline_sdf(g, centres, radius * rng.uniform(0.025, 0.04))
    for cx, cy in centres:
        size = radius * rng.uniform(0.27, 0.34)
        sdf = np.minimum(sdf, ellipse_sdf(g, cx, cy, size, size * rng.uniform(0.7, 0.95), rng.uniform(0, np.pi)))
    return sdf


def _kidney(g: Grid, a: float, b: float, theta: float, notch: float, notch_at: float) -> np.ndarray:
    """An oval with a round bite out of one long side: the bean/kidney nucleus."""
    body = ellipse_sdf(g, 0, 0, a, b, theta)
    nx, ny = np.cos(theta + np.pi / 2) * b * notch_at, np.sin(theta + np.pi / 2) * b * notch_at
    bite = ellipse_sdf(g, nx, ny, a * notch, b * notch * 0.8, theta)
    return np.maximum(body, -bite)


def _cytoplasm(cell: np.ndarray, kind: str, density: float) -> np.ndarray:
    return (coverage(cell) * density)[..., None] * CYTOPLASM[kind]


def neutrophil(rng: np.random.Generator, radius: float, stage: str) -> Parts:
    g = Grid(int(radius * 1.25) + 6)
    cell = _membrane(rng, g, radius)
    if stage == "mature":
        nucleus = _lobe_chain(rng, g, radius, int(rng.integers(3, 6)))
    elif stage == "band":  # a C/U-shaped band of even width
        centres = _ring_points(rng, 9, radius * rng.uniform(0.4, 0.48), rng.uniform(0, 2 * np.pi),
                               np.deg2rad(rng.uniform(190, 260)), 0.04)
        nucleus = polyline_sdf(g, centres, radius * rng.uniform(0.16, 0.2))
    else:  # meta: kidney/bean
        theta = rng.uniform(0, np.pi)
        nucleus = _kidney(g, radius * 0.62, radius * 0.44, theta, 0.5, 1.0)
        nucleus = np.maximum(nucleus, cell + radius * 0.12)
    nucleus = nucleus + 1.0 * smooth_noise(rng, g.shape, 3)
    fine = dots(rng, cell < -2, int(radius * radius * 0.25), 0.7, (0.2, 0.6))
    od = (_cytoplasm(cell, "neutrophil", rng.uniform(0.9, 1.15))
          + (fine * coverage(cell))[..., None] * NEUTROPHIL_GRANULE
          + _chromatin(rng, g, nucleus, 0.28)[..., None] * NUCLEUS["neutrophil"])
    return Parts(cell, nucleus, od)


def lymphocyte(rng: np.random.Generator, radius: float, size: str) -> Parts:
    g = Grid(int(radius * 1.25) + 6)
    cell = _membrane(rng, g, radius, 1.0)
    fill = rng.uniform(0.8, 0.88) if size == "small" else rng.uniform(0.58, 0.7)
    shift = radius * (1 - fill) * rng.uniform(0.2, 0.9)
    angle = rng.uniform(0, 2 * np.pi)
    nr = radius * fill
    nucleus = ellipse_sdf(g, shift * np.cos(angle), shift * np.sin(angle), nr, nr * rng.uniform(0.88, 1.0),
                          rng.uniform(0, np.pi))
    if size == "large" and rng.random() < 0.5:  # slight indentation, common in large lymphocytes
        nucleus = np.maximum(nucleus, -ellipse_sdf(g, (shift + nr * 1.1) * np.cos(angle + 2.0),
                                                   (shift + nr * 1.1) * np.sin(angle + 2.0), nr * 0.35, nr * 0.35))
    nucleus = np.maximum(nucleus, cell + 1.5) + 0.8 * smooth_noise(rng, g.shape, 4)
    hof = 1 - 0.35 * np.exp(-((nucleus - 4) / 4) ** 2)  # pale perinuclear zone
    kind = "lymph.small" if size == "small" else "lymph.large"
    cyto = coverage(cell) * hof * rng.uniform(0.9, 1.15) * (1 + 0.25 * np.clip(-cell / radius, 0, 1))
    od = cyto[..., None] * CYTOPLASM[kind] + _chromatin(rng, g, nucleus, 0.35, 2.0)[..., None] * NUCLEUS["lymphocyte"]
    if size == "large" and rng.random() < 0.5:  # a few azurophil granules (large granular lymphocyte)
        od += (dots(rng, (cell < -3) & (nucleus > 3), int(rng.integers(4, 12)), 1.6) * coverage(cell))[..., None] \
            * AZUROPHIL_GRANULE
    return Parts(cell, nucleus, od)


def monocyte(rng: np.random.Generator, radius: float) -> Parts:
    g = Grid(int(radius * 1.25) + 6)
    cell = _membrane(rng, g, radius, 2.5)
    theta = rng.uniform(0, np.pi)
    if rng.random() < 0.5:  # kidney
        nucleus = _kidney(g, radius * 0.62, radius * 0.45, theta, rng.uniform(0.45, 0.6), 1.0)
    else:  # folded horseshoe
        centres = _ring_points(rng, 7, radius * 0.3, rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(150, 210)), 0.08)
        nucleus = polyline_sdf(g, centres, radius * rng.uniform(0.24, 0.3))
    shift = radius * 0.12
    dx, dy = int(shift * np.cos(theta)), int(shift * np.sin(theta))
    nucleus = np.roll(nucleus, (dy, dx), axis=(0, 1))
    nucleus = np.maximum(nucleus, cell + radius * 0.08) + 1.5 * smooth_noise(rng, g.shape, 5)
    vacuoles = np.zeros(g.shape, np.float32)
    for _ in range(int(rng.integers(3, 9))):
        ys, xs = np.nonzero((cell < -6) & (nucleus > 4))
        if not len(ys):
            break
        k = rng.integers(len(ys))
        size = rng.uniform(2.5, 6.5)
        vacuoles = np.maximum(vacuoles, coverage(ellipse_sdf(g, xs[k] - g.half, ys[k] - g.half, size, size), 1.5))
    cyto = coverage(cell) * rng.uniform(0.95, 1.15) * (1 - 0.75 * vacuoles) * (1 + 0.12 * smooth_noise(rng, g.shape, 2))
    azure = dots(rng, cell < -3, int(radius * radius * 0.03), 0.8, (0.2, 0.5)) * coverage(cell)
    od = (cyto[..., None] * CYTOPLASM["monocyte"] + azure[..., None] * AZUROPHIL_GRANULE
          + _chromatin(rng, g, nucleus, 0.22, 1.6)[..., None] * NUCLEUS["monocyte"])
    return Parts(cell, nucleus, od)


def eosinophil(rng: np.random.Generator, radius: float) -> Parts:
    g = Grid(int(radius * 1.25) + 6)
    cell = _membrane(rng, g, radius)
    nucleus = _lobe_chain(rng, g, radius * 1.1, 2) + 1.0 * smooth_noise(rng, g.shape, 3)
    inside = coverage(cell)
    granules = dots(rng, cell < -2, int(radius * radius * 0.14), rng.uniform(2.0, 2.4), (0.5, 1.0))
    od = (inside[..., None] * CYTOPLASM["eosinophil"]
          + (np.clip(granules, 0, 1.2) * inside)[..., None] * EOSINOPHIL_GRANULE
          + _chromatin(rng, g, nucleus, 0.25)[..., None] * NUCLEUS["eosinophil"])
    return Parts(cell, nucleus, od)


def basophil(rng: np.random.Generator, radius: float) -> Parts:
    """Dark granules cover the nucleus, so the truth mask is whole-cell only (FORMAT.md)."""
    g = Grid(int(radius * 1.25) + 6)
    cell = _membrane(rng, g, radius, 2.0)
    hidden = _lobe_chain(rng, g, radius * 0.9, 2)
    inside = coverage(cell)
    granules = dots(rng, cell < -1, int(radius * radius * 0.11), rng.uniform(2.3, 3.0), (0.5, 1.0))
    od = (inside[..., None] * CYTOPLASM["basophil"]
          + (coverage(hidden) * 0.6)[..., None] * NUCLEUS["basophil"]
          + (np.clip(granules, 0, 1.5) * inside)[..., None] * BASOPHIL_GRANULE * 0.85)
    return Parts(cell, None, od)


def _streaks(rng: np.random.Generator, g: Grid, size: float, angle: float) -> np.ndarray:
    """Noise drawn out along ``angle``: the fibrillar look of smeared chromatin."""
    raw = rng.standard_normal(g.shape, dtype=np.float32)
    long = cv2.GaussianBlur(raw, (0, 0), sigmaX=size * 0.05, sigmaY=1.8)
    turn = cv2.getRotationMatrix2D((g.half, g.half), np.rad2deg(angle), 1.0)
    long = cv2.warpAffine(long, turn, g.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return (long - long.mean()) / (long.std() + 1e-6)


def burst(rng: np.random.Generator, radius: float) -> Parts:
    """A smudge cell: ruptured, its chromatin smeared into a pale irregular purple net."""
    g = Grid(int(radius * 1.45) + 6)
    angle = rng.uniform(0, np.pi)
    cell = ellipse_sdf(g, 0, 0, radius * 1.1, radius * rng.uniform(0.65, 0.85), angle)
    cell = cell + radius * 0.1 * smooth_noise(rng, g.shape, radius * 0.3)
    streak = _streaks(rng, g, radius, angle)
    core = ellipse_sdf(g, rng.uniform(-0.15, 0.15) * radius, rng.uniform(-0.15, 0.15) * radius,
                       radius * 0.8, radius * 0.55, angle)
    nucleus = np.maximum(core + radius * 0.12 * smooth_noise(rng, g.shape, radius * 0.2) - 1.5 * streak, cell + 3)
    inside = coverage(cell, 4.0)
    blotch = smooth_noise(rng, g.shape, radius * 0.08)
    chrom = coverage(nucleus, 3.0) * np.clip(0.7 + 0.18 * streak + 0.22 * blotch, 0.2, 1.5)
    od = (inside * 0.6)[..., None] * CYTOPLASM["burst"] + chrom[..., None] * NUCLEUS["burst"]
    return Parts(cell, nucleus, od)


def stain_spot(rng: np.random.Generator, radius: float) -> Parts:
    """Stain precipitate: a few dark irregular crystals and specks; no nucleus in truth."""
    g = Grid(int(radius * 1.3) + 6)
    sdf = np.full(g.shape, np.inf, np.float32)
    for i in range(int(rng.integers(3, 8))):
        r = radius * (rng.uniform(0.3, 0.55) if i == 0 else rng.uniform(0.08, 0.3))
        d = 0 if i == 0 else radius * rng.uniform(0.3, 0.85)
        t = rng.uniform(0, 2 * np.pi)
        blob = ellipse_sdf(g, d * np.cos(t), d * np.sin(t), r, r * rng.uniform(0.4, 0.9), rng.uniform(0, np.pi))
        sdf = np.minimum(sdf, blob + r * 0.35 * smooth_noise(rng, g.shape, max(1.5, r * 0.25)))
    density = coverage(sdf, 1.2) * np.clip(1 + 0.25 * smooth_noise(rng, g.shape, 2), 0.5, 1.5)
    od = density[..., None] * PRECIPITATE * rng.uniform(0.75, 1.05)
    return Parts(sdf, None, od)


DRAWERS: dict[str, Callable[[np.random.Generator, float], Parts]] = {
    "neutrophil.mature": lambda rng, r: neutrophil(rng, r, "mature"),
    "neutrophil.band": lambda rng, r: neutrophil(rng, r, "band"),
    "neutrophil.meta": lambda rng, r: neutrophil(rng, r, "meta"),
    "lymphocyte.small": lambda rng, r: lymphocyte(rng, r, "small"),
    "lymphocyte.large": lambda rng, r: lymphocyte(rng, r, "large"),
    "monocyte": monocyte,
    "eosinophil": eosinophil,
    "basophil": basophil,
    "burst": burst,
    "artifact": stain_spot,
}


def white_cell(label: str, diameter: float, seed: int, cx: int, cy: int) -> CellSprite:
    """Draw one truth cell of class ``label``; its mask is exact (0, 128 cell, 255 nucleus)."""
    parts = DRAWERS[label](np.random.default_rng(seed), diameter / 2)
    mask = np.where(parts.cell < 0, 128, 0).astype(np.uint8)
    if parts.nucleus is not None:
        mask[(parts.nucleus < 0) & (parts.cell < 0)] = 255
    return CellSprite(parts.od.astype(np.float32), cx, cy, mask)
