"""AdamW + OneCycle with the reference's split learning rate: transformer-block parameters get their own peak."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 0.002  # peak learning rate of everything outside the attention blocks
    block_lr: float = 0.0006  # peak learning rate of block parameters (Point-MoE release: 0.0006 of 0.002)
    weight_decay: float = 0.05
    pct_start: float = 0.05
    div_factor: float = 10.0
    final_div_factor: float = 1000.0


def is_block_parameter(name: str) -> bool:
    """Pointcept's rule: parameters whose name contains 'block' form the second group."""
    return ".block" in name or name.startswith("block") or "blocks." in name


def make_optimizer(model: nn.Module, cfg: OptimConfig, total_steps: int):
    block, other = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (block if is_block_parameter(name) else other).append(param)
    groups = [{"params": other, "lr": cfg.lr}]
    if block:
        groups.append({"params": block, "lr": cfg.block_lr})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if total_steps < 4:  # too short for a warm-up and an annealing phase: hold the peak
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    # OneCycle needs at least two warm-up steps; very short runs stretch the warm-up to that.
    pct_start = min(0.5, max(cfg.pct_start, 2.0 / total_steps))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in groups],
        total_steps=total_steps,
        pct_start=pct_start,
        anneal_strategy="cos",
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
    )
    return optimizer, scheduler
