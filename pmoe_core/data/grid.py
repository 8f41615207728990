"""Voxel grid sampling: one random point per voxel for training, covering fragments for testing.

Everything is vectorised over points: voxels are identified by a single int64 key (the voxel coordinate raveled
over the cloud's voxel extent), grouped by sorting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmoe_core.data.sample import Sample


def grid_coordinates(coord: np.ndarray, grid_size: float) -> np.ndarray:
    """(N, 3) int64 voxel coordinates floor((coord - min) / grid_size), non-negative."""
    origin = coord.min(axis=0)
    return np.floor((coord - origin) / grid_size).astype(np.int64)


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


def fragment_indices(grid_coord: np.ndarray) -> np.ndarray:
    """(F, V) point indices: fragment j takes the (j mod count)-th point of every voxel.

    F is the largest voxel occupancy, so the F fragments together contain every point, and each fragment holds
    exactly one point of each of the V occupied voxels.
    """
    keys = voxel_keys(grid_coord)
    order = np.argsort(keys, kind="stable")
    _, start, count = np.unique(keys[order], return_index=True, return_counts=True)
    j = np.arange(int(count.max()))[:, None]
    return order[start[None, :] + j % count[None, :]]


@dataclass
class GridSample:
    """Training voxelisation: keep one random point per voxel and record its voxel coordinate."""

    grid_size: float

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        grid_coord = grid_coordinates(sample.coord, self.grid_size)
        sample.grid_coord = grid_coord
        return sample.keep(random_point_per_voxel(grid_coord, rng))


@dataclass
class GridFragments:
    """Test voxelisation: keep every point, record voxel coordinates and the covering fragments."""

    grid_size: float

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.grid_coord = grid_coordinates(sample.coord, self.grid_size)
        sample.fragments = fragment_indices(sample.grid_coord)
        return sample
