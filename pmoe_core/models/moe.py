"""Sparse Mixture-of-Experts layer of Point-MoE: softmax router, top-k, gated-MLP experts, dropless dispatch.

The router sees only token features (no dataset id), so experts specialise by what the points look like.
Dispatch sorts the (token, expert) pairs by expert and runs every expert once on its contiguous slice: the work is
the same as a dense gated MLP with k times the hidden size, plus one gather and one scatter (see grouped_mlp.py).
No token is dropped (no capacity factor) and no boolean mask per expert is built.

Experts are gated MLPs (`expert="gated"`, the Point-MoE layer), or, for a model upcycled from a dense PTv3
(`pmoe train --init DENSE --upcycle E`, models/upcycle.py), affine maps W x + b (`expert="linear"`): a copy of the
dense projection is exactly such an expert, and a gated MLP cannot be one (it has no bias and is quadratic in x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pmoe_core.models.grouped_mlp import grouped_gated_mlp


@dataclass
class MoEConfig:
    num_experts: int = 8
    top_k: int = 2
    ratio: float = 2.0  # expert hidden size = ratio * channels
    shared_expert: bool = False  # an always-on expert added to the routed ones (ablation; worse in the paper)
    aux_loss_alpha: float = 0.0  # Switch balance loss weight; 0 in the paper's final setting
    expert: str = "gated"  # "gated": down(relu(gate x) * up x); "linear": W x + b (upcycled dense projection)

    def __post_init__(self) -> None:
        if self.expert not in EXPERT_KINDS:
            raise ValueError(f"expert must be one of {EXPERT_KINDS}, got {self.expert!r}")


EXPERT_KINDS = ("gated", "linear")


@dataclass
class Routing:
    """Routing decision for N tokens: top-k expert ids and renormalised weights, and the full router softmax."""

    expert_ids: torch.Tensor  # (N, k) int64
    weights: torch.Tensor  # (N, k), rows sum to 1
    probs: torch.Tensor  # (N, E), at least float32


class GatedMLP(nn.Module):
    """down(relu(gate(x)) * up(x)), bias-free: the expert function (also the dense baseline and shared expert)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(channels, hidden, bias=False)
        self.up = nn.Linear(channels, hidden, bias=False)
        self.down = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.gate(x)) * self.up(x))


def expert_forward(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """One expert on a slice of tokens; weights stored (in, out) so this is three plain matmuls."""
    return (F.relu(x @ w_gate) * (x @ w_up)) @ w_down


class MoE(nn.Module):
    """Top-k routed gated-MLP experts. forward(x (N, C)) -> (N, C).

    `aux_loss` holds the Switch balance loss of the last forward when aux_loss_alpha > 0 (else None); the trainer adds
    it (see `moe_aux_loss`). When `record` is set (by `routing.record_routing`), `last_routing` keeps the routing.
    """

    def __init__(self, channels: int, cfg: MoEConfig):
        super().__init__()
        if not 1 <= cfg.top_k <= cfg.num_experts:
            raise ValueError(f"top_k must be in 1..num_experts, got {cfg.top_k} of {cfg.num_experts}")
        self.cfg = cfg
        self.channels = channels
        self.linear_experts = cfg.expert == "linear"
        self.hidden = channels if self.linear_experts else max(1, int(round(channels * cfg.ratio)))
        e, c, h = cfg.num_experts, channels, self.hidden
        self.router = nn.Linear(c, e, bias=False)
        # Stacked expert weights (E, in, out): one tensor per projection, ready for batched/grouped dispatch.
        self.shared: nn.Module | None
        if self.linear_experts:
            self.w_proj = nn.Parameter(torch.empty(e, c, c))
            self.b_proj = nn.Parameter(torch.empty(e, c))
            self.shared = nn.Linear(c, c) if cfg.shared_expert else None
        else:
            self.w_gate = nn.Parameter(torch.empty(e, c, h))
            self.w_up = nn.Parameter(torch.empty(e, c, h))
            self.w_down = nn.Parameter(torch.empty(e, h, c))
            self.shared = GatedMLP(c, h) if cfg.shared_expert else None
        self.reset_parameters()
        self.aux_loss: torch.Tensor | None = None
        self.record = False
        self.last_routing: Routing | None = None
        self.layer_name = ""  # stable name such as "enc2.block1.attn.proj", set by the owning block

    def reset_parameters(self) -> None:
        """Each expert initialised as nn.Linear would be: uniform(+-1/sqrt(fan_in))."""
        weights = (self.w_proj, self.b_proj) if self.linear_experts else (self.w_gate, self.w_up, self.w_down)
        bound_in = 1.0 / math.sqrt(self.channels)
        for w in weights:
            bound = bound_in if w.ndim == 2 else 1.0 / math.sqrt(w.shape[1])  # a bias: fan-in of its weight
            nn.init.uniform_(w, -bound, bound)

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"channels={self.channels}, experts={c.num_experts}, top_k={c.top_k}, expert={c.expert}, "
                f"hidden={self.hidden}, shared={c.shared_expert}")

    def expert_parameters(self) -> int:
        """Parameters of one routed expert (what a token does not touch when the expert is not selected)."""
        if self.linear_experts:
            return self.channels * self.channels + self.channels
        return 3 * self.channels * self.hidden

    def route(self, x: torch.Tensor) -> Routing:
        return top_k_routing(self.router(x), self.cfg.top_k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        routing = self.route(x)
        if self.record:
            self.last_routing = Routing(routing.expert_ids.detach(), routing.weights.detach(), routing.probs.detach())
        self.aux_loss = self._aux_loss(routing) if self.cfg.aux_loss_alpha > 0 else None
        out = self.dispatch(x, routing.expert_ids, routing.weights.to(x.dtype))
        if self.shared is not None:
            out = out + self.shared(x)
        return out

    def dispatch(self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Dropless grouped dispatch: sort (token, expert) pairs by expert, one matmul chain per expert slice."""
        k = ids.shape[1]
        flat_ids = ids.reshape(-1)
        pair_order = torch.argsort(flat_ids, stable=True)  # pairs grouped by expert
        counts = torch.bincount(flat_ids, minlength=self.cfg.num_experts).tolist()  # the one host sync of the layer
        if self.linear_experts:
            return grouped_linear(x, pair_order // k, counts, weights.reshape(-1)[pair_order], self.w_proj, self.b_proj)
        return grouped_gated_mlp(x, pair_order // k, counts, weights.reshape(-1)[pair_order],
                                 self.w_gate, self.w_up, self.w_down)

    def _aux_loss(self, routing: Routing) -> torch.Tensor:
        """Switch balance loss alpha * E * sum_i(mean router prob_i * fraction of assignments to i)."""
        return self.cfg.aux_loss_alpha * balance_loss(routing)


def top_k_routing(logits: torch.Tensor, k: int) -> Routing:
    """Router logits (N, E) -> the top-k experts per token with their softmax weights renormalised to sum to 1.

    Renormalised, k copies of one expert give exactly that expert's output whatever the router says: what makes
    sparse upcycling exact at the switch. Shared by this layer and the planner's upcycled LLM (planner/upcycle.py).
    """
    probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # fp32 under AMP
    weights, ids = probs.topk(k, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return Routing(ids, weights, probs)


def balance_loss(routing: Routing) -> torch.Tensor:
    """Switch balance term E * sum_i(mean router prob_i * fraction of assignments to i): 1 when balanced."""
    e = routing.probs.shape[-1]
    frac = torch.bincount(routing.expert_ids.reshape(-1), minlength=e).float() / routing.expert_ids.numel()
    return e * (routing.probs.mean(0) * frac).sum()


def grouped_linear(x: torch.Tensor, token_idx: torch.Tensor, counts: list[int], weights: torch.Tensor,
                   w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over pairs p of weights[p] * (x[token_idx[p]] @ w[e] + b[e]), pairs sorted by expert (counts[e] each).

    Plain autograd: an affine expert has no hidden activation worth a hand-written backward.
    """
    xs = x.index_select(0, token_idx)
    parts, start = [], 0
    for e, count in enumerate(counts):
        if count:
            parts.append(torch.addmm(b[e], xs[start:start + count], w[e]))
        start += count
    if not parts:
        return torch.zeros_like(x)
    y = torch.cat(parts) * weights.unsqueeze(1).to(parts[0].dtype)
    return y.new_zeros(x.shape).index_add_(0, token_idx, y)


def moe_aux_loss(model: nn.Module) -> torch.Tensor | None:
    """Sum of the balance losses of every MoE layer's last forward (None when none computed one)."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MoE) and m.aux_loss is not None]
    return torch.stack(losses).sum() if losses else None
