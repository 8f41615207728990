"""The backbone's input: many point clouds concatenated, delimited by cumulative offsets.

This is all the backbone and router ever see: no dataset id travels in a PointBatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Input feature layout shared by every domain, so one channel means one thing everywhere:
# color RGB scaled to [-1, 1] (3), unit normal (3), strength/intensity in [0, 1] (1); zeros where a dataset lacks it.
FEATURE_CHANNELS = ("red", "green", "blue", "nx", "ny", "nz", "strength")
IN_CHANNELS = len(FEATURE_CHANNELS)
# Input layouts a model config can ask the data pipeline for (data/features.py builds them), by channel count:
# "pmoe7" is FEATURE_CHANNELS; "pointcept6" is what Pointcept checkpoints were trained on: indoor [color / 255,
# normal], outdoor [x, y, z, strength, 0, 0] (Pointcept's outdoor feat_keys coord + strength, zero-padded to 6);
# "pointcept6-signed" the same with color / 127.5 - 1 (Pointcept before v1.6.0 and the Point-MoE fork).
# "pmoe7-xyz" (pmoe-s/l's default since #19): "pmoe7", but outdoor points carry their coordinates in the colour
# channels, as the Point-MoE release feeds outdoor scans coord + strength (docs/recipes.md "Data").
FEATURE_LAYOUTS = {"pmoe7": IN_CHANNELS, "pmoe7-xyz": IN_CHANNELS, "pointcept6": 6, "pointcept6-signed": 6}


@dataclass
class PointBatch:
    coord: torch.Tensor  # (N, 3) float32, metres
    feat: torch.Tensor  # (N, C) float32, C = IN_CHANNELS by default
    grid_coord: torch.Tensor  # (N, 3) int64 voxel coordinates (non-negative, per sample)
    offset: torch.Tensor  # (B,) int64 cumulative end index of each sample

    @property
    def num_samples(self) -> int:
        return int(self.offset.numel())

    def batch_index(self) -> torch.Tensor:
        """(N,) sample index of every point."""
        counts = torch.diff(self.offset, prepend=self.offset.new_zeros(1))
        return torch.repeat_interleave(torch.arange(counts.numel(), device=self.offset.device), counts)

    def to(self, device: torch.device | str) -> "PointBatch":
        return PointBatch(*(t.to(device, non_blocking=True) for t in (self.coord, self.feat, self.grid_coord, self.offset)))
