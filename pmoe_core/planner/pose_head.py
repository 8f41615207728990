"""Pose-DiT + rectified flow: the training losses and the sampler, given any conditioning sequence.

Kept apart from the LLM so the head can be trained and tested on a toy condition alone.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pmoe_core.planner.flow import FlowConfig, euler_sample, flow_loss
from pmoe_core.planner.pose_dit import ANCHOR_DIMS, PoseDiT, step_mask


def pose_losses(
    dit: PoseDiT,
    cond: torch.Tensor,
    cond_mask: torch.Tensor,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    flow: FlowConfig,
    generator: torch.Generator | None = None,
    anchors: torch.Tensor | None = None,
    anchor_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """{"flow": velocity MSE over real steps, "stop": step-count cross entropy}; tokens (B, S, 2, 9).

    An anchored DiT predicts positions as end points, so those are scored as end points (see `flow_loss`)."""
    if int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]:
        raise ValueError(f"lengths must lie in 1..{tokens.shape[1]}, got {lengths.tolist()}")
    seq, pooled = dit.encode_condition(cond, cond_mask)
    mask = step_mask(lengths, tokens.shape[1])

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dit.velocity(x, t, seq, cond_mask, pooled, mask, anchors, anchor_mask)

    end_dims = ANCHOR_DIMS if dit.cfg.anchor else 0
    return {
        "flow": flow_loss(velocity, tokens, mask[:, :, None, None], flow, generator, end_point_dims=end_dims),
        "stop": F.cross_entropy(dit.length_logits(pooled), lengths - 1),
    }


@torch.no_grad()
def sample_poses(
    dit: PoseDiT,
    cond: torch.Tensor,
    cond_mask: torch.Tensor,
    euler_steps: int = 4,
    lengths: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    anchors: torch.Tensor | None = None,
    anchor_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, S, 2, 9), lengths (B,)): S = the longest predicted (or given) length; rows beyond a length are
    padding to ignore."""
    seq, pooled = dit.encode_condition(cond, cond_mask)
    if lengths is None:
        lengths = dit.length_logits(pooled).argmax(-1) + 1
    steps = int(lengths.max())
    mask = step_mask(lengths, steps)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dit.velocity(x, t, seq, cond_mask, pooled, mask, anchors, anchor_mask)

    shape = (cond.shape[0], steps, 2, dit.out.out_features)
    return euler_sample(velocity, shape, euler_steps, cond.device, generator), lengths
