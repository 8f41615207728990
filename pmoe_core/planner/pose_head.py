"""Pose-DiT + rectified flow: the training losses and the sampler, given any conditioning sequence.

Kept apart from the trunk so the head can be trained and tested on a toy condition alone.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from pmoe_core.planner.flow import FlowConfig, euler_sample, flow_loss
from pmoe_core.planner.pose_dit import Condition, PointerRecord, PoseDiT, step_mask
from pmoe_core.planner.pose_tokens import (
    token_error_weights,
    tokens_to_positions,
    yaw_of_tokens,
    yaw_to_rot6d,
)

ANCHOR_DIMS = 3  # the position part of a pose token


def pose_losses(dit: PoseDiT, cond: Condition, tokens: torch.Tensor, lengths: torch.Tensor, flow: FlowConfig,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """{"flow": end-point MSE over real steps, "stop": step-count cross entropy, "pointer": the pointer's
    supervision over both passes}; tokens (B, S, 2, 9) yaw-only poses. Every coordinate is predicted as an end point
    (a candidate's centre and yaw plus a residual), so every coordinate is scored as one (see `flow_loss`)."""
    if int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]:
        raise ValueError(f"lengths must lie in 1..{tokens.shape[1]}, got {lengths.tolist()}")
    prepared = dit.prepare(cond)
    mask = step_mask(lengths, tokens.shape[1])
    target = nearest_candidate(tokens, cond)  # the candidate each target pose is at
    tokens = fold_yaws_to_anchors(tokens, cond.yaws, target)
    record = PointerRecord([])

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dit.velocity(x, t, cond, prepared, mask, target, record)

    parts = {
        "flow": flow_loss(velocity, tokens, mask[:, :, None, None], flow, generator, end_point_dims=tokens.shape[-1],
                          dim_weights=token_error_weights(dit.cfg.position_unit)),
        "stop": F.cross_entropy(dit.length_logits(prepared), lengths - 1),
    }
    per_pass = [pointer_loss(w, target, mask) for w in record.weights]
    parts["pointer"] = dit.cfg.pointer_loss * torch.stack(per_pass).mean()
    return parts


OBJECT_MARGIN = 0.01  # m beyond an object's measured footprint that still counts as at the object


def nearest_candidate(tokens: torch.Tensor, cond: Condition) -> torch.Tensor:
    """(B, S, 2) index of the candidate each target token is at: the object whose measured footprint (+1 cm)
    holds its xy, the nearest such when several do, else the nearest candidate (a table anchor for a place at a
    named position). A pyramid's places are off its zone's centre yet on the zone: they go with the zone."""
    pos = tokens_to_positions(tokens[..., :ANCHOR_DIMS])[:, :, :, None, :2]  # (B, S, 2, 1, 2) metres
    centres = tokens_to_positions(cond.anchors)[:, None, None, :, :2]  # (B, 1, 1, L, 2)
    half = cond.attributes[:, None, None, :, 6:8] / 20.0 + OBJECT_MARGIN  # extents are stored in dm
    d2 = (pos - centres).pow(2).sum(-1)  # (B, S, 2, L)
    objects = cond.attributes[:, None, None, :, 9] > 0
    inside = objects & ((pos - centres).abs() <= half).all(-1) & cond.candidates[:, None, None, :]
    d2 = d2.masked_fill(~cond.candidates[:, None, None, :], float("inf"))
    preferred = d2.masked_fill(~inside, float("inf"))
    return torch.where(inside.any(-1), preferred.argmin(-1), d2.argmin(-1))


def fold_yaws_to_anchors(tokens: torch.Tensor, yaws: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """(B, S, 2, 9) target tokens with each yaw moved by quarter turns to within 45 degrees of the measured yaw
    (`yaws` (B, L)) of the scene token it is at (`nearest` (B, S, 2), see `nearest_candidate`). A cube's yaw is only
    defined modulo a quarter turn, so the moved target is as right as the oracle's; but a target folded into
    [-45, 45) around 0 would sit a quarter turn away from an anchor measured as 44 degrees when the oracle reads -45.
    Targets must be yaw-only rotations."""
    anchor_yaw = torch.gather(yaws, 1, nearest.flatten(1)).reshape(nearest.shape)
    quarter = math.pi / 2
    yaw = anchor_yaw + torch.remainder(yaw_of_tokens(tokens) - anchor_yaw + quarter / 2, quarter) - quarter / 2
    return torch.cat([tokens[..., :ANCHOR_DIMS], yaw_to_rot6d(yaw)], dim=-1)


def pointer_loss(weights: torch.Tensor, target: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Cross entropy of the pointer's attention (B, S, 2, L) against the candidate each target pose is at
    (B, S, 2), over the real steps. The end-point loss alone would train the pointer only through the centre it
    picks; this says which candidate is right. Training signal only (oracle poses)."""
    picked = torch.gather(weights, -1, target[..., None])[..., 0]
    ce = -picked.clamp_min(1e-9).log()
    return ce[steps[:, :, None].expand_as(ce)].mean()


@torch.no_grad()
def sample_poses(dit: PoseDiT, cond: Condition, euler_steps: int = 4, lengths: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, S, 2, 9), lengths (B,)): S = the longest predicted (or given) length; rows beyond a length are
    padding to ignore."""
    prepared = dit.prepare(cond)
    if lengths is None:
        lengths = dit.length_logits(prepared).argmax(-1) + 1
    steps = int(lengths.max())
    mask = step_mask(lengths, steps)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dit.velocity(x, t, cond, prepared, mask)

    shape = (cond.seq.shape[0], steps, 2, dit.out.out_features)
    return euler_sample(velocity, shape, euler_steps, cond.seq.device, generator), lengths
