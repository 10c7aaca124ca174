"""The layout of the synthetic slide: which fields are photographed and where every cell lies.

The slide is cut into independent *regions*. A region is photographed once, or twice with
the two fields overlapping (the second often by the other camera), so a white cell in the
overlap appears in both photos: a true duplicate, with a known offset between the photos.
The plan is pure geometry and seeds; nothing is drawn here, so it is cheap to inspect.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.annotation import Box
from .render import DRAWERS, CellSprite

LABELS = tuple(DRAWERS)  # every truth class: the taxonomy's leaves except not_recognized

#: Diameters on a dried smear in µm (textbook ranges, e.g. Bain, *Blood Cells*; smudge cells spread wider).
DIAMETER_UM = {
    "neutrophil.mature": (11.0, 13.0), "neutrophil.band": (11.0, 13.0), "neutrophil.meta": (12.0, 14.0),
    "lymphocyte.small": (9.5, 10.5), "lymphocyte.large": (12.5, 15.0), "monocyte": (15.0, 18.0),
    "eosinophil": (12.0, 14.0), "basophil": (10.5, 12.5), "burst": (13.0, 17.0), "artifact": (5.0, 9.0),
}
#: After one of each class, how often each appears (a normal differential, enriched in rare classes).
WEIGHTS = {
    "neutrophil.mature": 6, "neutrophil.band": 2, "neutrophil.meta": 1, "lymphocyte.small": 4,
    "lymphocyte.large": 2, "monocyte": 2, "eosinophil": 1.5, "basophil": 1, "burst": 1.5, "artifact": 1.5,
}
SMEARS = (("S01", "normal"), ("S02", "bacterial infection"))
MICROSCOPE = "Olympus CX18"
RBC_DIAMETER_UM = 7.4
#: Camera pairs of the duplicate regions, in turn: across cameras mostly, sometimes the same one twice.
PAIR_CAMERAS = (("cam-a", "cam-b"), ("cam-b", "cam-a"), ("cam-a", "cam-a"), ("cam-b", "cam-b"))


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 7
    photos: int = 14
    width: int = 1600
    height: int = 1200
    px_per_um: float = 14.0  # 100× oil on a phone camera: a neutrophil is ~170 px across
    quality: int = 88


@dataclass(frozen=True)
class Field:
    """One photo: a ``width×height`` window of its region at ``x, y``."""

    image: str  # path under images/, e.g. cam-a/field-03.jpg
    camera: str
    x: int
    y: int
    width: int
    height: int

    def contains(self, cx: float, cy: float, margin: float) -> bool:
        """True when a disc of radius ``margin`` around the point lies wholly inside."""
        return (self.x + margin <= cx <= self.x + self.width - margin
                and self.y + margin <= cy <= self.y + self.height - margin)

    def misses(self, cx: float, cy: float, margin: float) -> bool:
        """True when a disc of radius ``margin`` around the point lies wholly outside."""
        return (cx < self.x - margin or cx > self.x + self.width + margin
                or cy < self.y - margin or cy > self.y + self.height + margin)


@dataclass(frozen=True)
class PlannedCell:
    """A physical truth cell: one per cell on the slide, however many photos show it."""

    physical: str  # e.g. S01-07; the truth files record it as "physical_cell"
    label: str
    cx: int
    cy: int
    diameter: float
    seed: int

    @property
    def reach(self) -> float:
        """A radius that surely holds the drawn cell (membrane wobble, smudges)."""
        return self.diameter * (0.72 if self.label == "burst" else 0.56) + 4


@dataclass
class Region:
    """A patch of slide drawn once; its fields (photos) are windows on it."""

    name: str
    smear: str
    diagnosis: str
    width: int
    height: int
    seed: int
    fields: list[Field]
    cells: list[PlannedCell] = field(default_factory=list)
    red_cells: list[tuple[int, int, float]] = field(default_factory=list)
    platelets: list[tuple[int, int, float]] = field(default_factory=list)
    specks: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class SamplePlan:
    config: SampleConfig
    regions: list[Region]

    def fields(self) -> list[tuple[Region, Field]]:
        return [(region, f) for region in self.regions for f in region.fields]

    def labels(self) -> set[str]:
        return {cell.label for region in self.regions for cell in region.cells}


class _Deck:
    """Class labels in a random order that shows every class before repeating any."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.pending = [LABELS[i] for i in rng.permutation(len(LABELS))]
        weights = np.array([WEIGHTS[label] for label in LABELS])
        self.weights = weights / weights.sum()

    def draw(self) -> str:
        if self.pending:
            return self.pending.pop(0)
        return LABELS[int(self.rng.choice(len(LABELS), p=self.weights))]

    def put_back(self, label: str) -> None:
        self.pending.insert(0, label)


def _region_sizes(photos: int) -> list[int]:
    """2, 1, 2, 1, …: about two thirds of the photos overlap another one."""
    sizes: list[int] = []
    while sum(sizes) < photos:
        sizes.append(min(2 if len(sizes) % 2 == 0 else 1, photos - sum(sizes)))
    return sizes


def plan_sample(config: SampleConfig) -> SamplePlan:
    """Lay out every region, cell, red cell and platelet of the sample; deterministic."""
    if config.photos < 1:
        raise ValueError("a sample needs at least one photo")
    rng = np.random.default_rng([config.seed, 0])
    deck = _Deck(rng)
    counters = {"cam-a": 0, "cam-b": 0}
    regions: list[Region] = []
    sizes = _region_sizes(config.photos)
    pairs = singles = 0
    for index, size in enumerate(sizes):
        smear, diagnosis = SMEARS[0] if index < (len(sizes) + 1) // 2 else SMEARS[1]
        if size == 2:
            cameras = PAIR_CAMERAS[pairs % len(PAIR_CAMERAS)]
            pairs += 1
        else:
            cameras = ("cam-a" if singles % 2 == 0 else "cam-b",)
            singles += 1
        names = []
        for cam in cameras:
            counters[cam] += 1
            names.append(f"{cam}/field-{counters[cam]:02d}.jpg")
        region = _region(config, rng, f"{smear}-r{index + 1:02d}", smear, diagnosis, cameras, names)
        _place_cells(config, rng, region, deck)
        _place_blood(config, rng, region)
        regions.append(region)
    return SamplePlan(config, regions)


def _region(config: SampleConfig, rng: np.random.Generator, name: str, smear: str, diagnosis: str,
            cameras: tuple[str, ...], names: list[str]) -> Region:
    w, h = config.width, config.height
    if len(cameras) == 1:
        fields = [Field(names[0], cameras[0], 0, 0, w, h)]
        return Region(name, smear, diagnosis, w, h, int(rng.integers(2**31)), fields)
    dx = int(w * rng.uniform(0.25, 0.42)) * int(rng.choice([-1, 1]))
    dy = int(h * rng.uniform(0.08, 0.3)) * int(rng.choice([-1, 1]))
    x0, y0 = max(0, -dx), max(0, -dy)
    fields = [Field(names[0], cameras[0], x0, y0, w, h), Field(names[1], cameras[1], x0 + dx, y0 + dy, w, h)]
    return Region(name, smear, diagnosis, w + abs(dx), h + abs(dy), int(rng.integers(2**31)), fields)


def _fits(region: Region, cell: PlannedCell, home: Field, counts_left: dict[str, int],
          rng: np.random.Generator) -> bool:
    if not home.contains(cell.cx, cell.cy, cell.reach):
        return False
    for other in region.cells:  # white cells rarely touch on a good monolayer
        if np.hypot(other.cx - cell.cx, other.cy - cell.cy) < (other.reach + cell.reach) * 1.1 + 20:
            return False
    for f in region.fields:
        inside = f.contains(cell.cx, cell.cy, 0)
        if inside and counts_left[f.image] <= 0:
            return False
        cut = not f.contains(cell.cx, cell.cy, cell.reach) and not f.misses(cell.cx, cell.cy, cell.reach)
        if f is not home and cut and rng.random() > 0.2:  # a few cut by the other photo's edge, as in real series
            return False
    return True


def _place_cells(config: SampleConfig, rng: np.random.Generator, region: Region, deck: _Deck) -> None:
    """2–4 truth cells per photo; in an overlapping pair, 1–2 of them in the overlap."""
    limit = {f.image: 4 for f in region.fields}
    targets = {f.image: int(rng.integers(2, 5)) for f in region.fields}

    def counts_left() -> dict[str, int]:
        return {f.image: limit[f.image] - sum(f.contains(c.cx, c.cy, 0) for c in region.cells)
                for f in region.fields}

    def place(home: Field, inside_all: bool) -> bool:
        label = deck.draw()
        lo, hi = DIAMETER_UM[label]
        diameter = rng.uniform(lo, hi) * config.px_per_um
        for _ in range(300):
            cell = PlannedCell(f"{region.name}-c{len(region.cells) + 1}", label,
                               int(rng.integers(home.x, home.x + home.width)),
                               int(rng.integers(home.y, home.y + home.height)),
                               round(float(diameter), 2), int(rng.integers(2**31)))
            if inside_all and not all(f.contains(cell.cx, cell.cy, cell.reach) for f in region.fields):
                continue
            if _fits(region, cell, home, counts_left(), rng):
                region.cells.append(cell)
                return True
        deck.put_back(label)
        return False

    if len(region.fields) == 2:
        for _ in range(int(rng.integers(1, 3))):
            place(region.fields[0], inside_all=True)
    for home in region.fields:
        for _ in range(40):
            shown = sum(home.contains(c.cx, c.cy, 0) for c in region.cells)
            if shown >= targets[home.image]:
                break
            place(home, inside_all=False)


def _place_blood(config: SampleConfig, rng: np.random.Generator, region: Region) -> None:
    """Red cells by dart throwing (touching, partly overlapping), platelets, some clumped."""
    scale = config.px_per_um
    mean_r = RBC_DIAMETER_UM / 2 * scale
    area = region.width * region.height
    wanted = int(area / (np.pi * mean_r ** 2) * 1.15)
    tries = wanted * 10
    cand_x = rng.uniform(-mean_r, region.width + mean_r, tries)
    cand_y = rng.uniform(-mean_r, region.height + mean_r, tries)
    cand_r = rng.normal(mean_r, mean_r * 0.07, tries)
    wbc = np.array([(c.cx, c.cy, c.diameter / 2, 0.3 if c.label == "artifact" else 0.8) for c in region.cells]
                   ).reshape(-1, 4)
    clear = np.ones(tries, bool)  # red cells keep off the white cells (they may touch an edge)
    for cx, cy, radius, keep in wbc:
        clear &= np.hypot(cand_x - cx, cand_y - cy) >= radius + keep * cand_r
    cell = 2 * mean_r  # spatial hash: neighbours closer than 0.74·(r1+r2) lie in adjacent cells
    grid: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    placed: list[tuple[int, int, float]] = []
    for x, y, r in zip(cand_x[clear], cand_y[clear], cand_r[clear]):
        if len(placed) >= wanted:
            break
        gx, gy = int(x // cell), int(y // cell)
        if any((x - ox) ** 2 + (y - oy) ** 2 < (0.74 * (r + orr)) ** 2
               for i in (-1, 0, 1) for j in (-1, 0, 1) for ox, oy, orr in grid.get((gx + i, gy + j), ())):
            continue
        grid.setdefault((gx, gy), []).append((x, y, r))
        placed.append((int(x), int(y), float(r)))
    region.red_cells = placed
    for _ in range(int(area / 1.9e6 * 14)):
        x, y = rng.uniform(0, region.width), rng.uniform(0, region.height)
        clump = int(rng.integers(3, 8)) if rng.random() < 0.25 else 1
        for _ in range(clump):
            jitter = rng.normal(0, 2.2 * scale, 2) if clump > 1 else (0, 0)
            px, py = x + jitter[0], y + jitter[1]
            radius = float(rng.uniform(0.8, 1.25) * scale)
            if not len(wbc) or np.all(np.hypot(wbc[:, 0] - px, wbc[:, 1] - py) > wbc[:, 2] + 2 * radius):
                region.platelets.append((int(px), int(py), radius))
    region.specks = [(int(rng.uniform(0, region.width)), int(rng.uniform(0, region.height)))
                     for _ in range(int(area / 1.9e6 * 12))]


@dataclass(frozen=True)
class TruthCell:
    """What one photo shows of a physical cell: its tight box and its mask in that box."""

    planned: PlannedCell
    box: Box
    mask: np.ndarray  # uint8, box-sized: 0 background, 128 cytoplasm, 255 nucleus
    visible: float  # fraction of the cell inside the photo


#: A cell cut so far by the photo's edge that less than this shows is not in the truth: no
#: expert could label it (issue 2: truth is what detection and dedup are scored against).
MIN_VISIBLE = 0.3


def visible_part(planned: PlannedCell, sprite: CellSprite, f: Field) -> TruthCell | None:
    """The truth record of ``planned`` in photo ``f``, or None if it is (nearly) out of view."""
    x0, y0 = sprite.origin
    x0, y0 = x0 - f.x, y0 - f.y  # the sprite's corner in photo coordinates
    h, w = sprite.mask.shape
    sx1, sy1, sx2, sy2 = max(0, x0), max(0, y0), min(f.width, x0 + w), min(f.height, y0 + h)
    if sx2 <= sx1 or sy2 <= sy1:
        return None
    seen = sprite.mask[sy1 - y0:sy2 - y0, sx1 - x0:sx2 - x0]
    total = int(np.count_nonzero(sprite.mask))
    shown = int(np.count_nonzero(seen))
    if not total or shown / total < MIN_VISIBLE:
        return None
    rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
    r1, r2, c1, c2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = Box(int(sx1 + c1), int(sy1 + r1), int(sx1 + c2), int(sy1 + r2))
    return TruthCell(planned, box, np.ascontiguousarray(seen[r1:r2, c1:c2]), round(shown / total, 3))
