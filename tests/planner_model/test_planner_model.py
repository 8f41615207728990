"""ThreeDMoEPlanner on the tiny random LLM: losses, planning, trainable state and config round trips."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pmoe_core.planner.llm import tiny_llm
from pmoe_core.planner.model import ThreeDMoEConfig, ThreeDMoEPlanner
from pmoe_core.tabletop.oracle import Step
from pmoe_core.planner.pose_tokens import steps_to_tensor
from pmoe_core.tabletop.poses import Pose

INSTRUCTIONS = ["stack all the blocks on the green zone", "put the red block in the blue bowl"]


@pytest.fixture
def planner():
    torch.manual_seed(0)
    return ThreeDMoEPlanner(ThreeDMoEConfig.tiny())


def _demo() -> tuple[torch.Tensor, torch.Tensor]:
    a = [Step(Pose.from_yaw((0.4, 0.1, 0.02), 0.0), Pose.from_yaw((0.6, -0.2, 0.06), 0.5))]
    b = a + [Step(Pose.from_yaw((0.3, 0.3, 0.02), 1.0), Pose.from_yaw((0.6, -0.2, 0.1), 0.5))] * 2
    return steps_to_tensor([a, b], max_steps=6)


def test_llm_condition_equals_the_dense_llm_at_init(planner, cloud):
    """Upcycling and LoRA (B = 0) change nothing before training: same hidden states as the plain tiny LLaMA."""
    dense, _ = tiny_llm(planner.config.tiny_llm)
    points = cloud(512, batch=2)
    with torch.no_grad():
        hidden, mask = planner.condition(points, INSTRUCTIONS)
        embeds, attn, *_ = planner._sequence(points, [planner._ids(s) for s in INSTRUCTIONS])
        ref = dense.model(inputs_embeds=embeds, attention_mask=attn).last_hidden_state
    assert mask.shape == hidden.shape[:2] and mask[:, :16].all()  # 16 scene tokens always attended
    torch.testing.assert_close(hidden[mask], ref[mask], atol=1e-5, rtol=1e-5)


def test_stage_losses_are_finite_and_differentiable(planner, cloud):
    points = cloud(512, batch=2)
    s1 = planner.stage1_loss(points, ["two red blocks and a bowl", "an empty table"])
    assert set(s1) == {"loss", "lm", "aux"} and torch.isfinite(s1["loss"])
    assert abs(s1["lm"].item() - math.log(259)) < 1.5  # a random LM is near uniform over the byte vocabulary
    poses, lengths = _demo()
    s2 = planner.stage2_loss(points, INSTRUCTIONS, poses, lengths)
    assert set(s2) == {"loss", "flow", "stop", "aux"} and torch.isfinite(s2["loss"])
    s2["loss"].backward()


def test_stage2_training_fits_a_fixed_batch(planner, cloud):
    points = cloud(512, batch=2)
    poses, lengths = _demo()
    opt = torch.optim.AdamW(planner.trainable_parameters(stage=2), lr=3e-3)
    history = []
    for _ in range(60):
        out = planner.stage2_loss(points, INSTRUCTIONS, poses, lengths)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append((out["flow"].item(), out["stop"].item()))
    start, end = torch.tensor(history[:5]).mean(0), torch.tensor(history[-5:]).mean(0)
    assert end[0] < 0.6 * start[0] and end[1] < 0.5 * start[1]
    plans = planner.plan_batch(points, INSTRUCTIONS, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in plans] == lengths.tolist()  # the stop head learned where each plan ends


def test_plan_returns_valid_steps_deterministically(planner, cloud):
    points = cloud(512)
    plan = planner.plan(points, "stack the blocks", generator=torch.Generator().manual_seed(3))
    assert 1 <= len(plan) <= planner.config.dit.max_steps
    for step in plan:
        assert isinstance(step, Step)
        for pose in (step.pick, step.place):
            assert len(pose.position) == 3 and all(math.isfinite(v) for v in pose.position)
            assert sum(q * q for q in pose.quaternion) == pytest.approx(1.0, abs=1e-5)
    again = planner.plan(points, "stack the blocks", euler_steps=4, generator=torch.Generator().manual_seed(3))
    assert again == plan


def test_trainable_state_round_trip(planner, cloud):
    points = cloud(512)
    with torch.no_grad():
        for p in planner.trainable_parameters():
            p.add_(0.01 * torch.randn_like(p))  # move LoRA B and routers off their init
    state = planner.trainable_state_dict()
    assert all(not t.requires_grad for t in state.values())
    assert not any(k.endswith("base_layer.weight") or "embed_tokens" in k for k in state)
    config = ThreeDMoEConfig.from_dict(json.loads(json.dumps(planner.config.to_dict())))
    torch.manual_seed(123)  # a different init everywhere the state does not cover
    other = ThreeDMoEPlanner(config)
    other.load_trainable_state_dict(state)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert other.plan(points, "stack", generator=gen()) == planner.plan(points, "stack", generator=gen())
    with torch.no_grad():
        torch.testing.assert_close(
            other.condition(points[None], ["stack"])[0], planner.condition(points[None], ["stack"])[0]
        )
    del state[next(iter(state))]
    with pytest.raises(ValueError, match="mismatch"):
        other.load_trainable_state_dict(state)


def test_config_round_trip_and_unknown_keys():
    config = ThreeDMoEConfig.tiny()
    data = config.to_dict()
    assert ThreeDMoEConfig.from_dict(data) == config
    assert data["encoder"]["pointnet"]["layers"][0]["npoint"] == 64
    with pytest.raises(ValueError, match="unknown"):
        ThreeDMoEConfig.from_dict({**data, "dit": {**data["dit"], "width": 3}})
    assert ThreeDMoEConfig.from_dict({"llm": "tiny"}).llm == "tiny"  # missing keys take defaults


def test_scene_tokens_start_at_word_embedding_scale(planner, cloud):
    with torch.no_grad():
        tokens, *_ = planner.encoder(cloud(512, batch=2))
        words = planner.llm.get_input_embeddings().weight
    ratio = tokens.pow(2).mean().sqrt() / words.pow(2).mean().sqrt()
    assert 0.6 < ratio.item() < 1.6
