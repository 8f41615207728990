"""Sparse upcycling (`pmoe train --init DENSE --upcycle E`): the upcycled Point-MoE computes the dense model's function
at initialisation, its linear experts dispatch like the gated ones, and an upcycled run trains and evaluates.

(Named test_moe_upcycle.py: tests/planner_model/test_upcycle.py exists and test folders are not packages.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pmoe_core.engine.model_io import config_from_data, config_to_data
from pmoe_core.errors import BadInput, FormatError
from pmoe_core.models import build_model
from pmoe_core.models.moe import MoE, MoEConfig
from pmoe_core.models.presets import ptv3_tiny
from pmoe_core.models.upcycle import upcycle_config, upcycled_state

TEXT_DIM = 16


def naive_linear_moe(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every linear expert on every token, mixed by a dense (N, E) weight matrix zero off the top-k."""
    probs = torch.softmax(x @ moe.router.weight.T, dim=-1)
    w, ids = probs.topk(moe.cfg.top_k, dim=-1)
    dense_w = torch.zeros_like(probs).scatter(1, ids, w / w.sum(-1, keepdim=True))
    outs = torch.stack([x @ moe.w_proj[e] + moe.b_proj[e] for e in range(moe.cfg.num_experts)], 1)
    out = (dense_w.unsqueeze(-1) * outs).sum(1)
    return out + moe.shared(x) if moe.shared is not None else out


@pytest.mark.parametrize("cfg", [MoEConfig(4, 2, expert="linear"), MoEConfig(3, 1, expert="linear", shared_expert=True)])
def test_linear_experts_equal_naive_forward_and_backward(cfg):
    torch.manual_seed(0)
    moe = MoE(12, cfg).double()
    with torch.no_grad():
        moe.router.weight.normal_()
    assert not hasattr(moe, "w_gate") and moe.expert_parameters() == 12 * 12 + 12
    x = torch.randn(200, 12, dtype=torch.double)
    grads = []
    for fn in (moe, lambda t: naive_linear_moe(moe, t)):
        moe.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = fn(xi)
        (y * torch.sin(torch.arange(y.numel(), dtype=y.dtype)).view_as(y)).sum().backward()
        grads.append([y.detach(), xi.grad] + [p.grad.clone() for p in moe.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_linear_moe_on_no_tokens():
    moe = MoE(8, MoEConfig(4, 2, expert="linear"))
    assert moe(torch.zeros(0, 8)).shape == (0, 8)


def test_expert_kind_is_a_recorded_checked_config_knob():
    cfg = upcycle_config(ptv3_tiny(), 4)
    assert cfg.moe == MoEConfig(num_experts=4, top_k=2, ratio=1.0, expert="linear") and cfg.moe_at == "proj"
    assert config_from_data(config_to_data(cfg)) == cfg
    data = config_to_data(cfg)
    data["moe"]["expert"] = "conv"
    with pytest.raises(FormatError, match="expert must be one of"):
        config_from_data(data, "x.pt")
    with pytest.raises(ValueError, match="already has MoE"):
        upcycle_config(cfg, 4)
    with pytest.raises(ValueError, match="at least 2"):
        upcycle_config(ptv3_tiny(), 1)


@pytest.mark.parametrize("experts", [2, 4])
def test_upcycled_model_equals_the_dense_model(make_batch, experts):
    torch.manual_seed(0)
    dense = build_model(ptv3_tiny(), text_dim=TEXT_DIM, backend="torch").eval()
    with torch.no_grad():  # non-trivial biases, so a lost bias would show
        for name, p in dense.named_parameters():
            if name.endswith("attn.proj.bias"):
                p.normal_(0, 0.5)
    moe = build_model(upcycle_config(ptv3_tiny(), experts), text_dim=TEXT_DIM, backend="torch").eval()
    moe.load_state_dict(upcycled_state(moe, dense.state_dict()))  # strict: every key accounted for
    layers = [m for m in moe.modules() if isinstance(m, MoE)]
    assert layers and all(m.linear_experts and m.cfg.num_experts == experts for m in layers)
    assert all(m.router.weight.abs().sum() > 0 for m in layers)  # a fresh random router, not a copied zero
    batch = make_batch((700, 500), surface=True)
    classes = torch.randn(5, TEXT_DIM)
    with torch.no_grad():
        want, got = dense(batch, classes), moe(batch, classes)
        for m in layers:
            m.record = True
        moe(batch, classes)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(want, torch.zeros_like(want))
    used = torch.unique(torch.cat([m.last_routing.expert_ids.reshape(-1) for m in layers]))
    assert used.numel() == experts  # the router really spreads tokens, yet the output is the dense one


def _store(data: Path) -> None:
    """Two rooms of floor + wall + box (ScanNet indices), enough for a few training steps and an eval."""
    from pmoe_core.scene import Scene
    from pmoe_core.store import StoreWriter

    rng = np.random.default_rng(0)
    with StoreWriter.open(str(data / "scannet.zarr"), "scannet") as writer:
        for split, name in (("train", "a"), ("train", "b"), ("val", "c")):
            k = 800
            floor = np.c_[rng.uniform(0, 3, (k, 2)), rng.normal(0, 0.005, k)]
            wall = np.c_[rng.normal(0, 0.005, k), rng.uniform(0, 3, k), rng.uniform(0, 2, k)]
            box = np.c_[rng.uniform(1, 1.5, (k, 2)), rng.uniform(0, 0.7, k)]
            coord = np.concatenate([floor, wall, box]).astype(np.float32)
            segment = np.repeat([1, 0, 6], k).astype(np.int16)
            color = rng.integers(0, 255, (3 * k, 3)).astype(np.uint8)
            writer.append(split, Scene(name=name, coord=coord, color=color, segment=segment))


@pytest.mark.slow
def test_upcycled_run_trains_and_its_checkpoint_evaluates(tmp_path, monkeypatch):
    from pmoe_core.engine.checkpoint import load_checkpoint
    from pmoe_core.engine.evaluate import evaluate
    from pmoe_core.engine.init_from import load_init
    from pmoe_core.engine.model_io import load_segmentation_model
    from pmoe_core.engine.train import TrainConfig, train

    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    _store(data)
    base = {"data": str(data), "datasets": ("scannet",), "steps": 2, "batch_size": 1, "workers": 0,
            "max_points": 3000, "tensorboard": False, "device": "cpu", "backend": "torch"}
    dense = train(TrainConfig(out=str(tmp_path / "dense"), preset="ptv3-tiny", **base), echo=lambda s: None)
    up = train(TrainConfig(out=str(tmp_path / "up"), init=str(dense.checkpoint), upcycle=3, **base),
               echo=lambda s: None)
    meta = load_checkpoint(up.checkpoint)["meta"]
    assert meta["init_from"]["upcycle"] == {"experts": 3, "top_k": 2, "expert": "linear"}
    assert meta["config"]["moe"]["expert"] == "linear" and meta["config"]["moe"]["num_experts"] == 3
    model, _ = load_segmentation_model(str(up.checkpoint))  # eval/predict/route-inspect rebuild it from the config
    layers = [m for m in model.modules() if isinstance(m, MoE)]
    assert layers and all(m.linear_experts for m in layers)
    assert any(not torch.equal(m.w_proj[0], m.w_proj[1]) for m in layers)  # two steps made the copies diverge
    (result,) = evaluate(str(up.checkpoint), str(data), device="cpu").results
    assert result.points > 0 and 0 <= result.miou <= 1
    with pytest.raises(BadInput, match="already has MoE"):
        load_init(up.checkpoint, TEXT_DIM, upcycle=2)


def test_cli_refuses_upcycle_without_init(tmp_path, capsys):
    from pmoe_cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--datasets", "scannet", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
              "--upcycle", "4"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == ("pmoe: error: --upcycle needs --init DENSE: the dense PTv3 checkpoint "
                                               "whose projections become the experts")
    assert not (tmp_path / "run").exists()
