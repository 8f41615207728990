"""Semantic segmentation metrics accumulated over a whole split.

Everything derives from one confusion matrix (rows = ground truth, columns = prediction), accumulated with
`torch.bincount` so no per-point Python runs. Points whose ground truth is the ignore index never count.

Classes absent from both ground truth and prediction over the whole split are a convention, not a fact, and the
official evaluators disagree: the SemanticKITTI API counts them as IoU 0, the nuScenes devkit leaves them out of the
mean (nanmean). `absent="zero"` / `absent="exclude"` picks one; `OFFICIAL_ABSENT` holds each dataset's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pmoe_core.scene import IGNORE_INDEX

OFFICIAL_ABSENT = {"semantickitti": "zero"}  # every other dataset: "exclude"


def absent_policy(dataset: str) -> str:
    return OFFICIAL_ABSENT.get(dataset, "exclude")


class ConfusionMatrix:
    """A (C, C) int64 confusion matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred = torch.as_tensor(pred).reshape(-1).to("cpu", torch.int64)
        target = torch.as_tensor(target).reshape(-1).to("cpu", torch.int64)
        keep = (target != IGNORE_INDEX) & (target >= 0) & (target < self.num_classes)
        pred, target = pred[keep], target[keep]
        if pred.numel() and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"prediction outside [0, {self.num_classes})")
        flat = target * self.num_classes + pred
        self.matrix += torch.bincount(flat, minlength=self.num_classes**2).reshape(self.num_classes, -1)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def metrics(self, absent: str = "exclude") -> "SegMetrics":
        return SegMetrics.from_confusion(self.matrix.numpy(), absent=absent)


@dataclass
class SegMetrics:
    """mIoU, per-class IoU, mAcc (mean class recall), allAcc (overall point accuracy)."""

    miou: float
    macc: float
    all_acc: float
    iou: list[float | None]  # None where the class is absent and excluded
    acc: list[float | None]
    support: list[int]  # ground-truth points per class

    @classmethod
    def from_confusion(cls, conf: np.ndarray, absent: str = "exclude") -> "SegMetrics":
        if absent not in ("exclude", "zero"):
            raise ValueError(f"absent must be 'exclude' or 'zero', got {absent!r}")
        conf = conf.astype(np.float64)
        tp = np.diag(conf)
        gt = conf.sum(axis=1)
        pred = conf.sum(axis=0)
        union = gt + pred - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(gt > 0, tp / gt, np.nan)
        if absent == "zero":
            iou = np.nan_to_num(iou, nan=0.0)
            miou = float(iou.mean()) if iou.size else 0.0
        else:
            miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
        macc = float(np.nanmean(acc)) if np.isfinite(acc).any() else 0.0
        total = conf.sum()
        return cls(
            miou=miou,
            macc=macc,
            all_acc=float(tp.sum() / total) if total > 0 else 0.0,
            iou=[None if np.isnan(v) else float(v) for v in iou],
            acc=[None if np.isnan(v) else float(v) for v in acc],
            support=[int(v) for v in gt],
        )
