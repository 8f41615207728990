"""Training loss over each sample's own label space: cross-entropy + Lovász-softmax, per dataset, averaged.

The head scores every point against the concatenation of all training label spaces; a point is scored only
against its own sample's space, so a ScanNet point competes only with ScanNet classes even when the same batch
holds KITTI scans. No dataset id reaches the backbone: the split by label space happens after it.

The Point-MoE release (its model's forward, point_prompt_training_v3m1_language_guided.py:121-145, and the
criteria of configs/point_moe/indoor.py:68-71) computes CE + Lovász on each dataset's points of the batch and
averages the per-dataset losses, so a dataset of small scenes weighs as much as one of dense scans; that is the
default here (docs/recipes.md). `LossConfig(per_dataset=False, lovasz_weight=0)` is pmoe's former pooled CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pmoe_core.data.collate import SegTargets
from pmoe_core.scene import IGNORE_INDEX


@dataclass(frozen=True)
class LossConfig:
    """Weights of the two terms and whether they are computed per dataset (the release) or over the pooled batch."""

    ce_weight: float = 1.0
    lovasz_weight: float = 1.0
    per_dataset: bool = True


RELEASE_LOSS = LossConfig()


def own_space_mask(targets: SegTargets, batch_index: torch.Tensor, total_classes: int) -> torch.Tensor:
    """(N, total_classes) bool: True where the column belongs to the point's own label space."""
    lo = targets.class_offset.to(batch_index.device)[batch_index]
    hi = lo + targets.num_classes.to(batch_index.device)[batch_index]
    cols = torch.arange(total_classes, device=batch_index.device)
    return (cols >= lo[:, None]) & (cols < hi[:, None])


def _jaccard_steps(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Per column: the increments of the Jaccard loss as the points, in descending error order, join the error set."""
    gts = fg_sorted.sum(0)
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász-softmax (Berman et al. 2018) over the classes present in `labels`: mean of the Lovász extension of
    each class's Jaccard loss at its error vector |1[y = c] - p_c|. `probs` (P, C) rows are distributions, `labels`
    (P,) lie in [0, C), no ignored points. All classes at once: one column sort, no per-class Python loop.
    """
    if labels.numel() == 0:
        return probs.sum() * 0.0
    present = torch.unique(labels)
    fg = (labels[:, None] == present[None, :]).to(probs.dtype)
    errors = (fg - probs[:, present]).abs()
    errors_sorted, perm = errors.sort(dim=0, descending=True)
    steps = _jaccard_steps(fg.gather(0, perm))
    return (errors_sorted * steps).sum(0).mean()


def _terms(logits: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """CE + Lovász of labelled points: `logits` (P, C) of one label space (or -inf outside it), `target` in [0, C)."""
    loss = cfg.ce_weight * F.cross_entropy(logits, target) if cfg.ce_weight else logits.sum() * 0.0
    if cfg.lovasz_weight:
        loss = loss + cfg.lovasz_weight * lovasz_softmax(logits.softmax(dim=1), target)
    return loss


def label_space_loss(logits: torch.Tensor, targets: SegTargets, batch_index: torch.Tensor,
                     cfg: LossConfig = RELEASE_LOSS) -> torch.Tensor:
    """The training loss; `logits` (N, sum of class counts) in the collator's order, `batch_index` (N,) sample ids.

    Per dataset (a label space: samples of one dataset share its offset in the concatenation), the terms are
    computed on that dataset's labelled points with logits sliced to its own classes, then averaged over the
    datasets that have labelled points in the batch.
    """
    segment = targets.segment.to(logits.device)
    offsets = targets.class_offset.to(logits.device)
    counts = targets.num_classes.to(logits.device)
    labelled = segment != IGNORE_INDEX
    if not bool(labelled.any()):
        return logits.sum() * 0.0  # keeps the graph (and DDP's reducer) alive on an all-ignore batch
    point_offset = offsets[batch_index]
    if not cfg.per_dataset:
        mask = own_space_mask(targets, batch_index, logits.shape[1])
        masked = logits.float().masked_fill(~mask, float("-inf"))[labelled]
        return _terms(masked, (segment + point_offset)[labelled], cfg)
    losses = []
    for lo, n in torch.unique(torch.stack([offsets, counts], dim=1), dim=0).tolist():
        sel = labelled & (point_offset == lo)
        if bool(sel.any()):
            losses.append(_terms(logits[sel, lo:lo + n].float(), segment[sel], cfg))
    return torch.stack(losses).mean()
