"""Validation during training: per-dataset mIoU on the val splits, through evaluate.py's machinery (same test
recipe, voting and metrics as `pmoe eval`), bounded by a scene limit, and the best-so-far record that decides
when `ckpt-best.pt` is rewritten.

Validation leaves training untouched: the model goes back to train mode and every RNG is restored, so a run with
validation takes the same steps (and losses) as one without.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import nn

from pmoe_core.engine.checkpoint import rng_state, set_rng_state
from pmoe_core.errors import StoreError
from pmoe_core.store import StoreReader


@dataclass(frozen=True)
class ValResult:
    """One validation: mIoU per dataset and their plain mean (the best-checkpoint criterion)."""

    step: int
    miou: dict[str, float]
    mean_miou: float
    scenes: int
    seconds: float

    def record(self) -> dict[str, Any]:
        return asdict(self)


def check_val_splits(stores: Sequence[str]) -> None:
    """Refuse, before training starts, a store that has no val split to validate on."""
    for url in stores:
        splits = StoreReader(url).splits
        if "val" not in splits:
            raise StoreError(f"--val-every needs a val split in every training store (this one has: "
                             f"{', '.join(splits) or 'none'})", url)


def validate(model: nn.Module, meta: dict[str, Any], data: str, datasets: Sequence[str], step: int,
             limit: int | None, device: torch.device) -> ValResult:
    """mIoU of `model` (the unwrapped module, not DDP) on each dataset's val split, at most `limit` scenes each."""
    from pmoe_core.engine.evaluate import evaluate_model  # evaluate imports the trainer: import here, not above

    start = time.perf_counter()
    was_training = model.training
    rng = rng_state()
    try:
        with torch.no_grad():
            report = evaluate_model(model, meta, data, list(datasets), split="val", limit=limit, device=str(device))
    finally:
        model.train(was_training)
        set_rng_state(rng)
    miou = {r.dataset: float(r.miou) for r in report.results}
    values = list(miou.values())
    mean = sum(values) / len(values) if values else math.nan
    return ValResult(step=step, miou=miou, mean_miou=mean, scenes=sum(r.scenes for r in report.results),
                     seconds=round(time.perf_counter() - start, 3))


def improves(result: ValResult, best: dict[str, Any] | None) -> bool:
    """Whether `result` beats the best so far (a NaN mean never does; ties keep the earlier checkpoint)."""
    if not math.isfinite(result.mean_miou):
        return False
    return best is None or result.mean_miou > float(best.get("mean_miou", -math.inf))
