"""Scene cloud -> LLM-space tokens: PointNet++ -> spatial transformer -> linear projector (the Stage I aligner).

Also turns a `Scene` (coord, uint8 colour) into the fixed-size (N, 6) float input the encoder takes: a seeded
subsample, so the same scene always gives the same input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pmoe_core.planner.objects import ObjectTokenConfig, ObjectTokens, with_object_ids
from pmoe_core.planner.pointnet2 import PointNet2Config, PointNet2Encoder
from pmoe_core.planner.spatial_transformer import SpatialTransformer, SpatialTransformerConfig


@dataclass
class SceneEncoderConfig:
    pointnet: PointNet2Config = field(default_factory=PointNet2Config)
    spatial: SpatialTransformerConfig = field(default_factory=SpatialTransformerConfig)
    objects: ObjectTokenConfig = field(default_factory=ObjectTokenConfig)

    @property
    def input_columns(self) -> int:
        """xyz + rgb, and the object-proposal id when object tokens are on (see `objects.with_object_ids`)."""
        return 7 if self.objects.max_objects else 6


class SceneEncoder(nn.Module):
    """points (B, N, 6: xyz + rgb [+ proposal id]) -> (tokens (B, M [+ K], llm_dim), centres (B, M [+ K], 3),
    valid (B, M [+ K]), yaws (B, M [+ K]), colours (B, M [+ K], 3)): the PointNet++ tokens, then one token per
    object proposal when those are on. Only object tokens have a measured yaw (`objects.top_face_yaw`) and mean
    colour; the others read 0."""

    def __init__(self, cfg: SceneEncoderConfig, llm_dim: int):
        super().__init__()
        self.cfg = cfg
        self.pointnet = PointNet2Encoder(cfg.pointnet)
        self.spatial = SpatialTransformer(cfg.pointnet.out_dim, cfg.spatial)
        self.projector = nn.Linear(cfg.spatial.dim, llm_dim)
        if cfg.objects.max_objects:
            self.objects = ObjectTokens(cfg.objects)
            self.object_projector = nn.Linear(cfg.objects.dim, llm_dim)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if points.shape[-1] != self.cfg.input_columns:
            raise ValueError(f"the scene encoder takes {self.cfg.input_columns} columns per point, "
                             f"got {points.shape[-1]}")
        features, centres = self.pointnet(points[..., :6])
        tokens = self.projector(self.spatial(features, centres))
        valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        yaws, colors = centres.new_zeros(tokens.shape[:2]), centres.new_zeros(*tokens.shape[:2], 3)
        if not self.cfg.objects.max_objects:
            return tokens, centres, valid, yaws, colors
        obj, anchors, obj_valid, obj_yaws, obj_colors = self.objects(points[..., :6], points[..., 6].round().long())
        return (torch.cat([tokens, self.object_projector(obj)], 1), torch.cat([centres, anchors], 1),
                torch.cat([valid, obj_valid], 1), torch.cat([yaws, obj_yaws], 1), torch.cat([colors, obj_colors], 1))


FOREGROUND_Z = 0.006  # m above the table plane z = 0: clear of the cameras' depth noise on the table (+-4 mm)


def scene_points(coord: np.ndarray, color: np.ndarray, n: int, seed: int = 0, foreground: float = 0.0,
                 objects: ObjectTokenConfig | None = None) -> torch.Tensor:
    """(n, 6) float32 encoder input from a cloud: xyz in metres, rgb (uint8 or [0, 1]) scaled to [0, 1].

    Clouds larger than `n` are subsampled without replacement, smaller ones padded by repeating points (a repeated
    point changes no max-pool), both with a generator seeded by `seed`. With `foreground` > 0, up to that fraction of
    the `n` points is drawn from points above the table plane first; with 1, only those (when there are any).
    Farthest point sampling spreads PointNet++ centres evenly over space, not over points, so even a few table
    points pull most centres onto bare table: a uniform draw leaves a 4 cm block one centre of 64, too few to
    locate it to a centimetre. With `objects` (max_objects > 0), each row also gets its proposal id (n, 7).
    """
    coord = np.asarray(coord, dtype=np.float32)
    rgb = np.asarray(color, dtype=np.float32)
    if np.asarray(color).dtype == np.uint8:
        rgb = rgb / 255.0
    if len(coord) == 0:
        raise ValueError("empty point cloud")
    rng = np.random.default_rng(seed)
    fg = np.flatnonzero(coord[:, 2] > FOREGROUND_Z) if foreground > 0 else np.zeros(0, dtype=np.int64)
    if foreground >= 1 and len(fg):
        idx = fg[_draw(rng, len(fg), n)]
    elif len(coord) >= n:
        take = min(len(fg), int(round(foreground * n)))
        first = rng.choice(fg, take, replace=False) if take else np.zeros(0, dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(coord)), first, assume_unique=True)
        idx = np.sort(np.concatenate([first, rng.choice(rest, n - take, replace=False)]))
    else:
        idx = _draw(rng, len(coord), n)
    points = np.concatenate([coord[idx], rgb[idx]], axis=1)
    if objects is not None and objects.max_objects:
        points = with_object_ids(points, objects, FOREGROUND_Z)
    return torch.from_numpy(points)


def _draw(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """n indices into range(size): a sorted sample without replacement, or all of them padded with repeats."""
    if size >= n:
        return np.sort(rng.choice(size, n, replace=False))
    return np.concatenate([np.arange(size), rng.choice(size, n - size, replace=True)])
