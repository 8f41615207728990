"""Pose-DiT + rectified flow: the training losses and the sampler, given any conditioning sequence.

Kept apart from the LLM so the head can be trained and tested on a toy condition alone.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from pmoe_core.planner.flow import FlowConfig, euler_sample, flow_loss
from pmoe_core.planner.pose_dit import ANCHOR_DIMS, PoseDiT, step_mask
from pmoe_core.planner.pose_tokens import yaw_of_tokens, yaw_to_rot6d


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
    pointer_mask: torch.Tensor | None = None,
    anchor_yaws: torch.Tensor | None = None,
    anchor_colors: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """{"flow": velocity MSE over real steps, "stop": step-count cross entropy}; tokens (B, S, 2, 9).

    An anchored DiT predicts positions (and with `yaw_anchor` rotations) as end points, so those are scored as end
    points (see `flow_loss`)."""
    if int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]:
        raise ValueError(f"lengths must lie in 1..{tokens.shape[1]}, got {lengths.tolist()}")
    seq, pooled = dit.encode_condition(cond, cond_mask, anchor_mask, anchors)
    mask = step_mask(lengths, tokens.shape[1])
    candidates = anchor_mask if pointer_mask is None else pointer_mask
    supervise_color = dit.cfg.color_query and dit.cfg.color_loss > 0
    target = None  # the object each target pose is at
    if dit.cfg.yaw_anchor or dit.cfg.teacher_anchor or supervise_color:
        target = nearest_candidate(tokens, anchors, candidates)
    if dit.cfg.yaw_anchor:
        tokens = fold_yaws_to_anchors(tokens, anchor_yaws, target)

    pointed: list[torch.Tensor] | None = [] if dit.cfg.anchor and dit.cfg.pointer_loss > 0 else None
    asked: list[torch.Tensor] | None = [] if supervise_color else None

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dit.velocity(x, t, seq, cond_mask, pooled, mask, anchors, anchor_mask, pointed, pointer_mask,
                            anchor_yaws, anchor_colors, target, asked)

    end_dims = (tokens.shape[-1] if dit.cfg.yaw_anchor else ANCHOR_DIMS) if dit.cfg.anchor else 0
    parts = {
        "flow": flow_loss(velocity, tokens, mask[:, :, None, None], flow, generator, end_point_dims=end_dims),
        "stop": F.cross_entropy(dit.length_logits(pooled), lengths - 1),
    }
    if pointed:  # every pass of the pointer, as each one's end point feeds the flow loss or the next pass
        per_pass = [pointer_loss(w, tokens[..., :ANCHOR_DIMS], anchors, candidates, mask) for w in pointed]
        parts["pointer"] = dit.cfg.pointer_loss * torch.stack(per_pass).mean()
    if asked:  # the colour of the object each target pose is at, as the cloud measures it
        wanted = torch.gather(anchor_colors, 1, target.flatten(1)[..., None].expand(-1, -1, 3))  # (B, S*2, 3)
        real = mask[:, :, None].expand(-1, -1, 2).flatten(1)
        errors = [(a - wanted).pow(2).sum(-1)[real].mean() for a in asked]
        parts["color"] = dit.cfg.color_loss * torch.stack(errors).mean()
    return parts


def nearest_candidate(tokens: torch.Tensor, anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(B, S, 2) index of the candidate scene token nearest (in xy) to each target token: the object it is at."""
    d2 = (tokens[:, :, :, None, :2] - anchors[:, None, None, :, :2]).pow(2).sum(-1)  # (B, S, 2, L)
    return d2.masked_fill(~candidates[:, None, None, :], float("inf")).argmin(-1)


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


def pointer_loss(weights, targets, anchors, anchor_mask, step_mask, width: float = 0.05) -> torch.Tensor:
    """Cross entropy of the pointer's attention (B, S, 2, L) against the scene tokens near each target position
    (B, S, 2, 3) in the table plane: a Gaussian around its xy, over the real steps. Its width is `width` token units,
    or the distance to the nearest scene token when that is larger: without object tokens a bowl's centre has no
    token (its floor is below the foreground cut), and a narrow Gaussian would then pick one rim token instead of
    the ring whose mean is the centre. Height is left to the residual: a place on a tower is 4-8 cm above the base
    block's top, which is 0.27-0.53 token units in z, and measured in 3-D that target smeared over the whole scene.

    The end-point loss alone trains the pointer only through the mean of the centres it attends to, which many
    diffuse attentions satisfy equally; this says which tokens are right. Training signal only (oracle poses).
    """
    d2 = (targets[:, :, :, None, :2] - anchors[:, None, None, :, :2]).pow(2).sum(-1)  # (B, S, 2, L)
    d2 = d2.masked_fill(~anchor_mask[:, None, None, :], float("inf"))
    sigma2 = d2.amin(-1, keepdim=True).clamp_min(width**2)
    logits = -d2 / (2 * sigma2)
    target = logits.softmax(-1)
    ce = -(target * weights.clamp_min(1e-9).log()).sum(-1)  # (B, S, 2)
    real = step_mask[:, :, None].expand_as(ce)
    return ce[real].mean()


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
    pointer_mask: torch.Tensor | None = None,
    anchor_yaws: torch.Tensor | None = None,
    anchor_colors: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, S, 2, 9), lengths (B,)): S = the longest predicted (or given) length; rows beyond a length are
    padding to ignore."""
    seq, pooled = dit.encode_condition(cond, cond_mask, anchor_mask, anchors)
    if lengths is None:
        lengths = dit.length_logits(pooled).argmax(-1) + 1
    steps = int(lengths.max())
    mask = step_mask(lengths, steps)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dit.velocity(x, t, seq, cond_mask, pooled, mask, anchors, anchor_mask, None, pointer_mask,
                            anchor_yaws, anchor_colors)

    shape = (cond.shape[0], steps, 2, dit.out.out_features)
    return euler_sample(velocity, shape, euler_steps, cond.device, generator), lengths
