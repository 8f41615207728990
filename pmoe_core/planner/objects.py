"""Object proposals from the observed cloud alone, and one token per proposal.

Tabletop objects stand apart (the scene placer keeps >= 1.5 cm between footprints), so the connected components of
the foreground points (`foreground_mask`: above the table, or on it in a colour unlike the table's, as a coloured
zone patch 1 mm thick is), linked within `radius` in the xy plane, are the objects: no masks, no labels. A token
per component, anchored at its footprint centre and top, gives the planner's pointer one place to point at per
object, where PointNet++ spreads ~15 centres over a block and none at a bowl's centre. Components smaller than
`min_points` are dropped: a few points of a bowl's floor poke through the table cut under depth noise.

The proposal id of every encoder input point travels as a seventh input column (`with_object_ids`), computed once
per cloud with scipy, so training batches pay nothing for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import nn

from pmoe_core.planner.colour import rgb_to_lab
from pmoe_core.planner.spatial_transformer import fourier_xyz


@dataclass
class ObjectTokenConfig:
    max_objects: int = 10  # object slots per scene (the largest proposals are kept)
    radius: float = 0.012  # m, xy link distance between points of one object
    min_points: int = 24
    hidden: int = 64
    dim: int = 128
    fourier_bands: int = 8


FOREGROUND_Z = 0.006  # m above the table plane z = 0: clear of the cameras' depth noise on the table (+-4 mm)
COLOUR_CUT = 0.12  # rgb distance (0-1 scale) from the table's colour beyond which a point on the table is an object


def foreground_mask(coord: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """(N,) bool: points more than `FOREGROUND_Z` above the table plane, and points on it whose colour is farther
    than `COLOUR_CUT` from the table's (the median colour of the points at table height, measured, not assumed).
    A zone is a coloured patch 1 mm thick, inside the depth noise: by height alone it is invisible."""
    above = coord[:, 2] > FOREGROUND_Z
    low = ~above
    if not low.any():
        return above
    table = np.median(rgb[low], axis=0)
    coloured = low & (np.linalg.norm(rgb - table, axis=1) > COLOUR_CUT)
    return above | coloured


def segment(coord: np.ndarray, rgb: np.ndarray, cfg: ObjectTokenConfig,
            foreground: np.ndarray | None = None) -> np.ndarray:
    """(N,) int64 proposal ids in [0, max_objects) ordered by footprint centre (x, then y), -1 for points on the
    table, in dropped specks, or beyond the largest `max_objects` components. `rgb` in [0, 1]; `foreground` (N,)
    bool when already known (a subsample of foreground points has no table left to measure the table's colour by)."""
    ids = np.full(len(coord), -1, dtype=np.int64)
    fg = np.flatnonzero(foreground_mask(coord, rgb) if foreground is None else foreground)
    if len(fg) == 0:
        return ids
    pairs = cKDTree(coord[fg, :2]).query_pairs(cfg.radius, output_type="ndarray")
    links = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(fg), len(fg)))
    _, labels = connected_components(links, directed=False)
    counts = np.bincount(labels)
    kept = [c for c in np.argsort(-counts, kind="stable")[: cfg.max_objects] if counts[c] >= cfg.min_points]
    centres = {c: _footprint_centre(coord[fg[labels == c]]) for c in kept}
    for slot, c in enumerate(sorted(kept, key=lambda c: tuple(centres[c]))):
        ids[fg[labels == c]] = slot
    return ids


def _footprint_centre(xyz: np.ndarray) -> np.ndarray:
    return (xyz[:, :2].min(0) + xyz[:, :2].max(0)) / 2


def with_object_ids(points: np.ndarray, cfg: ObjectTokenConfig, foreground: np.ndarray | None = None) -> np.ndarray:
    """(..., N, 6) encoder inputs -> (..., N, 7) with the proposal id (as float) appended; `foreground` (..., N)
    as in `segment`."""
    flat = points.reshape(-1, *points.shape[-2:])
    fgs = [None] * len(flat) if foreground is None else foreground.reshape(len(flat), -1)
    ids = np.stack([segment(p[:, :3], p[:, 3:6], cfg, f) for p, f in zip(flat, fgs)]).astype(points.dtype)
    return np.concatenate([flat, ids[..., None]], axis=-1).reshape(*points.shape[:-1], 7)


@dataclass
class Proposals:
    """Per object slot: token features, anchor (footprint centre, top height; metres), whether the slot holds a
    proposal, measured yaw modulo a quarter turn, mean colour (rgb in [0, 1]) and extent (metres)."""

    features: torch.Tensor  # (B, K, dim)
    anchors: torch.Tensor  # (B, K, 3)
    valid: torch.Tensor  # (B, K) bool
    yaws: torch.Tensor  # (B, K)
    colors: torch.Tensor  # (B, K, 3)
    extents: torch.Tensor  # (B, K, 3)


class ObjectTokens(nn.Module):
    """(points (B, N, 6), ids (B, N)) -> Proposals.

    A proposal's anchor is its footprint centre at its top height; its feature is a max-pooled MLP of its points
    relative to the anchor (shape, heading) with its mean colour, extent and anchor position beside it. Its yaw
    (modulo a quarter turn, in [-pi/4, pi/4)) is measured from its top face (`top_face_yaw`)."""

    def __init__(self, cfg: ObjectTokenConfig):
        super().__init__()
        self.cfg = cfg
        self.point_mlp = nn.Sequential(
            nn.Linear(6, cfg.hidden), nn.LayerNorm(cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * cfg.hidden), nn.LayerNorm(2 * cfg.hidden), nn.ReLU(),
        )
        self.out = nn.Sequential(
            nn.Linear(2 * cfg.hidden + 6 + 3 + 6 * cfg.fourier_bands, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim),
            nn.LayerNorm(cfg.dim),
        )

    def forward(self, points: torch.Tensor, ids: torch.Tensor) -> Proposals:
        b, n, _ = points.shape
        k = self.cfg.max_objects
        real = ids >= 0
        slot = (torch.arange(b, device=points.device)[:, None] * k + ids.clamp_min(0)).reshape(-1)[real.reshape(-1)]
        xyz, rgb = points[..., :3].reshape(-1, 3)[real.reshape(-1)], points[..., 3:6].reshape(-1, 3)[real.reshape(-1)]

        lo = _segment_reduce(xyz, slot, b * k, "amin")
        hi = _segment_reduce(xyz, slot, b * k, "amax")
        count = torch.zeros(b * k, device=points.device).index_add_(0, slot, torch.ones_like(slot, dtype=xyz.dtype))
        valid = count > 0
        anchor = torch.cat([(lo[:, :2] + hi[:, :2]) / 2, hi[:, 2:]], dim=-1)
        mean_rgb = torch.zeros(b * k, 3, device=points.device, dtype=rgb.dtype).index_add_(0, slot, rgb)
        mean_rgb = mean_rgb / count.clamp_min(1)[:, None]

        local = self.point_mlp(torch.cat([xyz - anchor[slot], rgb], dim=-1))
        pooled = _segment_reduce(local, slot, b * k, "amax")
        lab = rgb_to_lab(mean_rgb) / 100.0
        feats = self.out(torch.cat([pooled, lab, hi - lo, fourier_xyz(anchor, self.cfg.fourier_bands, 4.0)], -1))
        feats = feats * valid[:, None].to(feats.dtype)
        yaw = top_face_yaw(xyz, anchor, slot, b * k)
        return Proposals(feats.reshape(b, k, -1), anchor.reshape(b, k, 3), valid.reshape(b, k), yaw.reshape(b, k),
                         mean_rgb.reshape(b, k, 3), (hi - lo).reshape(b, k, 3))


TOP_FACE_DEPTH = 0.005  # m below a proposal's highest point that still counts as its top face


def top_face_yaw(xyz: torch.Tensor, anchor: torch.Tensor, slot: torch.Tensor, size: int) -> torch.Tensor:
    """(size,) yaw of each proposal modulo a quarter turn, in [-pi/4, pi/4): the argument of the fourth moment of
    its top-face points about the footprint centre. A square's corners (the points farthest out) sit at 45 degrees
    to its edges, so sum (x + iy)^4 points at -e^(4i yaw); a disc (a bowl's rim) gives ~0 and an arbitrary yaw.
    On held-out scenes this is within 0.6 degrees of the true block yaw at the median, 3 at worst."""
    top = xyz[:, 2] > anchor[slot, 2] - TOP_FACE_DEPTH
    x, y = (xyz[top, :2] - anchor[slot[top], :2]).unbind(-1)
    x2, y2 = x * x, y * y
    moment = torch.stack([x2 * x2 - 6 * x2 * y2 + y2 * y2, 4 * x * y * (x2 - y2)], -1)  # (x + iy)^4
    total = xyz.new_zeros(size, 2).index_add_(0, slot[top], moment)
    yaw = torch.atan2(-total[:, 1], -total[:, 0]) / 4
    return torch.where(yaw >= math.pi / 4, yaw - math.pi / 2, yaw)


def _segment_reduce(values: torch.Tensor, index: torch.Tensor, size: int, reduce: str) -> torch.Tensor:
    """Per-segment min/max of `values` rows; empty segments are 0."""
    out = values.new_zeros(size, values.shape[1])
    return out.scatter_reduce(0, index[:, None].expand_as(values), values, reduce, include_self=False)
