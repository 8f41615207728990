"""Planner training: the loss falls, checkpoints are plain and resumable, exported weights load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint, save_checkpoint
from pmoe_core.errors import BadInput
from pmoe_core.planner.model import DESIGN
from pmoe_core.planner.policy import load_planner
from pmoe_core.planner.train import (
    PlannerTrainConfig,
    export_checkpoint,
    learning_rate,
    model_config,
    train_planner,
)


def test_loss_decreases_on_a_few_demos(tiny_config):
    result = train_planner(tiny_config(steps_stage1=0, steps=40, lr=3e-3, warmup=5))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert len(result.losses) == 40
    assert last < 0.8 * first, (first, last)


def test_stage1_grounds_without_touching_the_dit_and_stage2_starts_upcycled(tiny_config):
    cfg = tiny_config(steps_stage1=16, steps=2, lr=3e-3)
    result = train_planner(dataclasses.replace(cfg, stop_at=16))
    # Lexicon batches are drawn afresh each step, so single losses are noisy: compare the first and last four
    assert sum(result.losses[-4:]) < sum(result.losses[:4]), result.losses
    payload = load_checkpoint(result.checkpoint)
    state, meta = payload["model"], payload["meta"]
    assert meta["stage"] == 1 and meta["design"] == DESIGN and not any(".ffn.router." in k for k in state)
    torch.manual_seed(cfg.seed)
    from pmoe_core.planner.model import ThreeDMoEPlanner

    fresh = ThreeDMoEPlanner(model_config("tiny")).trainable_state_dict()
    assert all(torch.equal(state[k], fresh[k]) for k in fresh if k.startswith("dit."))
    assert any(not torch.equal(state[k], fresh[k]) for k in fresh if k.startswith(("encoder.", "trunk.")))
    log = [json.loads(line) for line in (Path(cfg.out) / "log.jsonl").read_text().splitlines()]
    grounding = [r for r in log if r["event"] == "grounding"]
    assert len(grounding) == 1 and 0 <= grounding[0]["unseen_names_nearest"] <= 1
    resumed = train_planner(dataclasses.replace(cfg, resume=True))
    assert resumed.steps == 18
    after = load_checkpoint(resumed.checkpoint)["model"]
    assert any(".ffn.router." in k for k in after)  # Stage II upcycled the trunk
    for k in after:  # the colour grounding is frozen in Stage II
        if k.startswith("colour."):
            assert torch.equal(after[k], state[k]), k


def test_checkpoint_is_plain_and_resume_continues_exactly(tiny_config, tmp_path):
    straight = train_planner(tiny_config(out=str(tmp_path / "a")))
    train_planner(tiny_config(out=str(tmp_path / "b"), stop_at=5))
    part = load_checkpoint(tmp_path / "b" / "planner.pt")
    assert part["meta"]["kind"] == "planner" and part["meta"]["step"] == 5 and part["meta"]["stage"] == 2
    assert part["meta"]["complete"] is False and part["meta"]["config"]["text"]["llm"] == "smollm2"
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


def test_resume_of_a_run_from_before_wordings_refuses_more_than_one(tiny_config):
    """A checkpoint written before `wordings` existed read one wording per demonstration: resuming it with the
    default four would silently change what is trained."""
    cfg = tiny_config(stop_at=3, wordings=1)
    path = train_planner(cfg).checkpoint
    payload = load_checkpoint(path)
    del payload["meta"]["train_args"]["wordings"]
    save_checkpoint(path, payload["meta"], {k: v for k, v in payload.items() if k != "meta"})
    with pytest.raises(BadInput, match=r"different wordings \(1 in the checkpoint, 4 now\)"):
        train_planner(tiny_config(resume=True, wordings=4))
    assert train_planner(tiny_config(resume=True, wordings=1)).steps == cfg.steps_stage1 + cfg.steps


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
    assert model_config("default", "smollm2", 2).trunk.experts == 2
    dense = model_config("tiny", "smollm2", 1).trunk
    assert (dense.experts, dense.top_k) == (1, 1)
    joint = model_config("tiny", "smollm2", 2, joint=True).joint
    assert joint is not None and joint.moe.num_experts == 2
    with pytest.raises(BadInput, match="experts"):
        model_config("tiny", "smollm2", 3)
    with pytest.raises(BadInput, match="preset"):
        model_config("huge", "smollm2", 4)


@pytest.mark.parametrize("bad", [{"wordings": 0}, {"colour_paraphrase": 1.5}])
def test_a_bad_instruction_setting_is_refused_before_any_work(tmp_path, bad):
    with pytest.raises(BadInput, match=next(iter(bad))):
        train_planner(PlannerTrainConfig(out=str(tmp_path / "run"), cache=str(tmp_path / "cache"), **bad))
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_the_tiny_preset_is_the_default_design_at_smaller_sizes():
    default, tiny = model_config("default"), model_config("tiny")
    assert type(default.trunk) is type(tiny.trunk) and default.joint is None and tiny.joint is None
    assert default.text == tiny.text and default.trunk.experts == tiny.trunk.experts
    assert default.trunk.relation_dim == tiny.trunk.relation_dim
    assert tiny.trunk.dim < default.trunk.dim and tiny.num_points < default.num_points


def test_an_old_design_checkpoint_is_refused_in_one_line(tiny_config, tmp_path):
    from pmoe_core.engine.checkpoint import save_checkpoint
    from pmoe_core.errors import FormatError

    payload = load_checkpoint(train_planner(tiny_config(steps=1)).checkpoint)
    meta = {k: v for k, v in payload["meta"].items() if k not in ("design", "pmoe_version")}
    meta["config"] = {"llm": "tiny", "tiny_llm": {"hidden_size": 128}}  # what the design before #20 recorded
    old = save_checkpoint(tmp_path / "old.pt", meta, {"model": payload["model"]})
    with pytest.raises(FormatError, match="older planner design") as err:
        load_planner(old)
    assert "\n" not in str(err.value)


def test_learning_rate_warms_up_then_decays_per_stage(tiny_config):
    cfg = tiny_config(steps_stage1=10, steps=100, warmup=5, lr=1.0)
    assert learning_rate(cfg, 0) == pytest.approx(0.2)
    assert learning_rate(cfg, 10) == pytest.approx(0.2)  # Stage II warms up again
    assert learning_rate(cfg, 14) == pytest.approx(1.0)
    assert learning_rate(cfg, 109) == pytest.approx(0.1, abs=0.01)


@pytest.mark.slow
def test_the_joint_path_trains_a_few_steps_and_loads(tiny_config):
    """The paper's path (scene + instruction through the upcycled MoE SmolLM2 with LoRA) at tiny sizes."""
    result = train_planner(tiny_config(joint=True, steps_stage1=1, steps=2, batch_size=1, lexicon_batch=2))
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    meta = load_checkpoint(result.checkpoint)["meta"]
    assert meta["config"]["joint"]["moe"]["num_experts"] == 4
    planner = load_planner(result.checkpoint)
    assert type(planner.model.trunk).__name__ == "JointTrunk"
