"""Synthetic indoor-like scene for the benchmarks: floor, walls and a few boxes, voxelised at 2 cm."""

from __future__ import annotations

import torch

from pmoe_core.models.batch import IN_CHANNELS, PointBatch


def synthetic_scene(points: int, seed: int = 0) -> PointBatch:
    g = torch.Generator().manual_seed(seed)
    n = points * 2  # oversample: voxelisation merges points
    u = torch.rand(n, 3, generator=g)
    face = torch.randint(0, 6, (n,), generator=g)
    room = torch.tensor([8.0, 6.0, 3.0])
    xyz = u * room
    xyz[face == 0, 2] = 0.0  # floor
    xyz[face == 1, 0] = 0.0  # walls
    xyz[face == 2, 1] = 0.0
    xyz[face == 3, 0] = room[0]
    box = face >= 4  # box surfaces
    xyz[box] = u[box] * torch.tensor([1.0, 1.0, 0.8]) + torch.tensor([3.0, 2.0, 0.0])
    xyz[box, face[box] % 3] = torch.where(u[box, 0] > 0.5, 1.0, 0.0) + torch.tensor([3.0, 2.0, 0.0])[face[box] % 3]
    grid = torch.unique((xyz / 0.02).long(), dim=0)
    grid = grid[torch.randperm(grid.shape[0], generator=g)[:points]]
    grid = grid - grid.min(0).values
    feat = torch.randn(grid.shape[0], IN_CHANNELS, generator=g)
    return PointBatch(grid.float() * 0.02, feat, grid, torch.tensor([grid.shape[0]]))
