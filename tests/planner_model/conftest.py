"""Fixtures for the 3D-MoE model tests: synthetic tabletop clouds, nothing downloaded."""

from __future__ import annotations

import pytest
import torch


def table_cloud(n: int, seed: int = 0, batch: int | None = None) -> torch.Tensor:
    """(n, 6) or (batch, n, 6): xyz uniform in the Ravens workspace, rgb in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    xyz = torch.rand(*shape, 3, generator=g) * torch.tensor([0.5, 1.0, 0.3]) + torch.tensor([0.25, -0.5, 0.0])
    return torch.cat([xyz, torch.rand(*shape, 3, generator=g)], dim=-1)


@pytest.fixture
def cloud():
    return table_cloud


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
