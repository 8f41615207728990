"""Split-level evaluation of a segmentation checkpoint on scene stores, the way the references test.

Per dataset, scene by scene: the deterministic test recipe cuts covering grid fragments (every stored point is in
at least one), the model scores every fragment point, the softmax over the label set is summed onto the ORIGINAL
points (over all fragments and, with TTA, all views), and the argmax per original point enters one confusion matrix
for the whole split. Metrics follow the dataset's official absent-class convention (metrics.absent_policy).

Label sets (see label_sets.py):
- "own": each dataset's benchmark classes, embedded from its store. A dataset the checkpoint never trained on is
  scored the same way through its class-name embeddings: that is the zero-shot path, flagged `zero_shot`.
- "union" (label-free): one vocabulary for every dataset, the union of the unified-vocabulary entries of all seven
  label spaces; the model is not told the dataset (PTv3 / Point-MoE never are). A predicted entry counts as the
  dataset class whose vocabulary entry it is; an entry outside the dataset's label space is an "outside"
  prediction: wrong for the true class (a false negative), a false positive for no class, excluded from the means.

The PPT baseline needs a dataset id to pick its PDNorm norms, and is given it in both modes (the report says so);
a dataset without a norm bank cannot be evaluated with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.recipes import RecipeConfig
from pmoe_core.engine.distributed import DistInfo
from pmoe_core.engine.eval_report import ClassResult, DatasetResult, EvalReport
from pmoe_core.engine.label_sets import LabelSet, class_metrics, own_label_set, union_label_set, union_vocabulary
from pmoe_core.engine.metrics import absent_policy
from pmoe_core.engine.model_io import fixed_head_classes, load_segmentation_model
from pmoe_core.engine.options import unique_datasets
from pmoe_core.engine.train import pick_device
from pmoe_core.engine.tta import View, tta_views
from pmoe_core.engine.voting import CHUNK_POINTS, checkpoint_recipe, vote_scenes
from pmoe_core.errors import BadInput, FormatError, StoreError
from pmoe_core.progress import Progress, silent
from pmoe_core.store import StoreReader, find_stores
from pmoe_core.store.custom_spaces import register_custom_stores
from pmoe_core.vocab.label_spaces import label_space

LABEL_SETS = ("own", "union")


class PredictionSink(Protocol):
    """Receives every scene's predicted classes (e.g. submission.PredictionWriter for `pmoe eval --save-pred`).

    `begin` is called per dataset once all stores are opened, before any model time (so it can refuse scenes it
    cannot name); `scene` with each scene's class indices in stored point order."""

    def begin(self, dataset: str, split: str, stores: Sequence[str], count: int) -> None: ...

    def scene(self, dataset: str, name: str, classes: np.ndarray) -> None: ...


@dataclass
class DatasetInput:
    """One dataset's scenes and label set, opened and checked before any model time is spent."""

    name: str
    scenes: SceneDataset
    count: int  # scenes to evaluate (after --limit)
    label_set: LabelSet
    zero_shot: bool


def evaluate(
    checkpoint: str | Path,
    data: str,
    datasets: Sequence[str] | None = None,
    split: str = "val",
    label_set: str = "own",
    tta: bool | int = False,
    limit: int | None = None,
    progress: Progress = silent,
    batch_scenes: int = 1,
    device: str = "auto",
    text_weights: str | None = None,
    chunk_points: int = CHUNK_POINTS,
    predictions: PredictionSink | None = None,
) -> EvalReport:
    """Evaluate a `pmoe train` checkpoint on the `split` of each dataset's store in `data` (default datasets:
    the checkpoint's training datasets). See the module docstring for label sets and voting.

    `text_weights`: local text-encoder weights to embed the union vocabulary with (label-free mode; needed for
    clip). `device`: "auto" = CUDA when available, else CPU. `chunk_points`: most points per forward pass (a
    memory bound; see vote_scenes). `predictions`: gets every scene's predicted classes (own label set only)."""
    device = str(pick_device(device, DistInfo()))  # the trainer's rule, for a single process
    model, meta = load_segmentation_model(str(checkpoint), device=device)
    return evaluate_model(model, meta, data, datasets, split=split, label_set=label_set, tta=tta, limit=limit,
                          progress=progress, batch_scenes=batch_scenes, device=device, checkpoint=str(checkpoint),
                          text_weights=text_weights, chunk_points=chunk_points, predictions=predictions)


def evaluate_model(
    model: nn.Module,
    meta: dict[str, Any],
    data: str,
    datasets: Sequence[str] | None = None,
    split: str = "val",
    label_set: str = "own",
    tta: bool | int = False,
    limit: int | None = None,
    progress: Progress = silent,
    batch_scenes: int = 1,
    device: str = "cpu",
    checkpoint: str = "",
    text_weights: str | None = None,
    chunk_points: int = CHUNK_POINTS,
    predictions: PredictionSink | None = None,
) -> EvalReport:
    """`evaluate` for a model already in memory; `meta` is the checkpoint metadata (datasets, text_encoder, ...)."""
    if label_set not in LABEL_SETS:
        raise BadInput(f"--label-set must be one of {', '.join(LABEL_SETS)}, got {label_set!r}")
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be positive, got {limit}")
    if batch_scenes < 1:
        raise BadInput(f"batch_scenes must be positive, got {batch_scenes}")
    if chunk_points < 1:
        raise BadInput(f"--chunk-points must be positive, got {chunk_points}")
    if predictions is not None and label_set != "own":
        raise BadInput("saved predictions are classes of each dataset's own label space: use --label-set own")
    views = tta_views(tta)
    trained_on = tuple(meta.get("datasets") or ())
    register_custom_stores(data, datasets or trained_on)  # a custom dataset is known from its store's attributes
    names = _dataset_names(datasets, trained_on)
    recipe = checkpoint_recipe(meta)
    inputs = [_open_dataset(name, data, split, label_set, limit, meta, recipe, text_weights) for name in names]
    for item in inputs:
        _check_dataset_id(model, item)
    for item in inputs:
        if predictions is not None:
            predictions.begin(item.name, split, item.scenes.urls, item.count)

    start = time.perf_counter()
    progress(total=sum(item.count for item in inputs), message="evaluating")
    model.eval()
    results = [_evaluate_dataset(model, item, views, recipe, batch_scenes, chunk_points, torch.device(device), progress,
                                 predictions) for item in inputs]
    return EvalReport(
        checkpoint=checkpoint,
        preset=str(meta.get("preset", "")),
        step=int(meta.get("step", 0)),
        trained_on=trained_on,
        text_encoder=str(meta.get("text_encoder", "")),
        split=split,
        label_set=label_set,
        tta=len(views),
        limit=limit,
        dataset_id_given=bool(getattr(model, "needs_dataset", False)),
        seconds=time.perf_counter() - start,
        results=results,
    )


def _dataset_names(datasets: Sequence[str] | None, trained_on: tuple[str, ...]) -> list[str]:
    names = unique_datasets(datasets if datasets else trained_on)
    if not names:
        raise BadInput("no datasets to evaluate: pass --datasets (the checkpoint lists no training datasets)")
    return list(names)


def _open_dataset(name: str, data: str, split: str, kind: str, limit: int | None, meta: dict[str, Any],
                  recipe: RecipeConfig, text_weights: str | None) -> DatasetInput:
    stores = find_stores(data, name)
    if not stores:
        raise StoreError(f"no scene store for {name} (expected {name}.zarr or {name}.shard-K-of-N.zarr; "
                         f"run `pmoe convert {name} RAW {data}`)", data)
    readers = [StoreReader(url) for url in stores]
    encoder = str(meta.get("text_encoder", ""))
    fixed = fixed_head_classes(meta)  # an imported seg_head scores one benchmark's classes, no text embeddings
    if fixed is not None and (kind != "own" or name not in (meta.get("label_spaces") or {})):
        raise BadInput(f"this checkpoint's head has the {fixed} fixed classes of "
                       f"{', '.join(meta.get('datasets') or [])} (pmoe import --label-set): it can only be evaluated "
                       f"on that dataset with --label-set own")
    for reader in readers:
        if fixed is None and reader.encoder != encoder:
            raise BadInput(f"class names in this store are embedded with text encoder {reader.encoder!r}, but the "
                           f"checkpoint was trained with {encoder!r}; convert it again with --text-encoder {encoder}",
                           reader.url)
        if split not in reader.splits:
            raise StoreError(f"no split {split!r} (store has: {', '.join(reader.splits) or 'none'})", reader.url)
    first = readers[0]
    classes = tuple(first.class_names)
    trained_classes = (meta.get("label_spaces") or {}).get(name)
    if trained_classes is not None and tuple(trained_classes) != classes:
        raise FormatError(f"store classes of {name} differ from the ones the checkpoint was trained on", first.url)
    entries = tuple(c["entry"] for c in first.attrs["classes"])
    if kind == "own":
        labels = own_label_set(classes, entries, first.class_embeddings)
    else:
        union = union_vocabulary(encoder, text_weights)
        if union.identity != first.attrs["text_encoder"]["identity"]:
            raise BadInput(f"the union vocabulary was embedded by {union.identity}, but this store's classes by "
                           f"{first.attrs['text_encoder']['identity']}: give the same encoder weights", first.url)
        labels = union_label_set(classes, entries, union)
    scenes = SceneDataset(stores, split, mode="test", config=recipe)
    count = len(scenes) if limit is None else min(limit, len(scenes))
    return DatasetInput(name, scenes, count, labels, zero_shot=name not in (meta.get("datasets") or ()))


def _check_dataset_id(model: nn.Module, item: DatasetInput) -> None:
    """The PPT baseline can only run where it has PDNorm norms: say so before spending model time."""
    if not getattr(model, "needs_dataset", False):
        return
    try:
        model.backbone.condition_index(item.name)
    except BadInput:
        mode = "label-free (--label-set union) " if item.label_set.kind == "union" else ""
        raise BadInput(f"the PPT baseline cannot be evaluated {mode}on {item.name}: it has no PDNorm norms for it "
                       f"(built for {', '.join(model.backbone.datasets)}); PPT needs a known dataset id") from None


def _evaluate_dataset(model: nn.Module, item: DatasetInput, views: list[View], recipe: RecipeConfig,
                      batch_scenes: int, chunk_points: int, device: torch.device,
                      progress: Progress, predictions: PredictionSink | None = None) -> DatasetResult:
    labels = item.label_set
    confusion = labels.confusion()
    outside_rows = torch.zeros(labels.embeddings.shape[0], dtype=torch.int64)  # label-free: which entries
    points = 0
    embeddings = labels.embeddings.to(device)
    for start in range(0, item.count, batch_scenes):
        samples = [item.scenes.raw(i) for i in range(start, min(start + batch_scenes, item.count))]
        scores = vote_scenes(model, samples, views, recipe, embeddings, item.name, chunk_points)
        rows = scores.argmax(dim=1)
        pred = labels.to_column[rows]
        target = torch.from_numpy(np.concatenate([s.segment for s in samples]))
        confusion.update(pred, target)
        if predictions is not None:
            for sample, classes in zip(samples, torch.split(pred, [len(s) for s in samples])):
                predictions.scene(item.name, sample.name, classes.numpy())
        outside = (target >= 0) & (pred == len(labels.classes))
        outside_rows += torch.bincount(rows[outside], minlength=outside_rows.shape[0])
        points += scores.shape[0]
        progress(advance=len(samples), message=item.name)
    return _dataset_result(item, confusion.matrix, points, outside_rows)


def _dataset_result(item: DatasetInput, matrix: torch.Tensor, points: int, outside_rows: torch.Tensor) -> DatasetResult:
    labels = item.label_set
    num_classes = len(labels.classes)
    policy = absent_policy(item.name)
    metrics = class_metrics(matrix, num_classes, policy)
    confusion = matrix[:num_classes].numpy().copy()  # union mode: drop the (empty) outside row
    return DatasetResult(
        dataset=item.name,
        benchmark=label_space(item.name).benchmark,
        zero_shot=item.zero_shot,
        absent_policy=policy,
        miou=metrics.miou,
        macc=metrics.macc,
        all_acc=metrics.all_acc,
        scenes=item.count,
        points=points,
        labelled_points=int(confusion.sum()),
        outside_points=int(confusion[:, num_classes:].sum()) if labels.kind == "union" else None,
        outside_entries=({labels.row_names[k]: int(v) for k, v in enumerate(outside_rows.tolist()) if v}
                         if labels.kind == "union" else None),
        classes=[ClassResult(name, entry, iou, acc, support) for name, entry, iou, acc, support
                 in zip(labels.classes, labels.entries, metrics.iou, metrics.acc, metrics.support)],
        columns=labels.columns,
        confusion=confusion,
    )
