"""Label any point cloud with a trained checkpoint: a class and a confidence for every original point.

The points are scored as `eval` scores them (engine/voting.py: covering grid fragments, softmax summed onto every
original point, TTA views), against any label set (predict_labels.py). What eval does not need: clouds of any
size. A cloud of more than `tile_points` points is cut into xy tiles of about that many points (a kd split of a
sample of the points); each tile is scored with a `margin` of context around it (one point per voxel, so the
context costs voxels, not points) and only its own points keep their labels. Memory is then one tile's work plus
the input arrays and the two output arrays (class int32, confidence float32), however large the file; a cloud
that fits in one tile is scored exactly as eval scores a scene.

Notebook use: `pmoe_core.predict(ckpt_or_predictor, coord, color=..., classes=["chair", "table"])`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from pmoe_core.data.grid import grid_coordinates, voxel_keys
from pmoe_core.data.recipes import Domain, RecipeConfig, domain_of, fields_domain
from pmoe_core.data.sample import Sample
from pmoe_core.engine.predict_labels import PredictLabels, resolve_labels
from pmoe_core.engine.tta import tta_views
from pmoe_core.engine.voting import CHUNK_POINTS, checkpoint_recipe, label_and_confidence, vote_scenes
from pmoe_core.errors import BadInput
from pmoe_core.progress import Progress, silent
from pmoe_core.scene import Scene
from pmoe_core.vocab.label_spaces import INDOOR

TILE_POINTS = 400_000  # points scored together: (tile points x classes) float32 scores + fragments, ~0.3 GB
MARGIN_VOXELS = 100  # context around a tile, in voxels of the grid (2 m indoor, 5 m outdoor at the defaults)
PLAN_SAMPLE = 200_000  # points the tile plan is computed from
MM_EXTENT = {"indoor": 500.0, "outdoor": 20_000.0}  # a larger span (in file units) looks like millimetres
KM_EXTENT = 0.5  # a smaller span looks like kilometres (or a very small object)


@dataclass
class Predictor:
    """A loaded checkpoint, kept in memory between calls (notebooks, several files)."""

    model: nn.Module
    meta: dict[str, Any]
    checkpoint: str
    device: str
    trained_vectors: np.ndarray | None  # class embeddings stored in the checkpoint (encoder check)

    @property
    def recipe(self) -> RecipeConfig:
        return checkpoint_recipe(self.meta)


def load_predictor(checkpoint: str | Path, device: str = "auto") -> Predictor:
    """Load a `pmoe train` (or imported) segmentation checkpoint for prediction; `device` "auto" = CUDA if any."""
    from pmoe_core.engine.checkpoint import load_checkpoint
    from pmoe_core.engine.distributed import DistInfo
    from pmoe_core.engine.model_io import load_segmentation_model
    from pmoe_core.engine.train import pick_device

    device = str(pick_device(device, DistInfo()))
    payload = load_checkpoint(checkpoint)
    stored = payload.get("class_embeddings")
    vectors = stored.float().numpy().copy() if isinstance(stored, torch.Tensor) else None
    del payload
    model, meta = load_segmentation_model(str(checkpoint), device=device)
    return Predictor(model, meta, str(checkpoint), device, vectors)


@dataclass(frozen=True)
class PredictOptions:
    """How a cloud is scored. `domain`/`grid` None: from the cloud's fields / the checkpoint's grid for the domain.
    `dataset`: a known source dataset (store scenes); only the PPT baseline, which needs a dataset id, uses it."""

    domain: Domain | None = None
    grid: float | None = None
    tta: int = 1
    chunk_points: int = CHUNK_POINTS
    tile_points: int = TILE_POINTS
    margin: float | None = None  # metres of context around a tile; None = MARGIN_VOXELS voxels
    dataset: str | None = None

    def check(self) -> None:
        if self.domain is not None and self.domain not in ("indoor", "outdoor"):
            raise BadInput(f"--domain must be indoor or outdoor, got {self.domain!r}")
        if self.grid is not None and not (self.grid > 0 and np.isfinite(self.grid)):
            raise BadInput(f"--grid must be a positive number of metres, got {self.grid}")
        if self.chunk_points < 1 or self.tile_points < 2:
            raise BadInput("--chunk-points must be at least 1 and --tile-points at least 2")
        if self.margin is not None and not (self.margin >= 0 and np.isfinite(self.margin)):
            raise BadInput(f"--margin must be a non-negative number of metres, got {self.margin}")


@dataclass
class Prediction:
    """`labels` (N,) int32 index into `classes`; `confidence` (N,) float32: the chosen class's mean softmax
    probability over the fragments and views that scored the point (1/K = no opinion, 1 = certain)."""

    labels: np.ndarray
    confidence: np.ndarray
    classes: tuple[str, ...]
    untrained: tuple[str, ...]  # names the checkpoint was never trained on (zero-shot)
    domain: Domain
    grid_size: float
    tiles: int
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> np.ndarray:
        """Points per class, (K,) int64."""
        return np.bincount(self.labels, minlength=len(self.classes)).astype(np.int64)

    def mean_confidence(self) -> np.ndarray:
        """Mean confidence of the points of each class, (K,) float64 (NaN where a class has no point)."""
        sums = np.bincount(self.labels, weights=self.confidence, minlength=len(self.classes))
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / self.counts()


def cloud_domain(scene: Scene, options: PredictOptions) -> Domain:
    """The override, else the source dataset's domain, else what the fields say (strength without colour: LiDAR)."""
    if options.domain is not None:
        return options.domain
    if options.dataset is not None:
        return domain_of(options.dataset)
    return fields_domain(scene.color is not None, scene.strength is not None)


def cloud_warnings(scene: Scene, domain: Domain, predictor: Predictor) -> list[str]:
    """Refuse clouds that cannot be segmented; one warning per thing that will likely give poor labels."""
    n = len(scene)
    if n < 2:
        raise BadInput(f"the cloud has {n} point{'s' if n != 1 else ''}; predict needs at least 2")
    warnings = []
    span = float(np.max(scene.coord.max(axis=0) - scene.coord.min(axis=0)))
    if span > MM_EXTENT[domain]:
        warnings.append(f"coordinates span {span:,.0f} units, which looks like millimetres for an {domain} cloud; "
                        "pmoe expects metres (divide the coordinates by 1000)")
    elif span < KM_EXTENT:
        warnings.append(f"coordinates span only {span:.3g} units, which looks like kilometres (pmoe expects metres)")
    trained_indoor = [d for d in predictor.meta.get("datasets") or () if d in INDOOR]
    if domain == "indoor" and scene.color is None and trained_indoor:
        warnings.append(f"the cloud has no colour but the model was trained with colour ({', '.join(trained_indoor)});"
                        " its colour channels are zero, expect poorer labels")
    return warnings


def predict_scene(predictor: Predictor, scene: Scene, labels: PredictLabels,
                  options: PredictOptions = PredictOptions(), progress: Progress = silent,
                  warn: Callable[[str], None] | None = None) -> Prediction:
    """Label every point of `scene` (see the module docstring for tiles and voting); `warn` gets each sanity
    warning before the slow work starts (they are also in `Prediction.warnings`)."""
    start = time.perf_counter()
    options.check()
    domain = cloud_domain(scene, options)
    warnings = cloud_warnings(scene, domain, predictor)
    for line in warnings if warn is not None else ():
        warn(line)
    recipe = predictor.recipe
    if options.grid is not None:
        recipe = dataclasses.replace(recipe, **{f"{domain}_grid": float(options.grid)})
    grid = recipe.indoor_grid if domain == "indoor" else recipe.outdoor_grid
    model = predictor.model
    key = options.dataset or domain
    if getattr(model, "needs_dataset", False) and options.dataset is None:
        raise BadInput("the PPT baseline needs a dataset id to pick its norms: predict on a store scene "
                       "(STORE::split::scene) or pass --dataset")
    margin = MARGIN_VOXELS * grid if options.margin is None else float(options.margin)
    tiles = plan_tiles(scene.coord, options.tile_points)
    views = tta_views(options.tta)
    embeddings = labels.embeddings.to(predictor.device)
    n = len(scene)
    out_labels = np.full(n, -1, np.int32)
    out_conf = np.zeros(n, np.float32)
    progress(total=n, message=f"{len(tiles)} tile{'s' if len(tiles) != 1 else ''}")
    model.eval()
    for i, tile in enumerate(tiles):
        core, points = tile_points(scene.coord, tile, margin, grid, len(tiles) == 1)
        if core.size == 0:
            continue
        sample = _sample(scene, points, key)
        scores = vote_scenes(model, [sample], views, recipe, embeddings, key, options.chunk_points, domain)
        rows, share = label_and_confidence(scores[: core.size])
        out_labels[core], out_conf[core] = rows, share
        del scores, sample
        if len(tiles) > 1:
            _release_freed_memory()
        progress(advance=int(core.size), message=f"tile {i + 1}/{len(tiles)}")
    if (out_labels < 0).any():  # the tiles partition the plane, so this is a bug, not bad input
        raise RuntimeError(f"{int((out_labels < 0).sum())} points of {scene.name} fell in no tile")
    return Prediction(out_labels, out_conf, labels.names, labels.untrained, domain, float(grid), len(tiles),
                      warnings, time.perf_counter() - start)


def predict(model_or_ckpt: Predictor | str | Path, coord: np.ndarray, color: np.ndarray | None = None,
            normal: np.ndarray | None = None, strength: np.ndarray | None = None, *,
            classes: list[str] | None = None, label_set: str | None = None, text_weights: str | None = None,
            options: PredictOptions = PredictOptions(), device: str = "auto",
            progress: Progress = silent) -> Prediction:
    """Label the points `coord` (N, 3) metres, with optional `color` (N, 3) 0-255, unit `normal` (N, 3) and
    `strength` (N,) in [0, 1], by a checkpoint (path, or a `load_predictor` result to reuse between calls).

    Classes: `classes` (any names, e.g. ["chair", "table", "potted plant"]), or `label_set` (a dataset name such
    as "scannet", or "union", the default). Returns a `Prediction` (per-point class index and confidence)."""
    predictor = model_or_ckpt if isinstance(model_or_ckpt, Predictor) else load_predictor(model_or_ckpt, device)
    scene = Scene("array", coord=coord, color=color, normal=normal, strength=strength).validate("coord")
    labels = resolve_labels(predictor.meta, label_set, classes, text_weights, predictor.trained_vectors)
    return predict_scene(predictor, scene, labels, options, progress)


def _release_freed_memory() -> None:
    """Hand the heap a finished tile freed back to the system (glibc's malloc_trim). Why: tiles differ in size, and
    glibc keeps the fragmented free heap of earlier tiles, so without it the resident size of a 16-tile run crept up
    from 0.5 to 1.4 GB (a plateau, not a leak; measured), and a long file looked as if it grew."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


# --- tiles -------------------------------------------------------------------------------------------------------

Box = tuple[float, float, float, float]  # x_lo, y_lo, x_hi, y_hi; half-open, infinite at the outer edges


def plan_tiles(coord: np.ndarray, tile_points: int, sample_size: int = PLAN_SAMPLE) -> list[Box]:
    """xy boxes that partition the plane, each holding about `tile_points` points or fewer: a kd split (wider side
    at its median) of an evenly strided sample of the points. A box whose points cannot be split further (all on
    one xy position) stays whole."""
    n = coord.shape[0]
    inf = float("inf")
    if n <= tile_points:
        return [(-inf, -inf, inf, inf)]
    sample = coord[:: max(1, n // sample_size), :2]
    scale = n / sample.shape[0]
    boxes: list[Box] = []
    stack = [((-inf, -inf, inf, inf), sample)]
    while stack:
        box, pts = stack.pop()
        if pts.shape[0] * scale <= tile_points:
            boxes.append(box)
            continue
        axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
        cut = float(np.median(pts[:, axis]))
        low = pts[:, axis] < cut
        if low.all() or not low.any():
            boxes.append(box)
            continue
        lo_box = (box[0], box[1], cut, box[3]) if axis == 0 else (box[0], box[1], box[2], cut)
        hi_box = (cut, box[1], box[2], box[3]) if axis == 0 else (box[0], cut, box[2], box[3])
        stack += [(hi_box, pts[~low]), (lo_box, pts[low])]
    return boxes


def _inside(coord: np.ndarray, box: Box) -> np.ndarray:
    x, y = coord[:, 0], coord[:, 1]
    return (x >= box[0]) & (x < box[2]) & (y >= box[1]) & (y < box[3])


def tile_points(coord: np.ndarray, box: Box, margin: float, grid: float, whole: bool) -> tuple[np.ndarray, np.ndarray]:
    """(core, points): the indices of the tile's own points, and those plus its context (core first); the context
    is the points within `margin` of the box, one per voxel."""
    if whole:
        everything = np.arange(coord.shape[0])
        return everything, everything
    inside = _inside(coord, box)
    core = np.flatnonzero(inside)
    if margin <= 0:
        return core, core
    near = _inside(coord, (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin))
    near &= ~inside
    del inside
    context = np.flatnonzero(near)
    del near
    if context.size:
        _, first = np.unique(voxel_keys(grid_coordinates(coord[context], grid)), return_index=True)
        context = context[np.sort(first)]
    return core, np.concatenate([core, context])


def _sample(scene: Scene, points: np.ndarray, key: str) -> Sample:
    """The points as a test Sample (copies of this tile only; colours as float32 0-255, as the pipeline wants)."""
    whole = points.shape[0] == len(scene)
    pick = (lambda a: a) if whole else (lambda a: a[points])
    m = points.shape[0]
    return Sample(
        dataset=key,
        name=scene.name,
        coord=pick(scene.coord).astype(np.float32, copy=True),
        segment=np.full(m, -1, np.int64),
        index=np.arange(m, dtype=np.int64),
        color=None if scene.color is None else pick(scene.color).astype(np.float32),
        normal=None if scene.normal is None else pick(scene.normal).astype(np.float32, copy=True),
        strength=None if scene.strength is None else pick(scene.strength).astype(np.float32, copy=True),
    )
