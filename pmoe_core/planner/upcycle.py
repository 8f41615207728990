"""Sparse upcycling: each dense SwiGLU FFN of a LLaMA-family model becomes E identical experts + a new top-k router.

Experts are copies of the original MLP module, so their linears keep the names gate_proj/up_proj/down_proj and
peft's LoraConfig(target_modules=[...]) finds every expert. Top-k weights are renormalised to sum to one, so with
identical experts the MoE layer returns exactly the dense output at step 0 (whatever the router says). Dispatch is
dropless: token copies are sorted by expert and each expert runs once on its contiguous slice.

Routing (softmax, top-k, renormalisation) and the balance loss are `pmoe_core.models.moe`'s, shared with the
point-cloud MoE layer. The experts are not: here each is a copied HF LLaMA MLP module, so that peft finds its
gate_proj/up_proj/down_proj linears by name and wraps them with LoRA; models/moe.MoE stores experts as stacked
(E, in, out) tensors for its grouped dispatch, which peft cannot wrap.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pmoe_core.models.moe import balance_loss, top_k_routing


@dataclass
class MoEConfig:
    num_experts: int = 4
    top_k: int = 2
    aux_loss_weight: float = 0.01  # Switch-style load balancing; 0 turns it off


class MoEMLP(nn.Module):
    """Top-k routed mixture of SwiGLU experts; `aux_loss` holds the last forward's load-balancing term."""

    def __init__(self, dense: nn.Module, hidden_size: int, cfg: MoEConfig):
        super().__init__()
        if not 1 <= cfg.top_k <= cfg.num_experts:
            raise ValueError(f"top_k {cfg.top_k} must be in 1..num_experts ({cfg.num_experts})")
        self.num_experts, self.top_k = cfg.num_experts, cfg.top_k
        self.experts = nn.ModuleList(copy.deepcopy(dense) for _ in range(cfg.num_experts))
        self.router = nn.Linear(hidden_size, cfg.num_experts, bias=False)
        nn.init.normal_(self.router.weight, std=hidden_size**-0.5)
        self.router.to(next(dense.parameters()).dtype)
        self.aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        routing = top_k_routing(self.router(flat), self.top_k)
        weights, experts = routing.weights.to(x.dtype), routing.expert_ids

        expert_of = experts.reshape(-1)  # (T*k,) token copy -> expert
        order = torch.argsort(expert_of, stable=True)
        token_of = order // self.top_k
        counts = torch.bincount(expert_of, minlength=self.num_experts).tolist()
        out = torch.zeros_like(flat)
        start = 0
        for e, count in enumerate(counts):
            if count:
                rows = token_of[start : start + count]
                y = self.experts[e](flat[rows]) * weights.reshape(-1)[order[start : start + count], None]
                out = out.index_add(0, rows, y)
            start += count

        self.aux_loss = balance_loss(routing)
        return out.reshape(shape)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a LLaMA-family causal LM (`model.model.layers`)."""
    return model.model.layers


def upcycle(model: nn.Module, cfg: MoEConfig) -> nn.Module:
    """Replace every decoder layer's `mlp` by an MoEMLP copied from it, in place; returns the model."""
    hidden = model.config.hidden_size
    for layer in decoder_layers(model):
        if isinstance(layer.mlp, MoEMLP):
            raise ValueError("model is already upcycled")
        layer.mlp = MoEMLP(layer.mlp, hidden, cfg)
    return model


def moe_layers(model: nn.Module) -> list[MoEMLP]:
    return [m for m in model.modules() if isinstance(m, MoEMLP)]


def aux_loss(model: nn.Module) -> torch.Tensor:
    """Mean load-balancing loss over the MoE layers' last forward (0 where none ran)."""
    terms = [m.aux_loss for m in moe_layers(model) if m.aux_loss is not None]
    return torch.stack(terms).mean() if terms else torch.zeros(())
