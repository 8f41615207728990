"""What `evaluate` returns and `pmoe eval --json` writes: per-dataset split metrics plus the run's settings.

The JSON form (schemas/eval_report.schema.json) keeps the full confusion matrix, so any other summary (another
absent-class policy, a class subset) can be recomputed from the report without running the model again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pmoe_core.jsonio import write_json_atomic
from pmoe_core.schemas import validate

REPORT_FORMAT = "pmoe-eval"
REPORT_VERSION = 1
OUTSIDE = "outside"  # label-free mode: the confusion column of predictions outside the dataset's label space


@dataclass(frozen=True)
class ClassResult:
    name: str
    entry: str  # the class's unified-vocabulary entry
    iou: float | None  # None: absent from ground truth and prediction, excluded by the dataset's policy
    acc: float | None  # None: no ground-truth points
    support: int  # ground-truth points


@dataclass
class DatasetResult:
    """One dataset's metrics over the whole evaluated split (not a mean of per-scene numbers)."""

    dataset: str
    benchmark: str
    zero_shot: bool  # the checkpoint never trained on this dataset: scored through its class-name embeddings only
    absent_policy: str  # "exclude" | "zero" (metrics.absent_policy)
    miou: float
    macc: float
    all_acc: float
    scenes: int
    points: int  # original points that received a prediction (every stored point of the evaluated scenes)
    labelled_points: int  # of those, points with a label (the confusion total)
    outside_points: int | None  # label-free mode: labelled points predicted as an entry outside the label space
    outside_entries: dict[str, int] | None  # label-free mode: those points by predicted vocabulary entry
    classes: list[ClassResult]
    columns: tuple[str, ...]  # confusion columns: the classes, then "outside" in label-free mode
    confusion: np.ndarray  # (classes, columns) int64, rows = ground truth

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "benchmark": self.benchmark,
            "zero_shot": self.zero_shot,
            "absent_policy": self.absent_policy,
            "miou": self.miou,
            "macc": self.macc,
            "all_acc": self.all_acc,
            "scenes": self.scenes,
            "points": self.points,
            "labelled_points": self.labelled_points,
            "outside_points": self.outside_points,
            "outside_entries": self.outside_entries,
            "classes": [vars(c).copy() for c in self.classes],
            "confusion": {"columns": list(self.columns), "matrix": self.confusion.astype(int).tolist()},
        }


@dataclass
class EvalReport:
    checkpoint: str
    preset: str
    step: int
    trained_on: tuple[str, ...]
    text_encoder: str
    split: str
    label_set: str  # "own" | "union"
    tta: int  # forward passes per scene that were summed (1 = no test-time augmentation)
    limit: int | None  # at most this many scenes per dataset
    dataset_id_given: bool  # the model was told each batch's dataset (only the PPT baseline is)
    seconds: float
    results: list[DatasetResult]

    def result(self, dataset: str) -> DatasetResult:
        for r in self.results:
            if r.dataset == dataset:
                return r
        raise KeyError(dataset)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "checkpoint": self.checkpoint,
            "preset": self.preset,
            "step": self.step,
            "trained_on": list(self.trained_on),
            "text_encoder": self.text_encoder,
            "split": self.split,
            "label_set": self.label_set,
            "tta": self.tta,
            "limit": self.limit,
            "dataset_id_given": self.dataset_id_given,
            "seconds": round(self.seconds, 3),
            "results": [r.to_json() for r in self.results],
        }


def write_report(report: EvalReport, path: str | Path) -> Path:
    """Validate against schemas/eval_report.schema.json, then write atomically (temporary file + rename)."""
    path = Path(path)
    data = report.to_json()
    validate(data, "eval_report", path)
    return write_json_atomic(path, data, make_parents=True)
