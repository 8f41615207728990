"""`route-inspect` end to end: model + scenes -> traces, statistics, figures, coloured clouds, JSON report.

Scenes are processed one at a time (forward, HDF5 traces, PLYs, statistics accumulated), so the number of scenes
is bounded by disk, not memory. Everything is written into a hidden staging folder inside OUT and moved into OUT only
when the run succeeded, so a scene that fails halfway through a split leaves OUT as it was (no traces without a
report). The CLI only parses options and prints `RouteInspectResult`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from pmoe_core.engine.distributed import DistInfo
from pmoe_core.engine.model_io import load_segmentation_model
from pmoe_core.engine.options import Rule, check_numbers
from pmoe_core.engine.train import pick_device
from pmoe_core.errors import BadInput
from pmoe_core.inspect import plots
from pmoe_core.inspect.consistency import disagreements, nearest_neighbours, pick_queries
from pmoe_core.inspect.export import TraceWriter, safe_name, scene_key, write_expert_ply, write_legend_json
from pmoe_core.inspect.layers import select_layers
from pmoe_core.inspect.projection import METHODS, project
from pmoe_core.inspect.report import build_report, write_report
from pmoe_core.inspect.scenes import SceneRef, resolve_specs
from pmoe_core.inspect.stats import HIST_BINS, LayerAccumulator, LayerStats
from pmoe_core.inspect.traces import MoEShape, SceneTrace, moe_shape, trace_scene
from pmoe_core.outputs import check_output_dir
from pmoe_core.progress import Progress, silent


@dataclass
class RouteInspectConfig:
    checkpoint: str
    scenes: tuple[str, ...]
    out: str = "route_inspect"
    layers: tuple[str, ...] | None = None  # names / indices for PLYs and affinity figures; None = defaults
    limit: int | None = None  # scenes per STORE::split spec
    dataset: str | None = None  # dataset of file inputs (grid size, class names); stores know their own
    grid: float | None = None  # override the domain's grid size
    knn: int = 8
    max_queries: int = 20000  # consistency query tokens per scene
    embed: str = "pca"  # feature projection: pca | tsne | none
    embed_points: int = 2000  # tokens per scene in the projection
    probs: bool = True  # store the full router softmax in the HDF5 traces
    plys: bool = True
    seed: int = 0
    device: str = "cpu"


@dataclass
class SceneSummary:
    key: str
    name: str
    source: str
    dataset: str
    domain: str
    grid_size: float
    points: int
    tokens: int
    labelled: bool
    seconds: float


@dataclass
class OutputFiles:
    """Paths relative to the output folder."""

    report: str = "report.json"
    traces: str = "traces.h5"
    heatmap: str = "heatmap.png"
    entropy: str = "entropy.png"
    margin: str = "margin.png"
    mi: str = "mi.png"
    legend_png: str = "legend.png"
    legend_json: str = "legend.json"
    features: str | None = None
    plys: list[tuple[str, str, str]] = field(default_factory=list)  # (scene key, layer, path)
    affinity: list[tuple[str, str, str]] = field(default_factory=list)  # (layer, "class" | "dataset", path)


@dataclass
class RouteInspectResult:
    out: Path
    shape: MoEShape
    chosen_layers: list[str]
    scenes: list[SceneSummary]
    layers: list[LayerStats]
    files: OutputFiles
    seconds: float


def route_inspect(cfg: RouteInspectConfig, progress: Progress = silent) -> RouteInspectResult:
    start = time.perf_counter()
    _check_options(cfg)
    cfg = dataclasses.replace(cfg, device=str(pick_device(cfg.device, DistInfo())))  # "auto", "cuda:7" checked
    model, meta = load_segmentation_model(cfg.checkpoint, device=cfg.device)
    shape = moe_shape(model, cfg.checkpoint)
    chosen = select_layers(shape.layers, cfg.layers)
    refs = resolve_specs(cfg.scenes, cfg.dataset, cfg.limit)
    out = Path(cfg.out)
    with _staged(out) as work:
        result = _inspect(cfg, model, meta, shape, chosen, refs, work, progress, start)
    result.out = out
    return result


def _inspect(cfg: RouteInspectConfig, model: nn.Module, meta: dict[str, Any], shape: MoEShape, chosen: list[str],
             refs: list[SceneRef], out: Path, progress: Progress, start: float) -> RouteInspectResult:
    """Every scene through the model, then figures and the report, all written under `out` (the staging folder)."""
    files = OutputFiles()
    accs = [LayerAccumulator(name, i, shape.num_experts, shape.top_k) for i, name in enumerate(shape.layers)]
    summaries: list[SceneSummary] = []
    embed_feats: list[np.ndarray] = []
    embed_rows: list[tuple[int, np.ndarray, str]] = []  # (scene index, token indices, dataset)

    progress(total=len(refs), message="route-inspect")
    with TraceWriter(out / files.traces, shape.layers, shape.num_experts, shape.top_k, cfg.checkpoint,
                     probs=cfg.probs) as writer:
        for i, ref in enumerate(refs):
            t0 = time.perf_counter()
            trace = trace_scene(model, shape, ref.load(), cfg.grid, cfg.device)
            key = scene_key(i, trace.scene.name)
            rng = np.random.default_rng([cfg.seed, i])
            queries = _accumulate(accs, trace, shape, cfg, rng)
            writer.write(key, trace, queries)
            if cfg.plys:
                files.plys += _write_plys(out, key, trace, chosen, shape.num_experts)
            if cfg.embed != "none":
                rows = np.sort(rng.permutation(trace.num_tokens)[: cfg.embed_points])
                embed_feats.append(trace.features[rows])
                embed_rows.append((i, rows, trace.loaded.dataset_key))
            summaries.append(_summary(key, trace, time.perf_counter() - t0))
            progress(advance=1, message=f"{trace.scene.name}: {trace.num_points} points")
        layers = [acc.finish() for acc in accs]
        if cfg.embed != "none":
            files.features = _write_projection(out, writer, cfg, embed_feats, embed_rows)

    _write_figures(out, files, layers, chosen, shape)
    seconds = time.perf_counter() - start
    result = RouteInspectResult(out, shape, chosen, summaries, layers, files, seconds)
    write_report(out / files.report, build_report(result, cfg, meta))
    return result


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A fresh hidden folder inside OUT to write into; on success its entries replace OUT's entries of the same name
    (a previous run's ply/ folder goes as a whole, so no stale clouds remain), on any failure it is removed and OUT
    is left as it was (and removed again if this run created it)."""
    created = not out.exists()  # OUT is a folder or absent: checked by _check_options before the model loaded
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".route-inspect-partial-", dir=out))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    for entry in work.iterdir():
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.rename(target)
    work.rmdir()


def _check_options(cfg: RouteInspectConfig) -> None:
    """Everything that can be wrong without loading the model, OUT included, checked before the model loads."""
    if cfg.knn < 1 or cfg.max_queries < 1 or cfg.embed_points < 2:
        raise BadInput("--knn and --max-queries must be at least 1 and --embed-points at least 2")
    if cfg.limit is not None and cfg.limit < 1:
        raise BadInput(f"--limit must be positive, got {cfg.limit}")
    check_numbers([("--grid", cfg.grid, Rule.POSITIVE)])
    if cfg.embed not in METHODS:
        raise BadInput(f"--embed must be one of {', '.join(METHODS)}, got {cfg.embed!r}")
    check_output_dir(cfg.out, reads=[cfg.checkpoint, *(spec.split("::")[0] for spec in cfg.scenes)])


def _accumulate(accs: list[LayerAccumulator], trace: SceneTrace, shape: MoEShape, cfg: RouteInspectConfig,
                rng: np.random.Generator) -> np.ndarray:
    """Add one scene to every layer's statistics; returns the consistency query tokens."""
    queries = pick_queries(trace.num_tokens, cfg.max_queries, rng)
    neighbours = nearest_neighbours(trace.scene.coord[trace.token_point], queries, cfg.knn)
    for acc in accs:
        layer = trace.layers[acc.name]
        acc.add(layer, trace.point_token, trace.loaded.classes, trace.loaded.dataset_key)
        if neighbours.shape[1]:
            acc.add_consistency(disagreements(layer.expert_ids[:, 0], queries, neighbours, shape.num_experts),
                                int(queries.shape[0]))
    return queries if neighbours.shape[1] else queries[:0]


def _write_plys(out: Path, key: str, trace: SceneTrace, chosen: list[str],
                num_experts: int) -> list[tuple[str, str, str]]:
    folder = out / "ply" / key
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for layer in chosen:
        path = folder / f"{safe_name(layer)}.ply"
        write_expert_ply(path, trace, layer, num_experts)
        written.append((key, layer, str(path.relative_to(out))))
    return written


def _write_projection(out: Path, writer: TraceWriter, cfg: RouteInspectConfig, feats: list[np.ndarray],
                      rows: list[tuple[int, np.ndarray, str]]) -> str:
    x = np.concatenate(feats)
    xy = project(x, cfg.embed, cfg.seed)
    groups = np.concatenate([np.full(r.shape[0], d, dtype=object) for _, r, d in rows]).astype(str)
    g = writer.file.create_group("embedding")
    g.attrs.update(method=cfg.embed)
    g.create_dataset("xy", data=xy.astype(np.float32))
    g.create_dataset("scene", data=np.concatenate([np.full(r.shape[0], i) for i, r, _ in rows]).astype(np.int64))
    g.create_dataset("token", data=np.concatenate([r for _, r, _ in rows]).astype(np.int64))
    name = f"features_{cfg.embed}.png"
    plots.scatter_by_group(out / name, xy, groups, f"backbone features ({cfg.embed.upper()}) by dataset")
    return name


def _write_figures(out: Path, files: OutputFiles, layers: list[LayerStats], chosen: list[str], shape: MoEShape) -> None:
    names = [s.name for s in layers]
    experts = [f"e{e}" for e in range(shape.num_experts)]
    bins = [f"{b / HIST_BINS:.2f}" for b in range(HIST_BINS)]
    plots.heatmap(out / files.heatmap, np.stack([s.fractions for s in layers]), names, experts,
                  "token fraction per expert (all top-k slots)", "expert")
    plots.heatmap(out / files.entropy, np.stack([_share(s.entropy_hist) for s in layers]), names, bins,
                  "router entropy / log2 E: share of points per bin", "normalised entropy (bin start)", annotate=False)
    plots.heatmap(out / files.margin, np.stack([_share(s.prob_margin_hist) for s in layers]), names, bins,
                  "top-1 minus top-2 router probability: share of points per bin", "margin (bin start)",
                  annotate=False)
    plots.mi_plot(out / files.mi, names, {
        "MI(expert; class)": [s.mi_class.bits if s.mi_class else None for s in layers],
        "MI(expert; dataset)": [s.mi_dataset.bits if s.mi_dataset else None for s in layers],
        "MI(expert; class | dataset)": [s.mi_class_given_dataset_bits for s in layers],
    })
    plots.legend_png(out / files.legend_png, shape.num_experts)
    write_legend_json(out / files.legend_json, shape.num_experts)
    (out / "affinity").mkdir(exist_ok=True)
    for s in (s for s in layers if s.name in chosen):
        for kind, rows, table in (("class", s.classes, s.class_affinity), ("dataset", s.datasets, s.dataset_affinity)):
            if not rows:
                continue
            rel = f"affinity/{kind}_{safe_name(s.name)}.png"
            plots.heatmap(out / rel, table, rows, experts, f"P(top-1 expert | {kind}) at {s.name}", "expert",
                          vmax=1.0)
            files.affinity.append((s.name, kind, rel))


def _share(counts: np.ndarray) -> np.ndarray:
    return counts / max(int(counts.sum()), 1)


def _summary(key: str, trace: SceneTrace, seconds: float) -> SceneSummary:
    return SceneSummary(key=key, name=trace.scene.name, source=trace.loaded.ref.source,
                        dataset=trace.loaded.dataset_key, domain=trace.domain, grid_size=trace.grid_size,
                        points=trace.num_points, tokens=trace.num_tokens, labelled=trace.loaded.classes is not None,
                        seconds=seconds)

