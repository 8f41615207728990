"""LoRA on attention and experts: exact trainable-parameter accounting, gradients only where they belong."""

from __future__ import annotations

import torch

from pmoe_core.planner.lora import ATTENTION, EXPERT, LoraSettings, apply_lora
from pmoe_core.planner.model import ThreeDMoEConfig, ThreeDMoEPlanner, trainable_groups
from pmoe_core.planner.llm import tiny_llm
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


def test_planner_trainable_parameters_are_exactly_lora_routers_encoder_dit(cloud):
    config = ThreeDMoEConfig.tiny()
    planner = ThreeDMoEPlanner(config)
    reference = upcycle(tiny_llm(config.tiny_llm)[0], config.moe)
    lora = _expected_lora(reference, config.lora.r)
    routers = sum(m.router.weight.numel() for m in reference.modules() if hasattr(m, "router"))
    encoder = sum(p.numel() for p in planner.encoder.parameters())
    dit = sum(p.numel() for p in planner.dit.parameters())
    total = sum(p.numel() for p in planner.parameters() if p.requires_grad)
    assert total == lora + routers + encoder + dit
    assert trainable_groups(planner) == {"encoder": encoder, "lora": lora, "router": routers, "dit": dit}
    assert sum(p.numel() for p in planner.trainable_parameters(stage=1)) == total - dit


def test_gradients_reach_only_trainable_parameters_and_a_step_changes_the_output(cloud):
    planner = ThreeDMoEPlanner(ThreeDMoEConfig.tiny())
    points = cloud(512, batch=2)
    poses = torch.zeros(2, 6, 2, 7)
    poses[..., :3] = torch.tensor([0.5, 0.0, 0.05])
    poses[..., 6] = 1.0
    lengths = torch.tensor([2, 4])
    instructions = ["stack the blocks", "put the red block in the bowl"]
    planner.stage2_loss(points, instructions, poses, lengths)["loss"].backward()
    named = dict(planner.named_parameters())
    for name, p in named.items():
        if not p.requires_grad:
            assert p.grad is None, name
        elif not (".experts." in name and "lora_" in name):  # an expert no token chose gets no gradient
            assert p.grad is not None, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in named.items() if "lora_B" in n)
    assert named["encoder.projector.weight"].grad.abs().sum() > 0  # the flow loss reaches the encoder via the LLM

    frozen = {n: p.detach().clone() for n, p in named.items() if not p.requires_grad}
    with torch.no_grad():
        before, _ = planner.condition(points, ["stack the blocks"] * 2)
    opt = torch.optim.SGD(planner.trainable_parameters(), lr=0.1)
    opt.step()
    with torch.no_grad():
        after, _ = planner.condition(points, ["stack the blocks"] * 2)
    assert all(torch.equal(frozen[n], named[n]) for n in frozen)
    assert not torch.allclose(before, after)


def test_stage1_loss_leaves_the_dit_without_gradients(cloud):
    planner = ThreeDMoEPlanner(ThreeDMoEConfig.tiny())
    out = planner.stage1_loss(cloud(512, batch=2), ["a red block left of a blue bowl", "three green blocks"])
    out["loss"].backward()
    assert all(p.grad is None for p in planner.dit.parameters())
    assert planner.encoder.projector.weight.grad.abs().sum() > 0
