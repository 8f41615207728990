"""LoRA on attention and experts (the joint path): exact trainable-parameter accounting, gradients where they belong."""

from __future__ import annotations

import torch

from pmoe_core.planner.joint import JointConfig
from pmoe_core.planner.llm import TinyLlamaSpec, tiny_llm
from pmoe_core.planner.lora import ATTENTION, EXPERT, LoraSettings, apply_lora
from pmoe_core.planner.model import PlannerConfig, ThreeDMoEPlanner
from pmoe_core.planner.text_features import TextFeatureSpec
from pmoe_core.planner.upcycle import MoEConfig, upcycle


def _expected_lora(model: torch.nn.Module, r: int) -> int:
    """r * (in + out) for every target linear of the upcycled model before adapters are injected."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in ATTENTION + EXPERT:
            total += r * (m.in_features + m.out_features)
    return total


def test_lora_count_and_freezing_on_upcycled_llm():
    model = upcycle(tiny_llm()[0], MoEConfig(num_experts=4, top_k=2))
    expected = _expected_lora(model, 4)
    cfg = model.config
    routers = cfg.num_hidden_layers * 4 * cfg.hidden_size
    apply_lora(model, LoraSettings(r=4, alpha=8))
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == expected + routers
    assert all("lora_" in n or ".router." in n for n in trainable)
    # every expert linear (4 experts x 3 projections x layers) and attention projection carries an adapter
    adapted = {n.rsplit(".lora_A", 1)[0] for n in trainable if ".lora_A." in n}
    assert len(adapted) == cfg.num_hidden_layers * (4 * 3 + 4)


def _joint_planner() -> ThreeDMoEPlanner:
    tiny = PlannerConfig.tiny()
    cfg = PlannerConfig(text=TextFeatureSpec(llm="tiny"), joint=JointConfig(lora=LoraSettings(r=4, alpha=8)),
                        encoder=tiny.encoder, trunk=tiny.trunk, colour=tiny.colour, dit=tiny.dit,
                        num_points=tiny.num_points)
    return ThreeDMoEPlanner(cfg)


def test_joint_trunk_trains_exactly_lora_routers_and_its_projections():
    planner = _joint_planner()
    reference = upcycle(tiny_llm(TinyLlamaSpec(tokenizer="words"))[0], MoEConfig())
    lora = _expected_lora(reference, 4)
    routers = sum(m.router.weight.numel() for m in reference.modules() if hasattr(m, "router"))
    projections = sum(p.numel() for m in (planner.trunk.scene_in, planner.trunk.out) for p in m.parameters())
    trunk = sum(p.numel() for p in planner.trunk.parameters() if p.requires_grad)
    assert trunk == lora + routers + projections


def test_gradients_reach_only_trainable_parameters_and_a_step_changes_the_output(scenes):
    planner = _joint_planner()
    points = scenes(["stack-blocks", "put-block-into-matching-bowl"], 1024)
    poses = torch.zeros(2, 8, 2, 7)
    poses[..., :3] = torch.tensor([0.5, 0.0, 0.05])
    poses[..., 6] = 1.0
    lengths = torch.tensor([2, 4])
    instructions = ["stack the blocks", "put the red block in the bowl"]
    planner.stage2_loss(points, instructions, poses, lengths)["loss"].backward()
    named = dict(planner.named_parameters())
    for name, p in named.items():
        if not p.requires_grad:
            assert p.grad is None, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in named.items() if "lora_B" in n)
    assert named["encoder.projector.weight"].grad.abs().sum() > 0  # the flow loss reaches the encoder via the LLM

    frozen = {n: p.detach().clone() for n, p in named.items() if not p.requires_grad}
    with torch.no_grad():
        before, _ = planner.condition(points, ["stack the blocks"] * 2)
    opt = torch.optim.SGD(planner.stage_parameters(2), lr=0.1)
    opt.step()
    with torch.no_grad():
        after, _ = planner.condition(points, ["stack the blocks"] * 2)
    assert all(torch.equal(frozen[n], named[n]) for n in frozen)
    assert not torch.allclose(before.seq, after.seq)
