"""Synthetic point batches for model tests: unique voxels per sample, random or surface-like."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.models.batch import IN_CHANNELS, PointBatch


def unique_voxels(grid: torch.Tensor) -> torch.Tensor:
    return torch.unique(grid, dim=0)


def random_grid(n: int, extent: int, generator: torch.Generator) -> torch.Tensor:
    return unique_voxels(torch.randint(0, extent, (n, 3), generator=generator))


def surface_grid(n: int, extent: int, generator: torch.Generator) -> torch.Tensor:
    """Voxels of a sphere shell plus a floor plane: the sparse, 2D-manifold structure of real scans."""
    d = torch.randn(n, 3, generator=generator)
    sphere = d / d.norm(dim=1, keepdim=True) * (extent * 0.35) + extent / 2
    floor = torch.rand(n // 2, 3, generator=generator) * extent
    floor[:, 2] = 1
    return unique_voxels(torch.cat([sphere, floor]).long().clamp(0, extent - 1))


def make_batch(sizes: tuple[int, ...], extent: int = 48, surface: bool = False, seed: int = 0) -> PointBatch:
    g = torch.Generator().manual_seed(seed)
    grids = []
    for n in sizes:
        grid = surface_grid(n, extent, g) if surface else random_grid(n, extent, g)
        grids.append(grid[torch.randperm(grid.shape[0], generator=g)])
    grid = torch.cat(grids)
    offset = torch.cumsum(torch.tensor([x.shape[0] for x in grids]), 0)
    coord = grid.float() * 0.02 + torch.rand(grid.shape, generator=g) * 0.02
    feat = torch.randn(grid.shape[0], IN_CHANNELS, generator=g)
    return PointBatch(coord, feat, grid, offset)


@pytest.fixture(name="make_batch")
def _make_batch_fixture():
    """The batch builder, as a fixture (test folders are not packages, so tests cannot import conftest)."""
    return make_batch
