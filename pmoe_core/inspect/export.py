"""Files for further analysis: raw routing traces (HDF5), point clouds coloured by top-1 expert (PLY), the legend.

HDF5 layout (`traces.h5`; format attribute "pmoe-routing-traces", version 1): root attributes layers, num_experts,
top_k, checkpoint; one group per scene, named `NNN_<scene name>`, with attributes name, source, dataset, domain and
grid_size:
- coord (N, 3) float32 original coordinates; segment (N,) int16 when labelled; class_key (N,) str when labelled
  (the class the statistics use, "" = ignored);
- point_token (N,) int64 token (voxel) of every point; token_point (V,) int64 original index of every token;
- knn_queries (Q,) int64 token indices the consistency statistic queried;
- experts/<layer> (N, k) int16, weights/<layer> (N, k) float32, and with probs on, probs/<layer> (N, E) float32:
  one dataset per MoE layer, per ORIGINAL point (the routing of the point's token).
"""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from pmoe_core.inspect.traces import SceneTrace
from pmoe_core.io import write_ply
from pmoe_core.scene import Scene

TRACE_FORMAT = "pmoe-routing-traces"
TRACE_VERSION = 1
# Okabe-Ito then the remaining Tableau-10 hues: distinguishable (also for most colour-blind readers) up to 14.
BASE_PALETTE = np.array([
    [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178], [213, 94, 0], [204, 121, 167],
    [0, 0, 0], [148, 103, 189], [140, 86, 75], [127, 127, 127], [188, 189, 34], [23, 190, 207], [214, 39, 40],
], dtype=np.uint8)


def palette(num_experts: int) -> np.ndarray:
    """(E, 3) uint8 colours, fixed per expert id; beyond the base list, golden-ratio hues."""
    extra = num_experts - len(BASE_PALETTE)
    if extra <= 0:
        return BASE_PALETTE[:num_experts].copy()
    hues = (np.arange(extra) * 0.618033988749895) % 1.0
    more = np.array([colorsys.hsv_to_rgb(h, 0.75, 0.9) for h in hues]) * 255
    return np.concatenate([BASE_PALETTE, np.rint(more).astype(np.uint8)])


def legend(num_experts: int) -> dict:
    colours = palette(num_experts)
    return {"experts": [{"expert": e, "rgb": colours[e].tolist(), "hex": "#%02x%02x%02x" % tuple(colours[e])}
                        for e in range(num_experts)]}


def write_legend_json(path: Path, num_experts: int) -> None:
    path.write_text(json.dumps(legend(num_experts), indent=2) + "\n", encoding="utf-8")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "scene"


def scene_key(index: int, name: str) -> str:
    return f"{index:03d}_{safe_name(name)}"


def write_expert_ply(path: Path, trace: SceneTrace, layer: str, num_experts: int) -> None:
    """All original points coloured by their top-1 expert at `layer`, with the id as a `scalar_expert` int property
    (CloudCompare shows it as the scalar field "expert")."""
    top1 = trace.layers[layer].expert_ids[:, 0][trace.point_token]
    coloured = Scene(trace.scene.name, trace.scene.coord, color=palette(num_experts)[top1])
    write_ply(coloured, path, extra={"expert": top1},
              comments=(f"pmoe route-inspect {trace.scene.name} layer {layer} top-1 expert",))


class TraceWriter:
    """Append scenes to an HDF5 trace file (see the module docstring for the layout)."""

    def __init__(self, path: Path, layers: tuple[str, ...], num_experts: int, top_k: int, checkpoint: str,
                 probs: bool = True):
        self.path = path
        self.probs = probs
        self.file = h5py.File(path, "w")
        self.file.attrs.update(format=TRACE_FORMAT, version=TRACE_VERSION, layers=list(layers),
                               num_experts=num_experts, top_k=top_k, checkpoint=checkpoint)

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.file.close()

    def write(self, key: str, trace: SceneTrace, knn_queries: np.ndarray) -> None:
        g = self.file.create_group(key)
        scene = trace.scene
        g.attrs.update(name=scene.name, source=trace.loaded.ref.source, dataset=trace.loaded.dataset_key,
                       domain=trace.domain, grid_size=trace.grid_size)
        opts = {"compression": "lzf"}
        g.create_dataset("coord", data=scene.coord, **opts)
        if scene.segment is not None:
            g.create_dataset("segment", data=scene.segment, **opts)
        if trace.loaded.classes is not None:
            g.create_dataset("class_key", data=trace.loaded.classes.astype(str).astype(object),
                             dtype=h5py.string_dtype())
        g.create_dataset("point_token", data=trace.point_token, **opts)
        g.create_dataset("token_point", data=trace.token_point, **opts)
        g.create_dataset("knn_queries", data=knn_queries)
        for name, layer in trace.layers.items():
            g.create_dataset(f"experts/{name}", data=layer.expert_ids[trace.point_token], **opts)
            g.create_dataset(f"weights/{name}", data=layer.weights[trace.point_token], **opts)
            if self.probs:
                g.create_dataset(f"probs/{name}", data=layer.probs[trace.point_token], **opts)
