"""Fixtures for the 3D-MoE model tests: synthetic tabletop clouds and observed task scenes, nothing downloaded."""

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


_SCENES: dict = {}


def observed_batch(tasks: list[str], n: int = 512, seed: int = 100000) -> torch.Tensor:
    """(B, n, 7) encoder inputs of held-out scenes of `tasks` (one each), as the planner takes them."""
    from pmoe_core.planner.scene_encoder import scene_points
    from pmoe_core.tabletop.observe import observe
    from pmoe_core.tabletop.tasks import make_scene

    rows = []
    for task in tasks:
        key = (task, n, seed)
        if key not in _SCENES:
            cloud = observe(make_scene(task, seed))
            _SCENES[key] = scene_points(cloud.coord, cloud.color, n, seed)
        rows.append(_SCENES[key])
    return torch.stack(rows)


@pytest.fixture
def scenes():
    return observed_batch


@pytest.fixture(scope="session")
def smollm2_text():
    """The packaged SmolLM2's frozen states, shared by the tests (the LM loads once)."""
    from pmoe_core.planner.model_lm import text_features
    from pmoe_core.planner.text_features import TextFeatureSpec

    return text_features(TextFeatureSpec(llm="smollm2"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
