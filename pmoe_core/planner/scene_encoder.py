"""Scene cloud -> scene tokens: PointNet++ -> spatial transformer -> projector, plus one token per object proposal.

Also turns a `Scene` (coord, uint8 colour) into the fixed-size (N, 7) float input the encoder takes: a seeded
subsample of the foreground points (so the same scene always gives the same input) with each point's proposal id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pmoe_core.planner.objects import (
    FOREGROUND_Z,
    ObjectTokenConfig,
    ObjectTokens,
    foreground_mask,
    with_object_ids,
)
from pmoe_core.planner.pointnet2 import PointNet2Config, PointNet2Encoder
from pmoe_core.planner.spatial_transformer import (
    SpatialTransformer,
    SpatialTransformerConfig,
)

__all__ = ["FOREGROUND_Z", "SceneEncoder", "SceneEncoderConfig", "SceneTokens", "scene_points"]
INPUT_COLUMNS = 7  # xyz, rgb in [0, 1], object-proposal id (-1: none)


@dataclass
class SceneEncoderConfig:
    pointnet: PointNet2Config = field(default_factory=PointNet2Config)
    spatial: SpatialTransformerConfig = field(default_factory=SpatialTransformerConfig)
    objects: ObjectTokenConfig = field(default_factory=ObjectTokenConfig)


@dataclass
class SceneTokens:
    """M point-encoder tokens then K object slots; only object slots have a yaw, colour and extent (else 0)."""

    tokens: torch.Tensor  # (B, M + K, dim)
    centres: torch.Tensor  # (B, M + K, 3) metres
    valid: torch.Tensor  # (B, M + K) bool (an object slot without a proposal is not)
    objects: torch.Tensor  # (B, M + K) bool: a real object proposal
    yaws: torch.Tensor  # (B, M + K)
    colors: torch.Tensor  # (B, M + K, 3) rgb in [0, 1]
    extents: torch.Tensor  # (B, M + K, 3) metres


class SceneEncoder(nn.Module):
    """points (B, N, 7: xyz, rgb, proposal id) -> SceneTokens of width `out_dim`."""

    def __init__(self, cfg: SceneEncoderConfig, out_dim: int):
        super().__init__()
        self.cfg = cfg
        self.pointnet = PointNet2Encoder(cfg.pointnet)
        self.spatial = SpatialTransformer(cfg.pointnet.out_dim, cfg.spatial)
        self.projector = nn.Linear(cfg.spatial.dim, out_dim)
        self.objects = ObjectTokens(cfg.objects)
        self.object_projector = nn.Linear(cfg.objects.dim, out_dim)

    def forward(self, points: torch.Tensor) -> SceneTokens:
        if points.shape[-1] != INPUT_COLUMNS:
            raise ValueError(f"the scene encoder takes {INPUT_COLUMNS} columns per point, got {points.shape[-1]}")
        features, centres = self.pointnet(points[..., :6])
        tokens = self.projector(self.spatial(features, centres))
        b, m = tokens.shape[:2]
        obj = self.objects(points[..., :6], points[..., 6].round().long())
        zeros = centres.new_zeros(b, m, 3)
        no = torch.zeros(b, m, dtype=torch.bool, device=tokens.device)
        return SceneTokens(
            torch.cat([tokens, self.object_projector(obj.features)], 1), torch.cat([centres, obj.anchors], 1),
            torch.cat([~no, obj.valid], 1), torch.cat([no, obj.valid], 1), torch.cat([zeros[..., 0], obj.yaws], 1),
            torch.cat([zeros, obj.colors], 1), torch.cat([zeros, obj.extents], 1),
        )


def scene_points(coord: np.ndarray, color: np.ndarray, n: int, seed: int = 0,
                 objects: ObjectTokenConfig | None = None) -> torch.Tensor:
    """(n, 7) float32 encoder input from a cloud: xyz in metres, rgb (uint8 or [0, 1]) scaled to [0, 1], proposal id.

    The `n` points are drawn from the foreground (`objects.foreground_mask`: above the table, or on it in a colour
    unlike the table's), from every point when there is none; more than `n` are subsampled without replacement,
    fewer padded by repeating points (a repeated point changes no max-pool), with a generator seeded by `seed`.
    Farthest point sampling spreads PointNet++ centres evenly over space, not over points, so even a few bare-table
    points pull most centres onto them: a uniform draw left a 4 cm block one centre of 64.
    """
    coord = np.asarray(coord, dtype=np.float32)
    rgb = np.asarray(color, dtype=np.float32)
    if np.asarray(color).dtype == np.uint8:
        rgb = rgb / 255.0
    if len(coord) == 0:
        raise ValueError("empty point cloud")
    rng = np.random.default_rng(seed)
    mask = foreground_mask(coord, rgb)
    fg = np.flatnonzero(mask)
    pool = fg if len(fg) else np.arange(len(coord))
    idx = pool[_draw(rng, len(pool), n)]
    points = np.concatenate([coord[idx], rgb[idx]], axis=1)
    return torch.from_numpy(with_object_ids(points, objects or ObjectTokenConfig(), mask[idx]))


def _draw(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """n indices into range(size): a sorted sample without replacement, or all of them padded with repeats."""
    if size >= n:
        return np.sort(rng.choice(size, n, replace=False))
    return np.concatenate([np.arange(size), rng.choice(size, n - size, replace=True)])
