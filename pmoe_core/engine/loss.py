"""Cross-entropy over each sample's own label space, in one vectorised call for a mixed-dataset batch.

The head scores every point against the concatenation of all training label spaces; logits outside a point's own
sample's space are masked to -inf, so a ScanNet point competes only with ScanNet classes even when the same batch
holds KITTI scans. No dataset id reaches the backbone: the mask is applied after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pmoe_core.data.collate import SegTargets
from pmoe_core.scene import IGNORE_INDEX


def own_space_mask(targets: SegTargets, batch_index: torch.Tensor, total_classes: int) -> torch.Tensor:
    """(N, total_classes) bool: True where the column belongs to the point's own label space."""
    lo = targets.class_offset.to(batch_index.device)[batch_index]
    hi = lo + targets.num_classes.to(batch_index.device)[batch_index]
    cols = torch.arange(total_classes, device=batch_index.device)
    return (cols >= lo[:, None]) & (cols < hi[:, None])


def label_space_loss(logits: torch.Tensor, targets: SegTargets, batch_index: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled points; `logits` (N, sum of class counts) in the collator's order."""
    mask = own_space_mask(targets, batch_index, logits.shape[1])
    masked = logits.float().masked_fill(~mask, float("-inf"))
    segment = targets.segment.to(logits.device)
    offset = targets.class_offset.to(logits.device)[batch_index]
    target = torch.where(segment == IGNORE_INDEX, segment, segment + offset)
    if not (target != IGNORE_INDEX).any():
        return logits.sum() * 0.0  # keeps the graph (and DDP's reducer) alive on an all-ignore batch
    return F.cross_entropy(masked, target, ignore_index=IGNORE_INDEX)
