"""Tiny planner training runs for the tests: the tiny preset, one task, a few rendered demos in a temp cache."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pmoe_core.planner.train import PlannerTrainConfig


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One demo cache for the session, so each tiny demo set is rendered once."""
    return str(tmp_path_factory.mktemp("demos"))


@pytest.fixture
def tiny_config(tmp_path, demo_cache):
    def make(**changes) -> PlannerTrainConfig:
        base = PlannerTrainConfig(
            out=str(tmp_path / "run"), tasks=("stack-blocks",), episodes=4, steps_stage1=2, steps=6, batch_size=4,
            lexicon_batch=8, lexicon_names=24, warmup=2, preset="tiny", ckpt_every=100, cache=demo_cache,
            tensorboard=False,
        )
        return dataclasses.replace(base, **changes)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
