"""Voxel grid sampling: one random point per voxel for training, covering fragments for testing.

Everything is vectorised over points: voxels are identified by a single int64 key (the voxel coordinate raveled
over the cloud's voxel extent), grouped by sorting.

The rule for far outliers (one point 300 m, or 10^17 m, away from its room): the voxel grid has a fixed reach,
GRID_CELLS voxels per axis (what the serializer encodes, 16 bits), centred on the scene's median point. A point
beyond it is moved onto the window's boundary (clamped, never dropped: eval and predict still give every stored
point a prediction). `BoundExtent` applies the rule with half the reach at the start of every recipe, so the
augmentations that follow work on a bounded box; grid sampling applies it again with the full reach. No step's
memory then depends on the extent, only on the points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmoe_core.data.sample import Sample
from pmoe_core.models.serialization import MAX_DEPTH

GRID_CELLS = (1 << MAX_DEPTH) - 1  # voxels per axis the serializer encodes (coordinates 0 .. 2^16 - 2)


def clamp_window(coord: np.ndarray, half_width: float) -> np.ndarray:
    """`coord` with every point moved into the box of half-width `half_width` metres around the median point (the
    median, unlike the bounding box, is not moved by a few far points). Returns `coord` itself when nothing moves."""
    if not len(coord):
        return coord
    center = np.median(coord, axis=0).astype(np.float64)
    lo = (center - half_width).astype(coord.dtype)
    hi = (center + half_width).astype(coord.dtype)
    if (coord.min(axis=0) >= lo).all() and (coord.max(axis=0) <= hi).all():
        return coord
    return np.clip(coord, lo, hi)


def voxelise(coord: np.ndarray, grid_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(coord clamped into the grid's reach around the median, its (N, 3) int64 voxel coordinates
    floor((coord - min) / grid_size), each in [0, GRID_CELLS))."""
    coord = clamp_window(coord, grid_size * (GRID_CELLS - 2) / 2)
    origin = coord.min(axis=0)
    return coord, np.minimum(np.floor((coord - origin) / grid_size).astype(np.int64), GRID_CELLS - 1)


def grid_coordinates(coord: np.ndarray, grid_size: float) -> np.ndarray:
    """(N, 3) int64 voxel coordinates floor((coord - min) / grid_size), non-negative and within the grid's reach
    (points beyond it around the median get the edge voxel)."""
    return voxelise(coord, grid_size)[1]


def voxel_keys(grid_coord: np.ndarray) -> np.ndarray:
    """One int64 key per point, equal exactly when the voxel coordinates are equal."""
    extent = grid_coord.max(axis=0).astype(np.int64) + 1
    if float(extent[0]) * float(extent[1]) * float(extent[2]) >= 2.0**62:
        raise ValueError(f"voxel extent {extent.tolist()} too large for int64 keys; is grid_size in metres?")
    return (grid_coord[:, 0] * extent[1] + grid_coord[:, 1]) * extent[2] + grid_coord[:, 2]


def random_point_per_voxel(grid_coord: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of one uniformly chosen point in each occupied voxel (sorted by voxel key)."""
    keys = voxel_keys(grid_coord)
    shuffled = rng.permutation(keys.shape[0])
    _, first = np.unique(keys[shuffled], return_index=True)
    return shuffled[first]


MAX_FRAGMENTS = 64  # test fragments per scene at most: compute and the (F, V) table stay within 64x the points


def fragment_indices(grid_coord: np.ndarray, max_fragments: int = MAX_FRAGMENTS) -> tuple[np.ndarray, np.ndarray | None]:
    """(F, V) point indices, fragment j taking the (j mod count)-th point of every voxel, and the vote source.

    F is the largest voxel occupancy, at most `max_fragments`. Up to that cap the fragments together contain every
    point, and each holds exactly one point of each of the V occupied voxels (the references' test fragments).
    Beyond it (a voxel holding thousands of duplicates: zero returns at a sensor, outliers clamped onto one
    boundary voxel) F x V would grow with the duplicates, not with the cloud, so the cap holds and a point of rank
    r >= F in its voxel takes the votes of its voxel-mate of rank r mod F. `source` (N,) names, for every point,
    the point whose votes it gets; None when the cap was not reached (every point is scored itself).
    """
    keys = voxel_keys(grid_coord)
    order = np.argsort(keys, kind="stable")
    _, start, count = np.unique(keys[order], return_index=True, return_counts=True)
    most = int(count.max())
    frags = min(most, max_fragments)
    j = np.arange(frags)[:, None]
    fragments = order[start[None, :] + j % count[None, :]]
    if most <= frags:
        return fragments, None
    voxel_start = np.repeat(start, count)
    rank = np.arange(len(order)) - voxel_start
    source = np.empty(len(order), dtype=np.int64)
    source[order] = order[voxel_start + rank % frags]
    return fragments, source


@dataclass
class GridSample:
    """Training voxelisation: keep one random point per voxel and record its voxel coordinate."""

    grid_size: float

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.coord, grid_coord = voxelise(sample.coord, self.grid_size)  # clamped coords agree with voxels
        sample.grid_coord = grid_coord
        return sample.keep(random_point_per_voxel(grid_coord, rng))


@dataclass
class GridFragments:
    """Test voxelisation: keep every point, record voxel coordinates and the covering fragments."""

    grid_size: float

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.coord, sample.grid_coord = voxelise(sample.coord, self.grid_size)  # clamped coords agree with voxels
        sample.fragments, sample.vote_source = fragment_indices(sample.grid_coord)
        return sample


@dataclass
class BoundExtent:
    """First step of every recipe: clamp far outliers into half the voxel grid's reach around the median point,
    so the augmentations that follow (rotation, scaling, elastic distortion) work on a bounded box and still fit
    the grid after they enlarge it (by at most sqrt(2) * 1.1 in the reference recipes)."""

    grid_size: float

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.coord = clamp_window(sample.coord, self.grid_size * GRID_CELLS / 4)
        return sample
