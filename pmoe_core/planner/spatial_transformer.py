"""Spatial transformer over scene tokens (LEO-style): attention that knows how far apart tokens are.

Each token carries its centre xyz. A Fourier location encoding of xyz is added to the token, and every head adds
a learned function of the pairwise Euclidean distance to its attention logits, so "next to" and "far from" are
visible to the model directly. No index positions: the block is permutation-equivariant over tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class SpatialTransformerConfig:
    dim: int = 128
    heads: int = 4
    layers: int = 2
    mlp_ratio: float = 2.0
    fourier_bands: int = 8
    max_wavelength: float = 2.0  # metres: the tabletop workspace is about 1 m across
    dropout: float = 0.0


def fourier_xyz(xyz: torch.Tensor, bands: int, max_wavelength: float) -> torch.Tensor:
    """(..., 3) -> (..., 3 + 6*bands): xyz with sin/cos at geometrically spaced wavelengths down from max."""
    freqs = 2 * math.pi / (max_wavelength / 2 ** torch.arange(bands, device=xyz.device, dtype=xyz.dtype))
    angles = xyz[..., None] * freqs  # (..., 3, bands)
    return torch.cat([xyz, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)


class DistanceAttention(nn.Module):
    """Multi-head self-attention with a per-head bias MLP(pairwise distance) added to the logits."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dist_bias = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, heads))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, xyz: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.dist_bias(torch.cdist(xyz, xyz)[..., None]).permute(0, 3, 1, 2)  # (B, H, N, N)
        if mask is not None:
            bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class SpatialBlock(nn.Module):
    def __init__(self, cfg: SpatialTransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = DistanceAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.dim)
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim))

    def forward(self, x: torch.Tensor, xyz: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), xyz, mask)
        return x + self.mlp(self.norm2(x))


class SpatialTransformer(nn.Module):
    """tokens (B, N, in_dim) + centres (B, N, 3) -> (B, N, dim)."""

    def __init__(self, in_dim: int, cfg: SpatialTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(in_dim, cfg.dim)
        self.loc = nn.Sequential(nn.Linear(3 + 6 * cfg.fourier_bands, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))
        self.blocks = nn.ModuleList(SpatialBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor, xyz: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.inp(tokens) + self.loc(fourier_xyz(xyz, self.cfg.fourier_bands, self.cfg.max_wavelength))
        for block in self.blocks:
            x = block(x, xyz, mask)
        return self.norm(x)
