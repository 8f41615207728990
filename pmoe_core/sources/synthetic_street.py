"""Random street scenes made of a few primitives, for synthetic LiDAR scans in the raw formats of outdoor datasets.

World frame: z up, the road runs along x, ground at z = 0. Ground regions by |y|: road, curb, sidewalk, terrain.
Buildings line both sides; trees (trunk + crown), poles with signs, bushes, cars, trucks, pedestrians and cyclists
(a rider over a bicycle) stand on top. Each primitive has a generic `kind` that the per-dataset writers map to
their own raw label ids, and an instance id (0 for stuff).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("road", "curb", "sidewalk", "terrain", "building", "vegetation", "trunk", "pole", "sign", "car", "truck",
         "pedestrian", "cyclist", "bicycle", "other")
ROAD_HALF_WIDTH = 3.5
CURB_WIDTH = 0.25
SIDEWALK_OUTER = 6.5


@dataclass(frozen=True)
class Box:
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float
    kind: str
    instance: int = 0


@dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder from z0 to z1."""

    x: float
    y: float
    radius: float
    z0: float
    z1: float
    kind: str
    instance: int = 0


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    kind: str
    instance: int = 0


@dataclass
class Street:
    primitives: list[Box | Cylinder | Sphere] = field(default_factory=list)

    def add(self, primitive: Box | Cylinder | Sphere) -> None:
        self.primitives.append(primitive)


def ground_kind(y: np.ndarray) -> np.ndarray:
    """Index into KINDS of the ground at lateral offset y."""
    a = np.abs(y)
    kind = np.full(a.shape, KINDS.index("terrain"))
    kind[a < SIDEWALK_OUTER] = KINDS.index("sidewalk")
    kind[a < ROAD_HALF_WIDTH + CURB_WIDTH] = KINDS.index("curb")
    kind[a < ROAD_HALF_WIDTH] = KINDS.index("road")
    return kind


def make_street(rng: np.random.Generator, length: float = 60.0) -> Street:
    """A street segment centred on x = 0 with randomised objects; deterministic for a given generator state."""
    street = Street()
    next_instance = iter(range(1, 10_000))
    half = length / 2
    for side in (-1, 1):
        x = -half
        while x < half:  # buildings: a row of blocks with gaps
            width = rng.uniform(8, 16)
            depth, height = rng.uniform(6, 12), rng.uniform(5, 18)
            y = side * (rng.uniform(9, 12) + depth / 2)
            street.add(Box((x + width / 2, y, height / 2), (width, depth, height), 0.0, "building"))
            x += width + rng.uniform(1, 4)
        for x in rng.uniform(-half + 3, half - 3, size=3):  # trees on the sidewalk
            y = side * rng.uniform(4.8, 6.0)
            trunk_h = rng.uniform(2.0, 3.0)
            street.add(Cylinder(x, y, rng.uniform(0.15, 0.3), 0.0, trunk_h, "trunk"))
            street.add(Sphere((x, y, trunk_h + 1.2), rng.uniform(1.2, 1.8), "vegetation"))
        for x in rng.uniform(-half + 3, half - 3, size=2):  # poles with a sign
            y = side * rng.uniform(3.9, 4.3)
            street.add(Cylinder(x, y, 0.08, 0.0, 4.0, "pole"))
            street.add(Box((x, y - side * 0.45, 3.3), (0.05, 0.8, 0.6), 0.0, "sign"))
        for x in rng.uniform(-half + 3, half - 3, size=2):  # bushes on the terrain strip
            street.add(Box((x, side * rng.uniform(7.2, 8.0), 0.5), (2.0, 1.0, 1.0), rng.uniform(-0.3, 0.3),
                           "vegetation"))
        for x in rng.uniform(-half + 3, half - 3, size=2):  # pedestrians
            street.add(Cylinder(x, side * rng.uniform(4.5, 6.0), 0.25, 0.0, rng.uniform(1.6, 1.9), "pedestrian",
                                next(next_instance)))
        street.add(Box((rng.uniform(-10, 10), side * 5.5, 0.4), (0.6, 0.6, 0.8), 0.0, "other"))
    for lane in (-1, 1):
        for x in rng.uniform(-half + 5, half - 5, size=2):  # cars and a truck per lane
            if abs(x) < 4:
                x += 8
            street.add(Box((x, lane * 1.75, 0.75), (4.4, 1.8, 1.5), rng.uniform(-0.1, 0.1), "car",
                           next(next_instance)))
        x = rng.uniform(12, half - 6) * -lane
        street.add(Box((x, lane * 1.75, 1.6), (8.0, 2.5, 3.2), 0.0, "truck", next(next_instance)))
    x = rng.uniform(6, 15) * rng.choice([-1, 1])  # a cyclist by the curb
    street.add(Box((x, 2.9, 0.5), (1.7, 0.2, 1.0), 0.0, "bicycle", next(next_instance)))
    street.add(Cylinder(x, 2.9, 0.22, 1.0, 1.75, "cyclist", next(next_instance)))
    return street
