"""Run a Point-MoE model over one scene with the routing recorder on, and keep the routing of every layer.

The model sees what evaluation would give it: the test recipe's centring and one point per voxel (the first point
of each voxel, i.e. fragment 0 of `GridFragments`). Those points are the tokens; every original point takes the
routing of its voxel's token through `point_token`, so traces and statistics cover all points of the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pmoe_core.data import transforms as t
from pmoe_core.data.features import point_features
from pmoe_core.data.grid import grid_coordinates, voxel_keys
from pmoe_core.data.recipes import INDOOR_GRID, OUTDOOR_GRID, Domain, domain_of, fields_domain
from pmoe_core.data.sample import Sample
from pmoe_core.errors import BadInput
from pmoe_core.inspect.scenes import LoadedScene
from pmoe_core.models.batch import PointBatch
from pmoe_core.models.moe import MoE
from pmoe_core.models.presets import input_layout
from pmoe_core.models.routing import record_routing
from pmoe_core.scene import Scene


@dataclass(frozen=True)
class MoEShape:
    """What every MoE layer of a model shares, and the layer names in forward order."""

    layers: tuple[str, ...]
    num_experts: int
    top_k: int


@dataclass
class LayerTrace:
    """Routing of one layer, per token (V = voxels of the scene)."""

    expert_ids: np.ndarray  # (V, k) int16, column 0 = top-1
    weights: np.ndarray  # (V, k) float32, renormalised gate weights
    probs: np.ndarray  # (V, E) float32 full router softmax


@dataclass
class SceneTrace:
    loaded: LoadedScene
    domain: Domain
    grid_size: float
    token_point: np.ndarray  # (V,) original index of each token's point
    point_token: np.ndarray  # (N,) token of each original point
    layers: dict[str, LayerTrace]
    features: np.ndarray  # (V, C) backbone output features of the tokens

    @property
    def scene(self) -> Scene:
        return self.loaded.scene

    @property
    def num_points(self) -> int:
        return int(self.point_token.shape[0])

    @property
    def num_tokens(self) -> int:
        return int(self.token_point.shape[0])


def moe_shape(model: nn.Module, source: str) -> MoEShape:
    """The model's MoE layers; a model without any (plain PTv3, PPT) cannot be inspected."""
    moes = [(m.layer_name or name, m) for name, m in model.named_modules() if isinstance(m, MoE)]
    if not moes:
        raise BadInput("checkpoint has no MoE layers (a plain PTv3/PPT model?); route-inspect needs a Point-MoE "
                       "checkpoint (e.g. --preset pmoe-tiny/pmoe-s/pmoe-l)", source)
    experts = {m.cfg.num_experts for _, m in moes}
    top_k = {m.cfg.top_k for _, m in moes}
    if len(experts) != 1 or len(top_k) != 1:
        raise BadInput(f"MoE layers differ in experts {sorted(experts)} / top-k {sorted(top_k)}", source)
    return MoEShape(tuple(name for name, _ in moes), experts.pop(), top_k.pop())


def scene_domain(loaded: LoadedScene) -> Domain:
    """The dataset's domain when known; otherwise a LiDAR-like scene (strength, no color) is outdoor."""
    if loaded.ref.dataset is not None:
        return domain_of(loaded.ref.dataset)
    scene = loaded.scene
    return fields_domain(scene.color is not None, scene.strength is not None)


def tokens_of(scene: Scene, domain: Domain, grid_size: float) -> tuple[Sample, np.ndarray, np.ndarray]:
    """(one-point-per-voxel sample, token_point, point_token), the sample prepared as the test recipe does."""
    if grid_size <= 0:
        raise BadInput(f"--grid must be positive, got {grid_size}")
    sample = Sample.from_scene(scene, dataset=domain)  # the name only selects recipes elsewhere; unused here
    if domain == "indoor":
        sample = t.CenterShift(apply_z=True)(sample, np.random.default_rng(0))
    grid = grid_coordinates(sample.coord, grid_size)
    _, token_point, point_token = np.unique(voxel_keys(grid), return_index=True, return_inverse=True)
    sample.grid_coord = grid
    sample.keep(token_point)
    if domain == "indoor":
        sample = t.CenterShift(apply_z=False)(sample, np.random.default_rng(0))
    return sample, token_point.astype(np.int64), point_token.reshape(-1).astype(np.int64)


def token_batch(sample: Sample, device: str = "cpu", layout: str = "pmoe7") -> PointBatch:
    """The model input of one scene's tokens (also what bench/route_inspect.py times as plain inference);
    `layout`: the model's input features (models.presets.input_layout)."""
    return PointBatch(
        coord=torch.from_numpy(sample.coord),
        feat=torch.from_numpy(point_features(sample, layout)),
        grid_coord=torch.from_numpy(sample.grid_coord),
        offset=torch.tensor([len(sample)], dtype=torch.int64),
    ).to(device)


@torch.inference_mode()
def trace_scene(model: nn.Module, shape: MoEShape, loaded: LoadedScene, grid_size: float | None = None,
                device: str = "cpu") -> SceneTrace:
    """Forward one scene with the recorder on; routing per token of every MoE layer, plus output features."""
    domain = scene_domain(loaded)
    grid = grid_size if grid_size is not None else (INDOOR_GRID if domain == "indoor" else OUTDOOR_GRID)
    sample, token_point, point_token = tokens_of(loaded.scene, domain, grid)
    batch = token_batch(sample, device, input_layout(model))
    with record_routing(model) as recorder:
        features = model.features(batch)
    records = recorder.last()
    layers = {
        name: LayerTrace(
            expert_ids=records[name].expert_ids.cpu().numpy().astype(np.int16),
            weights=records[name].weights.float().cpu().numpy(),
            probs=records[name].probs.float().cpu().numpy(),
        )
        for name in shape.layers
    }
    return SceneTrace(loaded, domain, float(grid), token_point, point_token, layers, features.float().cpu().numpy())
