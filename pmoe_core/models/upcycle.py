"""Sparse upcycling: a dense PTv3 becomes a Point-MoE whose output equals the dense model's at initialisation.

Each attention output projection Linear(C, C) (weight W, bias b) becomes an MoE of E affine experts
(`MoEConfig(expert="linear")`), every expert a copy of (W, b), under a freshly initialised router. The routed
weights of a token are renormalised to sum to 1, so sum_k w_k (W x + b) = W x + b whatever the router picks: the
upcycled model computes the dense function (to float rounding). No noise is added: the random router sends different
tokens to different experts, so the copies get different gradients and diverge from the first step; the router's
own gradient is zero until they do (identical experts make its choice irrelevant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

from .moe import MoE, MoEConfig
from .ptv3 import PTv3Config

UPCYCLE_TOP_K = 2  # Point-MoE's top-k


def upcycle_config(cfg: PTv3Config, num_experts: int, top_k: int = UPCYCLE_TOP_K) -> PTv3Config:
    """The dense config with every attention projection an MoE of `num_experts` linear experts (top-k routed)."""
    if cfg.moe is not None:
        raise ValueError("the model already has MoE layers: upcycling starts from a dense PTv3")
    if num_experts < 2:
        raise ValueError(f"upcycling needs at least 2 experts, got {num_experts}")
    moe = MoEConfig(num_experts=num_experts, top_k=min(top_k, num_experts), ratio=1.0, expert="linear")
    return dataclasses.replace(cfg, moe=moe, moe_at="proj")


def upcycled_state(model: nn.Module, dense: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for `model` (built from an upcycle_config) out of the dense model's `dense` state dict: each
    upcycled projection's weight and bias copied into every expert, the routers kept at the model's fresh init, every
    other entry as it is. A projection missing from `dense` is left out, so a strict load names it."""
    state = dict(dense)
    for name, module in model.named_modules():
        if not (isinstance(module, MoE) and module.linear_experts):
            continue
        weight, bias = state.pop(f"{name}.weight", None), state.pop(f"{name}.bias", None)
        if weight is None or bias is None:
            continue
        e = module.cfg.num_experts
        state[f"{name}.w_proj"] = weight.t().unsqueeze(0).expand(e, -1, -1).clone()  # experts store (in, out)
        state[f"{name}.b_proj"] = bias.unsqueeze(0).expand(e, -1).clone()
        state[f"{name}.router.weight"] = module.router.weight.detach().clone()
    return state


__all__ = ["UPCYCLE_TOP_K", "upcycle_config", "upcycled_state"]
