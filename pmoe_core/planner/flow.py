"""Rectified flow: straight paths from Gaussian noise (t=0) to data (t=1), learned velocity, Euler sampling.

x_t = t*x1 + (1-t)*x0, target v = x1 - x0, loss = masked MSE. Training times are logit-normal by default (more
weight on the middle of the path, where the velocity is hardest to predict), uniform on request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t of shape (B,)) -> v, same shape as x_t


@dataclass
class FlowConfig:
    time_sampling: str = "logit_normal"  # or "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    euler_steps: int = 4


def sample_times(batch: int, cfg: FlowConfig, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    if cfg.time_sampling == "uniform":
        return torch.rand(batch, device=device, generator=generator)
    if cfg.time_sampling == "logit_normal":
        z = torch.randn(batch, device=device, generator=generator) * cfg.logit_std + cfg.logit_mean
        return torch.sigmoid(z)
    raise ValueError(f"unknown time sampling {cfg.time_sampling!r} (uniform, logit_normal)")


def flow_loss(
    velocity: Velocity,
    x1: torch.Tensor,
    mask: torch.Tensor | None,
    cfg: FlowConfig,
    generator: torch.Generator | None = None,
    end_point_dims: int = 0,
    dim_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared velocity error over the entries `mask` (broadcastable to x1) marks as real data.

    The first `end_point_dims` coordinates (last axis) are scored on the end point the velocity implies,
    x_t + (1 - t) v, against x1: the velocity error weighted by (1 - t)^2. That is the loss for a model that
    predicts those coordinates as end points (v = (end - x_t) / (1 - t)); on velocity it would explode near t = 1.
    `dim_weights` (last axis) weighs each coordinate's error: the units a coordinate's precision is judged in.
    """
    x0 = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
    t = sample_times(x1.shape[0], cfg, x1.device, generator).to(x1.dtype)
    tb = t.reshape(-1, *([1] * (x1.dim() - 1)))
    err = (velocity(tb * x1 + (1 - tb) * x0, t) - (x1 - x0)) ** 2
    if end_point_dims:
        err = torch.cat([err[..., :end_point_dims] * (1 - tb) ** 2, err[..., end_point_dims:]], dim=-1)
    if dim_weights is not None:
        err = err * dim_weights.to(err)
    if mask is None:
        return err.mean()
    weight = mask.to(err.dtype).expand_as(err)
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


@torch.no_grad()
def euler_sample(
    velocity: Velocity, shape: tuple[int, ...], steps: int, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from noise at t=0 to t=1 in `steps` equal Euler steps."""
    x = torch.randn(shape, device=device, generator=generator)
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((shape[0],), i * dt, device=device)
        x = x + velocity(x, t) * dt
    return x
