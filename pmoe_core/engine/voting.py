"""Fragment voting: the softmax scores of every covering test fragment summed onto every original point.

Shared by `eval` (scores -> confusion matrix) and `predict` (scores -> class + confidence per point), so both
label a point the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from pmoe_core.data.collate import Collate, fragment_pieces
from pmoe_core.data.recipes import INDOOR_GRID, OUTDOOR_GRID, Domain, RecipeConfig, domain_of, test_recipe
from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import apply
from pmoe_core.engine.tta import View
from pmoe_core.models.presets import input_layout

# Points per forward pass. A scene has as many test fragments as its densest voxel has points, each as large as its
# voxel count: a 32k-point Structured3D room (panorama poles) makes 33 fragments, 888k points in one pass, 4.7 GB.
CHUNK_POINTS = 131_072


def checkpoint_recipe(meta: dict[str, Any]) -> RecipeConfig:
    """The grid sizes the checkpoint was trained with: test fragments must voxelise the same way."""
    args = meta.get("train_args") or {}
    return RecipeConfig(indoor_grid=float(args.get("grid_indoor") or INDOOR_GRID),
                        outdoor_grid=float(args.get("grid_outdoor") or OUTDOOR_GRID))


def vote_scenes(model: nn.Module, samples: list[Sample], views: list[View], recipe: RecipeConfig,
                embeddings: torch.Tensor, dataset: str, max_points: int = CHUNK_POINTS,
                domain: Domain | None = None) -> torch.Tensor:
    """(total points, K) summed softmax scores of every original point of `samples`, in stored order.

    Each view of each scene is fragmented by the test recipe; fragment scores are summed back onto the points
    they were cut from (FragmentMaps.vote), then onto stored point order through `Sample.index`. The fragments
    go through the model in passes of at most `max_points` points (at least one fragment each), so memory stays
    bounded however many fragments a dense scene has. Each point's votes are added in the same fragment order
    as in one pass; what can still move with `max_points` (as with `batch_scenes`) is float32 noise (~1e-6) of a
    backbone whose kernels are not bitwise independent of the rest of the batch (spconv's CPU convolution).

    `dataset` is the samples' `Sample.dataset` (a PPT model also gets it as its dataset id); `domain` picks the
    test recipe, by default the dataset's domain (predict passes it for clouds of no known dataset).
    """
    sizes = [len(s) for s in samples]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    stored = torch.from_numpy(np.concatenate([s.index + o for s, o in zip(samples, starts)]))
    total = torch.zeros(int(sum(sizes)), embeddings.shape[0], dtype=torch.float32)
    domain = domain or domain_of(dataset)
    transforms = test_recipe(domain, recipe)
    collate = Collate({dataset: embeddings.shape[0]}, in_features=input_layout(model), domain=domain)
    rng = np.random.default_rng(0)  # the test recipe and the views are deterministic; apply() wants a generator
    for view in views:
        pieces = [apply([view, *transforms], dataclasses.replace(s), rng) for s in samples]
        voted = torch.zeros(total.shape, dtype=torch.float32, device=embeddings.device)  # this view, scene order
        for group in fragment_pieces(pieces, max_points):
            batch, targets = collate.test(pieces, group)
            with torch.inference_mode():
                logits = forward(model, batch.to(embeddings.device), embeddings, dataset)
                probs = torch.softmax(logits.float(), dim=1)
                del logits
                targets.fragments.vote(probs, batch.offset, out=voted)
            del batch, targets, probs
        total.index_add_(0, stored, _from_vote_sources(voted.cpu(), pieces))
    covered = total.sum(dim=1)
    if not bool((covered > 0.5 * len(views)).all()):
        raise RuntimeError(f"{int((covered <= 0.5 * len(views)).sum())} points of {dataset} got no prediction")
    return total


def _from_vote_sources(voted: torch.Tensor, pieces: list[Sample]) -> torch.Tensor:
    """Give the points that no fragment held (beyond the fragment cap in a crowded voxel) their voxel-mate's votes."""
    if all(p.vote_source is None for p in pieces):
        return voted
    start = 0
    for piece in pieces:
        if piece.vote_source is not None:
            rows = voted[start:start + len(piece)]
            rows.copy_(rows[torch.from_numpy(piece.vote_source)])
        start += len(piece)
    return voted


def forward(model: nn.Module, batch, embeddings: torch.Tensor, dataset: str) -> torch.Tensor:
    """Logits of one batch; the PPT baseline also gets the dataset id it picks its norms by."""
    if getattr(model, "needs_dataset", False):
        return model(batch, embeddings, dataset)
    return model(batch, embeddings)


def label_and_confidence(scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the row with the most votes (int32) and its share of the votes (float32 in (0, 1]).

    Every vote is a softmax (sums to 1), so the share is the mean probability of the chosen class over the
    fragments and views that scored the point."""
    best, row = scores.max(dim=1)
    share = best / scores.sum(dim=1).clamp_min(1e-12)
    return row.numpy().astype(np.int32), share.numpy().astype(np.float32)
