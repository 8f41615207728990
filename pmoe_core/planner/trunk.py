"""The planner's trunk: a few bidirectional transformer blocks over [text tokens; scene tokens], FFNs upcycled to MoE.

Text tokens are cached states of a frozen pretrained LM (planner/text_features.py), scene tokens come from the
point encoder; both are projected to the trunk's width and marked by a learned type embedding (the LM states carry
their own word order; scene tokens carry their position in their features). Every position sees every other: the
scene tokens read the instruction, the instruction reads the scene.

Attention between two scene tokens gets a learned per-head bias from their pairwise relative features (difference
of position, of measured colour, of extent: `relations` (B, S, S, R)): what relates two objects (same colour,
bigger, inside) is then a function the trunk learns from demonstrations, not a fixed rule.

Each block's FFN is a gated MLP (`models.moe.GatedMLP`) while the trunk is dense (Stage I) and becomes
`models.moe.MoE` with E copies of it and a new router at `upcycle()` (Stage II): the top-k weights are renormalised,
so the upcycled trunk returns exactly the dense trunk's output at the switch, whatever the router says.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pmoe_core.models.moe import GatedMLP, MoE, MoEConfig


@dataclass
class TrunkConfig:
    dim: int = 128
    depth: int = 2
    heads: int = 4
    ffn_ratio: float = 2.0  # gated-MLP hidden size = ratio * dim (each expert's, after upcycling)
    experts: int = 4  # experts per FFN after `upcycle()`; 1 = the trunk stays dense
    top_k: int = 2
    relation_dim: int = 0  # pairwise features per scene-token pair (0: no relation bias)
    aux_loss_alpha: float = 0.01  # Switch balance loss weight of the upcycled FFNs


@dataclass
class TrunkOutput:
    """The trunk's states, split back into their parts, and the MoE balance loss of this forward (0 when dense)."""

    text: torch.Tensor  # (B, T, dim)
    scene: torch.Tensor  # (B, S, dim)
    text_mask: torch.Tensor  # (B, T) bool
    scene_mask: torch.Tensor  # (B, S) bool
    aux_loss: torch.Tensor  # ()

    @property
    def seq(self) -> torch.Tensor:
        """(B, T + S, dim): text then scene."""
        return torch.cat([self.text, self.scene], dim=1)

    @property
    def mask(self) -> torch.Tensor:
        return torch.cat([self.text_mask, self.scene_mask], dim=1)


class TrunkBlock(nn.Module):
    def __init__(self, cfg: TrunkConfig):
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn: nn.Module = GatedMLP(d, round(d * cfg.ffn_ratio))
        if cfg.relation_dim:
            self.relation = nn.Sequential(nn.Linear(cfg.relation_dim, 32), nn.GELU(), nn.Linear(32, cfg.heads))
            nn.init.zeros_(self.relation[2].weight)  # no bias until learned
            nn.init.zeros_(self.relation[2].bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, relations: torch.Tensor | None, scene_from: int):
        b, n, d = x.shape
        h = self.cfg.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(b, h, n, n, dtype=x.dtype, device=x.device)
        if relations is not None and self.cfg.relation_dim:
            bias[:, :, scene_from:, scene_from:] = self.relation(relations).permute(0, 3, 1, 2)
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.out(y.transpose(1, 2).reshape(b, n, d))
        y = self.norm2(x)
        flat = y[mask]  # real positions only: padding never reaches a router
        out = torch.zeros_like(y)
        out[mask] = self.ffn(flat)
        return x + out


class Trunk(nn.Module):
    """forward(text (B, T, text_dim), text_mask, scene (B, S, scene_dim), scene_mask, relations) -> TrunkOutput."""

    def __init__(self, config: TrunkConfig, text_dim: int, scene_dim: int):
        super().__init__()
        self.config = config
        d = config.dim
        self.text_in = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, d))
        self.scene_in = nn.Linear(scene_dim, d)
        self.kind = nn.Parameter(torch.randn(2, d) * 0.02)  # text / scene
        self.blocks = nn.ModuleList(TrunkBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d)

    @property
    def is_moe(self) -> bool:
        return any(isinstance(block.ffn, MoE) for block in self.blocks)

    @torch.no_grad()
    def upcycle(self) -> None:
        """Each dense FFN becomes `experts` copies of itself behind a new router (zero-initialised: uniform routing
        at the switch); exact, since the top-k weights sum to one. A no-op for experts=1 or when already done."""
        cfg = self.config
        if cfg.experts <= 1 or self.is_moe:
            return
        for block in self.blocks:
            dense: GatedMLP = block.ffn
            moe = MoE(cfg.dim, MoEConfig(num_experts=cfg.experts, top_k=cfg.top_k, ratio=cfg.ffn_ratio,
                                         aux_loss_alpha=cfg.aux_loss_alpha))
            moe.to(dense.gate.weight.device, dense.gate.weight.dtype)
            moe.w_gate.copy_(dense.gate.weight.t().expand_as(moe.w_gate))
            moe.w_up.copy_(dense.up.weight.t().expand_as(moe.w_up))
            moe.w_down.copy_(dense.down.weight.t().expand_as(moe.w_down))
            nn.init.normal_(moe.router.weight, std=0.02 / cfg.dim**0.5)  # near-uniform, yet the experts can part
            block.ffn = moe

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, scene: torch.Tensor, scene_mask: torch.Tensor,
                relations: torch.Tensor | None = None) -> TrunkOutput:
        t = text.shape[1]
        x = torch.cat([self.text_in(text) + self.kind[0], self.scene_in(scene) + self.kind[1]], dim=1)
        mask = torch.cat([text_mask, scene_mask], dim=1)
        for block in self.blocks:
            x = block(x, mask, relations, t)
        x = self.norm(x)
        aux = [blk.ffn.aux_loss for blk in self.blocks if isinstance(blk.ffn, MoE) and blk.ffn.aux_loss is not None]
        aux_loss = torch.stack(aux).mean() if aux else x.new_zeros(())
        return TrunkOutput(x[:, :t], x[:, t:], text_mask, scene_mask, aux_loss)
