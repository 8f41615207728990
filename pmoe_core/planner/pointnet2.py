"""PointNet++ set abstraction in plain torch: the planner's point encoder, over the whole scene cloud (no masks).

Input points are first put in a canonical (lexicographic xyz, then rgb) order, and farthest point sampling starts
at the point farthest from the centroid. Every later choice (FPS argmax, ball-query nearest-k) then breaks ties by
that canonical order, so the tokens do not depend on the order the points arrive in. LayerNorm, not BatchNorm, in
the shared MLPs: the planner trains on batches of one or two scenes, and per-sample normalisation keeps train and
eval identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class SALayer:
    """One set-abstraction level: `npoint` centres, neighbours within `radius` (at most `nsample`), MLP widths."""

    npoint: int
    radius: float
    nsample: int
    mlp: list[int]


@dataclass
class PointNet2Config:
    in_features: int = 3  # rgb in [0, 1] beside xyz
    layers: list[SALayer] = field(
        default_factory=lambda: [SALayer(256, 0.04, 32, [32, 32, 64]), SALayer(64, 0.12, 32, [64, 64, 128])]
    )

    @property
    def out_dim(self) -> int:
        return self.layers[-1].mlp[-1]


def canonical_order(points: torch.Tensor) -> torch.Tensor:
    """Indices (B, N) sorting each cloud lexicographically by its columns (x first): an order-free reference order."""
    order = torch.arange(points.shape[1], device=points.device).expand(points.shape[0], -1)
    for c in reversed(range(points.shape[2])):  # stable sorts from the last key to the first
        key = torch.gather(points[..., c], 1, order)
        order = torch.gather(order, 1, torch.sort(key, dim=1, stable=True).indices)
    return order


def farthest_point_sample(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """Indices (B, npoint) of FPS centres, vectorised over the batch; starts at the point farthest from the centroid."""
    b, n, _ = xyz.shape
    npoint = min(npoint, n)
    batch = torch.arange(b, device=xyz.device)
    idx = torch.empty(b, npoint, dtype=torch.long, device=xyz.device)
    far = ((xyz - xyz.mean(dim=1, keepdim=True)) ** 2).sum(-1).argmax(dim=1)
    dist = torch.full((b, n), float("inf"), device=xyz.device, dtype=xyz.dtype)
    for i in range(npoint):
        idx[:, i] = far
        d = ((xyz - xyz[batch, far][:, None, :]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(dim=1)
    return idx


def ball_query(xyz: torch.Tensor, centres: torch.Tensor, radius: float, nsample: int) -> torch.Tensor:
    """(B, M, nsample) indices of each centre's nearest points within `radius`, short lists padded with the nearest.

    Nearest-first (not PointNet++'s first-in-index-order) so the neighbourhood does not depend on point order.
    """
    k = min(nsample, xyz.shape[1])
    d = torch.cdist(centres, xyz)  # (B, M, N)
    dist, idx = torch.topk(d, k, dim=-1, largest=False, sorted=True)
    return torch.where(dist <= radius, idx, idx[..., :1])


def gather_points(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values (B, N, C), idx (B, ...) -> (B, ..., C)."""
    b = values.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(values, 1, flat[..., None].expand(-1, -1, values.shape[-1]))
    return out.reshape(*idx.shape, values.shape[-1])


class SharedMLP(nn.Sequential):
    """Per-point Linear -> LayerNorm -> ReLU stack (a 1x1 convolution by another name)."""

    def __init__(self, widths: list[int]):
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
        super().__init__(*layers)


class SetAbstraction(nn.Module):
    """FPS centres, ball-query groups of (relative xyz / radius, features), shared MLP, max-pool per group."""

    def __init__(self, layer: SALayer, in_features: int):
        super().__init__()
        self.layer = layer
        self.mlp = SharedMLP([in_features + 3, *layer.mlp])

    def forward(self, xyz: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centre_idx = farthest_point_sample(xyz, self.layer.npoint)
        centres = gather_points(xyz, centre_idx)  # (B, M, 3)
        group = ball_query(xyz, centres, self.layer.radius, self.layer.nsample)  # (B, M, K)
        rel = (gather_points(xyz, group) - centres[:, :, None, :]) / self.layer.radius
        grouped = torch.cat([rel, gather_points(features, group)], dim=-1)  # (B, M, K, 3 + C)
        return centres, self.mlp(grouped).amax(dim=2)


class PointNet2Encoder(nn.Module):
    """Scene cloud (B, N, 3 + in_features) -> tokens (B, M, out_dim) and their centres (B, M, 3)."""

    def __init__(self, config: PointNet2Config):
        super().__init__()
        self.config = config
        widths = [config.in_features] + [layer.mlp[-1] for layer in config.layers[:-1]]
        self.levels = nn.ModuleList(SetAbstraction(layer, c) for layer, c in zip(config.layers, widths))

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = gather_points(points, canonical_order(points))
        xyz, features = points[..., :3], points[..., 3:]
        for level in self.levels:
            xyz, features = level(xyz, features)
        return features, xyz
