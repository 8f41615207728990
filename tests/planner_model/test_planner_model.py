"""The planner: one Condition from the trunk (or the joint LLM), losses, planning, upcycling, state and config."""

from __future__ import annotations

import json

import pytest
import torch

from pmoe_core.planner.joint import JointConfig, JointTrunk
from pmoe_core.planner.model import PlannerConfig, ThreeDMoEPlanner, table_anchors
from pmoe_core.planner.pose_dit import Condition
from pmoe_core.planner.pose_tokens import steps_to_tensor
from pmoe_core.planner.text_features import TextFeatureSpec
from pmoe_core.planner.upcycle import MoEConfig
from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.poses import Pose

TASKS = ["stack-blocks", "put-block-into-matching-bowl"]
INSTRUCTIONS = ["stack all the blocks on the red block", "put the blocks in the bowls of the same color"]


@pytest.fixture
def planner(smollm2_text):
    torch.manual_seed(0)
    return ThreeDMoEPlanner(PlannerConfig.tiny(), smollm2_text)


def _demo() -> tuple[torch.Tensor, torch.Tensor]:
    a = [Step(Pose.from_yaw((0.4, 0.1, 0.02), 0.0), Pose.from_yaw((0.6, -0.2, 0.06), 0.5))]
    b = a + [Step(Pose.from_yaw((0.3, 0.3, 0.02), 1.0), Pose.from_yaw((0.6, -0.2, 0.1), 0.5))] * 2
    return steps_to_tensor([a, b], max_steps=8)


def test_the_condition_is_text_then_scene_then_table_anchors(planner, scenes):
    points = scenes(TASKS, 1024)
    with torch.no_grad():
        cond, aux = planner.condition(points, INSTRUCTIONS)
    assert isinstance(cond, Condition) and float(aux) == 0.0  # dense until Stage II
    t = int(cond.text_mask.sum(1).max())
    m = 16 + 10  # point-encoder tokens + object slots of the tiny preset
    g = len(table_anchors(planner.config.table_step))
    assert cond.seq.shape == (2, t + m + g, 32) and cond.text_mask[:, :t].any(1).all()
    assert not cond.candidates[:, :t].any()  # the pointer never points at a word
    assert cond.candidates[:, t + m :].all() and not cond.candidates[:, t : t + 16].any()
    objects = cond.attributes[..., 9] > 0
    from pmoe_core.tabletop.tasks import make_scene

    assert objects.sum(1).tolist() == [len(make_scene(t, 100000).objects) for t in TASKS]  # one per object
    assert torch.equal(objects, cond.candidates & (torch.arange(cond.seq.shape[1]) < t + m))
    assert (cond.anchors[cond.candidates].abs() <= 1.05).all()  # token space: the workspace is [-1, 1]


def test_the_asked_colour_reaches_the_object_tokens(planner, scenes):
    points = scenes(TASKS[:1], 1024)
    with torch.no_grad():
        red, _ = planner.condition(points, ["stack all the blocks on the red block"])
        blue, _ = planner.condition(points, ["stack all the blocks on the blue block"])
    t = int(red.text_mask.sum())
    assert not torch.allclose(red.seq[0, t:], blue.seq[0, t:])


def test_stage_losses_are_finite_and_stage1_leaves_the_dit_alone(planner, scenes):
    points = scenes(TASKS, 1024)
    s1 = planner.stage1_loss(points, ["the red block", "the blue bowl"], torch.tensor([[0.5, 0.1], [0.4, -0.2]]),
                             ["the pink block", "navy"], torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.1, -0.4]]))
    assert set(s1) == {"loss", "refer", "colour", "aux"} and torch.isfinite(s1["loss"])
    s1["loss"].backward()
    assert all(p.grad is None for p in planner.dit.parameters())
    assert planner.colour.net[1].weight.grad.abs().sum() > 0 and planner.encoder.projector.weight.grad is not None
    planner.zero_grad()
    poses, lengths = _demo()
    s2 = planner.stage2_loss(points, INSTRUCTIONS, poses, lengths)
    assert set(s2) == {"loss", "flow", "stop", "pointer", "aux"} and torch.isfinite(s2["loss"])


def test_stage_parameters_freeze_the_colour_grounding_in_stage_two(planner):
    ids = {id(p): n for n, p in planner.named_parameters()}
    one = {ids[id(p)] for p in planner.stage_parameters(1)}
    two = {ids[id(p)] for p in planner.stage_parameters(2)}
    assert not any(n.startswith("dit.") for n in one) and any(n.startswith("trunk.") for n in one)
    assert not any(n.startswith(("colour.", "refer_")) for n in two) and any(n.startswith("dit.") for n in two)
    with pytest.raises(ValueError):
        planner.stage_parameters(3)


def test_upcycling_the_planner_changes_no_output(planner, scenes):
    points = scenes(TASKS, 1024)
    with torch.no_grad():
        for p in planner.trunk.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        before, _ = planner.condition(points, INSTRUCTIONS)
        planner.upcycle()
        after, aux = planner.condition(points, INSTRUCTIONS)
    assert planner.is_upcycled and aux.item() > 0
    torch.testing.assert_close(after.seq[after.mask], before.seq[before.mask], atol=1e-5, rtol=1e-5)


def test_stage2_training_fits_a_fixed_batch(planner, scenes):
    planner.upcycle()
    points = scenes(TASKS, 1024)
    poses, lengths = _demo()
    opt = torch.optim.AdamW(planner.stage_parameters(2), lr=3e-3)
    history = []
    for _ in range(40):
        loss = planner.stage2_loss(points, INSTRUCTIONS, poses, lengths)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-5:]) / 5 < 0.5 * sum(history[:5]) / 5, history


def test_plan_returns_valid_steps_deterministically(planner, scenes):
    planner.eval()
    points = scenes(TASKS[:1], 1024)[0]
    a = planner.plan(points, INSTRUCTIONS[0], generator=torch.Generator().manual_seed(1))
    b = planner.plan(points, INSTRUCTIONS[0], generator=torch.Generator().manual_seed(1))
    assert 1 <= len(a) <= planner.config.dit.max_steps and a == b
    for step in a:
        for pose in (step.pick, step.place):
            assert abs(sum(q * q for q in pose.quaternion) - 1) < 1e-5


def test_trainable_state_round_trip_through_upcycling(planner, smollm2_text, scenes):
    planner.upcycle()
    state = planner.trainable_state_dict()
    assert any(".ffn.router." in k for k in state)
    fresh = ThreeDMoEPlanner(PlannerConfig.tiny(), smollm2_text)
    fresh.load_trainable_state_dict(state)  # upcycles itself to take the experts
    assert fresh.is_upcycled
    points = scenes(TASKS, 1024)
    with torch.no_grad():
        a, _ = planner.eval().condition(points, INSTRUCTIONS)
        b, _ = fresh.eval().condition(points, INSTRUCTIONS)
    torch.testing.assert_close(a.seq, b.seq)
    with pytest.raises(ValueError, match="mismatch"):
        fresh.load_trainable_state_dict({k: v for k, v in state.items() if not k.startswith("dit.")})


def test_config_round_trip_and_unknown_keys():
    cfg = PlannerConfig.tiny()
    again = PlannerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.joint is None
    joint = PlannerConfig(joint=JointConfig(moe=MoEConfig(num_experts=2, top_k=1)))
    assert PlannerConfig.from_dict(json.loads(json.dumps(joint.to_dict()))) == joint
    with pytest.raises(ValueError, match="unknown"):
        PlannerConfig.from_dict({**cfg.to_dict(), "llm": "tiny"})  # a key of the old design


def test_the_joint_path_gives_the_same_condition_object(scenes):
    """The paper's path: scene tokens + instruction through the upcycled LLM with LoRA (the tiny stand-in here)."""
    torch.manual_seed(0)
    cfg = PlannerConfig.tiny()
    cfg = PlannerConfig(text=TextFeatureSpec(llm="tiny"), joint=JointConfig(), encoder=cfg.encoder, trunk=cfg.trunk,
                        colour=cfg.colour, dit=cfg.dit, num_points=cfg.num_points)
    planner = ThreeDMoEPlanner(cfg)
    assert isinstance(planner.trunk, JointTrunk) and planner.is_upcycled
    points = scenes(TASKS, 1024)
    cond, aux = planner.condition(points, INSTRUCTIONS)
    assert isinstance(cond, Condition) and aux.item() > 0
    base = {n for n, p in planner.trunk.llm.named_parameters() if not p.requires_grad}
    assert base and all("lora_" not in n and ".router." not in n for n in base)  # the base LLM stays frozen
    loss = planner.stage2_loss(points, INSTRUCTIONS, *_demo())["loss"]
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in planner.trunk.llm.named_parameters() if "lora_B" in n)
