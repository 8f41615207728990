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

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from pmoe_core.data.collate import Collate, fragment_pieces
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.recipes import INDOOR_GRID, OUTDOOR_GRID, RecipeConfig, domain_of, test_recipe
from pmoe_core.data.sample import Sample
from pmoe_core.data.transforms import apply
from pmoe_core.engine.distributed import DistInfo
from pmoe_core.engine.eval_report import ClassResult, DatasetResult, EvalReport
from pmoe_core.engine.label_sets import LabelSet, class_metrics, own_label_set, union_label_set, union_vocabulary
from pmoe_core.engine.metrics import absent_policy
from pmoe_core.engine.model_io import load_segmentation_model
from pmoe_core.engine.train import pick_device
from pmoe_core.engine.tta import View, tta_views
from pmoe_core.errors import BadInput, FormatError, StoreError
from pmoe_core.progress import Progress, silent
from pmoe_core.store import StoreReader, find_stores
from pmoe_core.vocab.label_spaces import label_space, resolve_dataset

LABEL_SETS = ("own", "union")
# Points per forward pass. A scene has as many test fragments as its densest voxel has points, each as large as its
# voxel count: a 32k-point Structured3D room (panorama poles) makes 33 fragments, 888k points in one pass, 4.7 GB.
CHUNK_POINTS = 131_072


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
) -> EvalReport:
    """Evaluate a `pmoe train` checkpoint on the `split` of each dataset's store in `data` (default datasets:
    the checkpoint's training datasets). See the module docstring for label sets and voting.

    `text_weights`: local text-encoder weights to embed the union vocabulary with (label-free mode; needed for
    clip). `device`: "auto" = CUDA when available, else CPU. `chunk_points`: most points per forward pass (a
    memory bound; see vote_scenes)."""
    device = str(pick_device(device, DistInfo()))  # the trainer's rule, for a single process
    model, meta = load_segmentation_model(str(checkpoint), device=device)
    return evaluate_model(model, meta, data, datasets, split=split, label_set=label_set, tta=tta, limit=limit,
                          progress=progress, batch_scenes=batch_scenes, device=device, checkpoint=str(checkpoint),
                          text_weights=text_weights, chunk_points=chunk_points)


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
    views = tta_views(tta)
    trained_on = tuple(meta.get("datasets") or ())
    names = _dataset_names(datasets, trained_on)
    recipe = _recipe_config(meta)
    inputs = [_open_dataset(name, data, split, label_set, limit, meta, recipe, text_weights) for name in names]
    for item in inputs:
        _check_dataset_id(model, item)

    start = time.perf_counter()
    progress(total=sum(item.count for item in inputs), message="evaluating")
    model.eval()
    results = [_evaluate_dataset(model, item, views, recipe, batch_scenes, chunk_points, torch.device(device), progress)
               for item in inputs]
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
    names = [resolve_dataset(d) for d in (datasets if datasets else trained_on)]
    if not names:
        raise BadInput("no datasets to evaluate: pass --datasets (the checkpoint lists no training datasets)")
    return list(dict.fromkeys(names))


def _recipe_config(meta: dict[str, Any]) -> RecipeConfig:
    """The grid sizes the checkpoint was trained with: test fragments must voxelise the same way."""
    args = meta.get("train_args") or {}
    return RecipeConfig(indoor_grid=float(args.get("grid_indoor") or INDOOR_GRID),
                        outdoor_grid=float(args.get("grid_outdoor") or OUTDOOR_GRID))


def _open_dataset(name: str, data: str, split: str, kind: str, limit: int | None, meta: dict[str, Any],
                  recipe: RecipeConfig, text_weights: str | None) -> DatasetInput:
    stores = find_stores(data, name)
    if not stores:
        raise StoreError(f"no scene store for {name} (expected {name}.zarr or {name}.shard-K-of-N.zarr; "
                         f"run `pmoe convert {name} RAW {data}`)", data)
    readers = [StoreReader(url) for url in stores]
    encoder = str(meta.get("text_encoder", ""))
    for reader in readers:
        if reader.encoder != encoder:
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
                      progress: Progress) -> DatasetResult:
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
        outside = (target >= 0) & (pred == len(labels.classes))
        outside_rows += torch.bincount(rows[outside], minlength=outside_rows.shape[0])
        points += scores.shape[0]
        progress(advance=len(samples), message=item.name)
    return _dataset_result(item, confusion.matrix, points, outside_rows)


def vote_scenes(model: nn.Module, samples: list[Sample], views: list[View], recipe: RecipeConfig,
                embeddings: torch.Tensor, dataset: str, max_points: int = CHUNK_POINTS) -> torch.Tensor:
    """(total points, K) summed softmax scores of every original point of `samples`, in stored order.

    Each view of each scene is fragmented by the test recipe; fragment scores are summed back onto the points
    they were cut from (FragmentMaps.vote), then onto stored point order through `Sample.index`. The fragments
    go through the model in passes of at most `max_points` points (at least one fragment each), so memory stays
    bounded however many fragments a dense scene has. Each point's votes are added in the same fragment order
    as in one pass; what can still move with `max_points` (as with `batch_scenes`) is float32 noise (~1e-6) of a
    backbone whose kernels are not bitwise independent of the rest of the batch (spconv's CPU convolution).
    """
    sizes = [len(s) for s in samples]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    stored = torch.from_numpy(np.concatenate([s.index + o for s, o in zip(samples, starts)]))
    total = torch.zeros(int(sum(sizes)), embeddings.shape[0], dtype=torch.float32)
    transforms = test_recipe(domain_of(dataset), recipe)
    collate = Collate({dataset: embeddings.shape[0]})
    rng = np.random.default_rng(0)  # the test recipe and the views are deterministic; apply() wants a generator
    for view in views:
        pieces = [apply([view, *transforms], dataclasses.replace(s), rng) for s in samples]
        voted = torch.zeros(total.shape, dtype=torch.float32, device=embeddings.device)  # this view, scene order
        for group in fragment_pieces(pieces, max_points):
            batch, targets = collate.test(pieces, group)
            with torch.inference_mode():
                logits = _forward(model, batch.to(embeddings.device), embeddings, dataset)
                probs = torch.softmax(logits.float(), dim=1)
                del logits
                targets.fragments.vote(probs, batch.offset, out=voted)
            del batch, targets, probs
        total.index_add_(0, stored, voted.cpu())
    covered = total.sum(dim=1)
    if not bool((covered > 0.5 * len(views)).all()):
        raise RuntimeError(f"{int((covered <= 0.5 * len(views)).sum())} points of {dataset} got no prediction")
    return total


def _forward(model: nn.Module, batch, embeddings: torch.Tensor, dataset: str) -> torch.Tensor:
    if getattr(model, "needs_dataset", False):
        return model(batch, embeddings, dataset)
    return model(batch, embeddings)


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
