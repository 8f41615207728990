"""The release's norm switch reaches the stem, pooling and unpooling norms; the default model is unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from pmoe_core.engine.model_io import config_from_data, config_to_data
from pmoe_core.errors import BadInput
from pmoe_core.models import PPT, build_model, get_config
from pmoe_core.models.presets import norm_switch
from pmoe_core.models.ptv3 import PTv3, PTv3Config

NORM_TYPES = (nn.BatchNorm1d, nn.LayerNorm, nn.RMSNorm)
KIND = {"bn": nn.BatchNorm1d, "ln": nn.LayerNorm, "rms": nn.RMSNorm}


def outer_and_block_norms(model: PTv3) -> tuple[dict[str, type], dict[str, type]]:
    """Types of the norms outside the blocks (stem, pooling, unpooling) and inside them, by module name."""
    outer, block = {}, {}
    for name, module in model.named_modules():
        if isinstance(module, NORM_TYPES):
            (block if ".blocks." in name else outer)[name] = type(module)
    return outer, block


def _tiny(switch: str | None) -> PTv3Config:
    cfg = dataclasses.replace(get_config("pmoe-tiny"), backend="torch")
    return cfg if switch is None else norm_switch(cfg, switch)


@pytest.mark.parametrize("switch, outer_kind, block_kind", [("bn", "bn", "ln"), ("ln", "ln", "ln"),
                                                             ("rms", "rms", "rms")])
def test_switch_reaches_stem_pool_and_unpool(switch, outer_kind, block_kind):
    cfg = _tiny(switch)
    outer, block = outer_and_block_norms(PTv3(cfg))
    stages = len(cfg.enc_depths)
    expected_outer = {"stem_norm"} | {f"enc.{s}.resample.norm" for s in range(1, stages)} | {
        f"dec.{i}.resample.{p}.1" for i in range(stages - 1) for p in ("proj", "proj_skip")}
    assert set(outer) == expected_outer
    assert set(outer.values()) == {KIND[outer_kind]}
    assert len(block) == 3 * (sum(cfg.enc_depths) + sum(cfg.dec_depths)) and set(block.values()) == {KIND[block_kind]}


@pytest.mark.parametrize("switch", ["ln", "rms"])
def test_switched_model_trains(make_batch, switch):
    torch.manual_seed(0)
    model = PTv3(_tiny(switch)).train()
    out = model(make_batch((300, 150), extent=24))
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    assert all(p.grad is not None for n, p in model.named_parameters() if "w_" not in n and "router" not in n)


def test_default_is_the_release_default_and_old_checkpoints_load_the_same(make_batch):
    cfg = _tiny(None)
    assert cfg == norm_switch(cfg, "bn") and cfg.outer_norm == "bn" and cfg.block_norm == "ln"
    data = config_to_data(cfg)
    del data["outer_norm"]  # a checkpoint written before the knob existed
    old = config_from_data(data)
    assert old == cfg
    torch.manual_seed(0)
    before = PTv3(cfg).eval()
    after = PTv3(old).eval()
    after.load_state_dict(before.state_dict(), strict=True)
    batch = make_batch((200,), extent=20)
    with torch.no_grad():
        torch.testing.assert_close(after(batch), before(batch), rtol=0, atol=0)
    # and a switched model records the knob, so its checkpoint rebuilds the same norms
    assert config_from_data(config_to_data(_tiny("rms"))).outer_norm == "rms"


def test_switch_on_ppt_and_bad_values():
    ppt = norm_switch(get_config("ppt-tiny"), "ln")
    assert ppt.backbone.outer_norm == "ln"
    with torch.device("meta"):
        model = build_model(ppt, dataset_names=("scannet", "s3dis"), backend="torch")
    assert isinstance(model, PPT)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    with pytest.raises(BadInput, match="norm switch"):
        norm_switch(get_config("pmoe-tiny"), "gn")
    with pytest.raises(ValueError, match="outer_norm"):
        PTv3Config(outer_norm="gn")
