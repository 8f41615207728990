"""What the language head scores when evaluating one dataset, and how a scored row maps back to that dataset.

Own label set: the dataset's benchmark classes (embeddings from its store); row i is class i.
Union label set (label-free): every entry of the unified vocabulary over all seven datasets, scored without
knowing the source dataset. A predicted entry counts as the dataset class whose vocabulary entry it is; an entry
that no class of the dataset maps to is an "outside" prediction: a confusion column of its own that is wrong for
the true class (a false negative, so it lowers that class's IoU and accuracy and the overall accuracy) but is a
false positive for no class, and is never a class in the means.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from pmoe_core.engine.eval_report import OUTSIDE
from pmoe_core.engine.metrics import ConfusionMatrix, SegMetrics
from pmoe_core.vocab import union_embeddings


@dataclass(frozen=True)
class LabelSet:
    """`embeddings` (K, D) are handed to the head; `to_column` (K,) sends each scored row to a confusion column."""

    kind: str  # "own" | "union"
    embeddings: torch.Tensor
    to_column: torch.Tensor  # int64; columns 0..C-1 are the dataset's classes, column C (union only) is outside
    row_names: tuple[str, ...]  # what each scored row is: a class (own) or a vocabulary entry (union)
    classes: tuple[str, ...]
    entries: tuple[str, ...]  # unified-vocabulary entry of each dataset class

    @property
    def columns(self) -> tuple[str, ...]:
        return self.classes + ((OUTSIDE,) if self.kind == "union" else ())

    def confusion(self) -> ConfusionMatrix:
        """Square over the columns; in union mode the outside row stays empty (no point is labelled outside)."""
        return ConfusionMatrix(len(self.columns))


def own_label_set(classes: tuple[str, ...], entries: tuple[str, ...], vectors: np.ndarray) -> LabelSet:
    return LabelSet("own", torch.from_numpy(np.asarray(vectors, np.float32)),
                    torch.arange(len(classes), dtype=torch.int64), classes, classes, entries)


@dataclass(frozen=True)
class UnionVocabulary:
    entries: tuple[str, ...]
    vectors: np.ndarray  # (U, D)
    identity: str  # encoder identity (model + weights fingerprint)


@lru_cache(maxsize=4)
def union_vocabulary(encoder: str, weights: str | None = None) -> UnionVocabulary:
    """The union of all seven label spaces, embedded once per process (and cached on disk by the vocab cache).

    `weights`: local encoder weights (required for clip; minilm defaults to the packaged model)."""
    emb = union_embeddings(None, encoder=encoder, checkpoint=weights)
    return UnionVocabulary(tuple(emb.entries), np.asarray(emb.vectors, np.float32), emb.identity)


def union_label_set(classes: tuple[str, ...], entries: tuple[str, ...], union: UnionVocabulary) -> LabelSet:
    """Union rows -> the dataset class with that entry, or the outside column C."""
    column_of = {entry: c for c, entry in enumerate(entries)}
    to_column = torch.tensor([column_of.get(e, len(classes)) for e in union.entries], dtype=torch.int64)
    return LabelSet("union", torch.from_numpy(union.vectors), to_column, union.entries, classes, entries)


def class_metrics(matrix: torch.Tensor, num_classes: int, absent: str) -> SegMetrics:
    """SegMetrics of the first `num_classes` columns of a square confusion whose further columns are 'outside'.

    Per-class IoU/accuracy and overall accuracy come from SegMetrics on the whole square matrix (so outside
    predictions count as false negatives of the true class); the means are then taken over the real classes only,
    with the same absent-class rule SegMetrics applies.
    """
    full = SegMetrics.from_confusion(matrix.numpy(), absent=absent)
    if matrix.shape[0] == num_classes:
        return full
    iou, acc = full.iou[:num_classes], full.acc[:num_classes]
    present_iou = [v for v in iou if v is not None]  # "zero" policy already turned absent classes into 0.0
    present_acc = [v for v in acc if v is not None]
    return SegMetrics(
        miou=float(np.mean(present_iou)) if present_iou else 0.0,
        macc=float(np.mean(present_acc)) if present_acc else 0.0,
        all_acc=full.all_acc,
        iou=iou,
        acc=acc,
        support=full.support[:num_classes],
    )
