"""Samples -> (PointBatch, SegTargets): points concatenated with offsets, labels kept per sample's label space.

The PointBatch carries nothing dataset-specific. SegTargets says, per sample, which dataset's label space its
`segment` indexes (name, class count, and the offset of that space in a fixed concatenation of label spaces), so
the loss and the head can score each sample against its own classes. Test batches also carry FragmentMaps to sum
predictions of all fragments back onto every original point. `mix3d` overlays pairs of a training batch's samples
(the loader decides which batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from pmoe_core.data.features import point_features
from pmoe_core.data.sample import Sample
from pmoe_core.errors import BadInput
from pmoe_core.models.batch import PointBatch
from pmoe_core.vocab.label_spaces import LABEL_SPACES


@dataclass
class FragmentMaps:
    """How the fragments of a test batch map back to the scenes they were cut from.

    `scene_of_sample` (B,): the scene (position in the collated list) each fragment belongs to;
    `point_index` (N,): each batch point's index among its scene's points; `scene_offset` (S,): cumulative ends of
    the scenes' points; `scene_segment` (sum of scene sizes,): the scenes' own labels, for the metric.
    """

    scene_names: tuple[str, ...]
    scene_of_sample: torch.Tensor
    point_index: torch.Tensor
    scene_offset: torch.Tensor
    scene_segment: torch.Tensor

    def target_index(self, batch_offset: torch.Tensor) -> torch.Tensor:
        """(N,) index of every batch point among all scenes' points concatenated."""
        counts = torch.diff(batch_offset, prepend=batch_offset.new_zeros(1))
        scene_of_point = torch.repeat_interleave(self.scene_of_sample, counts)
        scene_start = self.scene_offset - torch.diff(self.scene_offset, prepend=self.scene_offset.new_zeros(1))
        return scene_start[scene_of_point] + self.point_index

    def vote(self, scores: torch.Tensor, batch_offset: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Sum per-point scores (N, C) of all fragments onto the original points: (sum of scene sizes, C).

        `out`: add into this accumulator instead of fresh zeros, so a scene's fragments can be scored in several
        batches (Collate.test with `pieces`) and summed in the same order as in one batch."""
        if out is None:
            total = int(self.scene_offset[-1]) if self.scene_offset.numel() else 0
            out = scores.new_zeros((total, scores.shape[1]))
        return out.index_add_(0, self.target_index(batch_offset).to(scores.device), scores)


@dataclass
class SegTargets:
    """Labels of a batch. `segment` (N,) int64 indexes each point's own sample's label space (-1 = ignore).

    `num_classes[b]` / `class_offset[b]`: size and start of sample b's label space within the concatenation of
    the collator's label spaces (in its fixed order), so logits over that concatenation slice to the sample's own.
    """

    segment: torch.Tensor
    datasets: tuple[str, ...]
    names: tuple[str, ...]
    num_classes: torch.Tensor
    class_offset: torch.Tensor
    fragments: FragmentMaps | None = None


class Collate:
    """Callable collate_fn; `label_spaces` fixes the order (and sizes) of the concatenated label spaces."""

    def __init__(self, label_spaces: Mapping[str, int] | None = None, in_features: str = "pmoe7",
                 domain: str | None = None):
        """`in_features`: the model's input layout (its config's in_features); `domain`: of every sample, where
        their dataset names do not say it (predict's clouds), for layouts that differ by domain."""
        spaces = label_spaces if label_spaces is not None else {n: s.num_classes for n, s in LABEL_SPACES.items()}
        self.in_features, self.domain = in_features, domain
        self.num_classes = dict(spaces)
        self.class_offset = dict(zip(spaces, np.concatenate([[0], np.cumsum(list(spaces.values()))[:-1]]).tolist()))

    def __call__(self, samples: Sequence[Sample]) -> tuple[PointBatch, SegTargets]:
        return self.train(samples)

    def train(self, samples: Sequence[Sample]) -> tuple[PointBatch, SegTargets]:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        for s in samples:
            if s.grid_coord is None:
                raise ValueError(f"sample {s.name!r} was not grid-sampled (no grid_coord); check its recipe")
            if s.dataset not in self.num_classes:
                raise BadInput(f"dataset {s.dataset!r} has no label space in this collator ({list(self.num_classes)})")
        batch = PointBatch(
            coord=torch.from_numpy(np.concatenate([s.coord for s in samples]).astype(np.float32, copy=False)),
            feat=torch.from_numpy(np.concatenate([point_features(s, self.in_features, self.domain) for s in samples])),
            grid_coord=torch.from_numpy(np.concatenate([s.grid_coord for s in samples]).astype(np.int64, copy=False)),
            offset=torch.from_numpy(np.cumsum([len(s) for s in samples]).astype(np.int64)),
        )
        targets = SegTargets(
            segment=torch.from_numpy(np.concatenate([s.segment for s in samples]).astype(np.int64, copy=False)),
            datasets=tuple(s.dataset for s in samples),
            names=tuple(s.name for s in samples),
            num_classes=torch.tensor([self.num_classes[s.dataset] for s in samples], dtype=torch.int64),
            class_offset=torch.tensor([self.class_offset[s.dataset] for s in samples], dtype=torch.int64),
        )
        return batch, targets

    def test(self, scenes: Sequence[Sample],
             pieces: Sequence[tuple[int, int]] | None = None) -> tuple[PointBatch, SegTargets]:
        """All fragments of the given (GridFragments-processed) scenes as one batch, with maps back.

        `pieces`: only these (scene k, fragment j) pairs, so a caller can bound the points per forward pass; the
        maps still span all `scenes` (see fragment_pieces)."""
        for s in scenes:
            if s.fragments is None:
                raise ValueError(f"sample {s.name!r} has no fragments; use a test recipe")
        if pieces is None:
            pieces = [(k, j) for k, s in enumerate(scenes) for j in range(s.fragments.shape[0])]
        batch, targets = self.train([scenes[k].fragment(j) for k, j in pieces])
        targets.fragments = FragmentMaps(
            scene_names=tuple(s.name for s in scenes),
            scene_of_sample=torch.tensor([k for k, _ in pieces], dtype=torch.int64),
            point_index=torch.from_numpy(np.concatenate([scenes[k].fragments[j] for k, j in pieces])),
            scene_offset=torch.from_numpy(np.cumsum([len(s) for s in scenes]).astype(np.int64)),
            scene_segment=torch.from_numpy(np.concatenate([s.segment for s in scenes])),
        )
        return batch, targets


def fragment_pieces(scenes: Sequence[Sample], max_points: int) -> list[list[tuple[int, int]]]:
    """The (scene, fragment) pairs of `scenes` in order, packed into groups of at most `max_points` points (a
    fragment larger than that is a group of its own), for Collate.test.

    Why: a scene has as many fragments as its densest voxel has points, so a scene with a few dense voxels (the
    floor under a panorama camera) becomes tens of full-size fragments; scored in one pass, memory grows with it.
    """
    if max_points < 1:
        raise BadInput(f"points per forward pass must be positive, got {max_points}")
    groups: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    size = 0
    for k, s in enumerate(scenes):
        if s.fragments is None:
            raise ValueError(f"sample {s.name!r} has no fragments; use a test recipe")
        count, points = s.fragments.shape
        for j in range(count):
            if current and size + points > max_points:
                groups.append(current)
                current, size = [], 0
            current.append((k, j))
            size += points
    if current:
        groups.append(current)
    return groups


def mix3d(batch: PointBatch, targets: SegTargets) -> tuple[PointBatch, SegTargets]:
    """Mix3D (Nekrasov et al., 2021) on a collated training batch, as Pointcept's training collate applies it with
    probability `mix_prob`: samples (0, 1), (2, 3), ... become one scene each, their points overlaid where their
    recipes left them (each centred); an odd last sample stays alone. Nothing moves: the points are already in
    pair order, so only the boundary inside each pair goes.

    A pair from two datasets stays two samples: one sample is scored against one label space (and PPT picks one
    norm for it), so the merged scene keeps the dataset, label space and class offset its two halves share. In
    single-dataset batches (PPT's) that is every pair.
    """
    if targets.fragments is not None:
        raise ValueError("Mix3D merges training samples; a test batch keeps its fragments apart")
    count = batch.num_samples
    groups: list[list[int]] = []
    for first in range(0, count, 2):
        if first + 1 < count and targets.datasets[first] == targets.datasets[first + 1]:
            groups.append([first, first + 1])
        else:
            groups += [[b] for b in range(first, min(first + 2, count))]
    ends = torch.tensor([g[-1] for g in groups], dtype=torch.int64)
    starts = torch.tensor([g[0] for g in groups], dtype=torch.int64)
    merged = PointBatch(coord=batch.coord, feat=batch.feat, grid_coord=batch.grid_coord, offset=batch.offset[ends])
    merged_targets = SegTargets(
        segment=targets.segment,
        datasets=tuple(targets.datasets[g[0]] for g in groups),
        names=tuple("+".join(targets.names[b] for b in g) for g in groups),
        num_classes=targets.num_classes[starts],
        class_offset=targets.class_offset[starts],
    )
    return merged, merged_targets
