"""Sparse upcycling: MoE == dense at initialisation, dropless dispatch == a per-token reference, aux loss."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.planner.llm import TinyLlamaSpec, tiny_llm
from pmoe_core.planner.upcycle import MoEConfig, MoEMLP, aux_loss, moe_layers, upcycle


@pytest.mark.parametrize("experts,top_k", [(4, 2), (2, 1), (2, 2), (4, 1)])
def test_upcycled_tiny_llama_equals_dense_at_init(experts, top_k):
    dense, _ = tiny_llm(TinyLlamaSpec(seed=3))
    ids = torch.randint(0, 256, (2, 17))
    with torch.no_grad():
        ref = dense(input_ids=ids).logits
        moe = upcycle(dense, MoEConfig(num_experts=experts, top_k=top_k))
        out = moe(input_ids=ids).logits
    assert len(moe_layers(moe)) == moe.config.num_hidden_layers
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_expert_linears_keep_llama_names():
    model = upcycle(tiny_llm()[0], MoEConfig(num_experts=2, top_k=1))
    names = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    for layer in range(model.config.num_hidden_layers):
        for e in range(2):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                assert f"model.layers.{layer}.mlp.experts.{e}.{proj}" in names
        assert f"model.layers.{layer}.mlp.router" in names


def test_dispatch_matches_per_token_reference_with_distinct_experts():
    dense = tiny_llm()[0].model.layers[0].mlp
    moe = MoEMLP(dense, 64, MoEConfig(num_experts=4, top_k=2))
    with torch.no_grad():
        for e, expert in enumerate(moe.experts):  # make the experts differ
            for p in expert.parameters():
                p.add_(torch.randn_like(p) * 0.1 * (e + 1))
        x = torch.randn(3, 7, 64)
        out = moe(x)
        flat = x.reshape(-1, 64)
        probs = torch.softmax(moe.router(flat), -1)
        ref = torch.zeros_like(flat)
        for i in range(len(flat)):
            w, idx = probs[i].topk(2)
            w = w / w.sum()
            for wj, j in zip(w, idx):
                ref[i] += wj * moe.experts[int(j)](flat[i])
    torch.testing.assert_close(out, ref.reshape(3, 7, 64), atol=1e-5, rtol=1e-5)


def test_aux_loss_is_one_when_uniform_and_num_experts_when_collapsed():
    dense = tiny_llm()[0].model.layers[0].mlp
    moe = MoEMLP(dense, 64, MoEConfig(num_experts=4, top_k=1))
    v = torch.nn.functional.normalize(torch.randn(64), dim=0)
    x = 5 * v + 0.01 * torch.randn(256, 64)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe(x)  # uniform probs (P_i = 1/4) and all ties on expert 0: 4 * (1 * 1/4) = 1
        assert moe.aux_loss.item() == pytest.approx(1.0)
        moe.router.weight[0] = 10 * v  # every token strongly to expert 0: f_0 = 1, P_0 ~ 1 -> ~4
        moe(x)
        assert moe.aux_loss.item() == pytest.approx(4.0, abs=1e-3)
    model = upcycle(tiny_llm()[0], MoEConfig())
    model(input_ids=torch.randint(0, 256, (1, 9)))
    loss = aux_loss(model)
    assert loss.requires_grad and 0.0 < loss.item() <= 4.0


def test_top_k_must_fit():
    with pytest.raises(ValueError):
        MoEMLP(tiny_llm()[0].model.layers[0].mlp, 64, MoEConfig(num_experts=2, top_k=3))
    model = upcycle(tiny_llm()[0], MoEConfig())
    with pytest.raises(ValueError, match="already"):
        upcycle(model, MoEConfig())
